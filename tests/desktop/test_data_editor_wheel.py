"""The example editor: turning the mouse wheel over a turn's role while scrolling a long conversation leaves
the role as it is (the wheel goes to the conversation's scroll area)."""

from __future__ import annotations

from core.data.example import Example, Message
from tests.desktop.wheel import send_wheel as _wheel


def test_wheel_over_a_turn_role_does_not_change_it(qtbot) -> None:  # type: ignore[no-untyped-def]
    from desktop.widgets.data_editor import ExampleEditor

    editor = ExampleEditor()
    qtbot.addWidget(editor)
    turns = [Message("user" if i % 2 == 0 else "assistant", f"turn {i}") for i in range(8)]
    editor.set_example(Example(messages=[Message("system", "Be brief."), *turns]))
    dirty: list[bool] = []
    editor.dirtyChanged.connect(dirty.append)
    roles = [t.role.currentText() for t in editor.turn_editors()]
    assert roles == [m.role for m in turns]
    for turn in editor.turn_editors():
        assert not _wheel(turn.role, -2)  # not taken: Qt hands it on to the scroll area
        assert not _wheel(turn.role, 2)
    assert [t.role.currentText() for t in editor.turn_editors()] == roles
    assert not any(dirty)  # never marked as having changes to save
