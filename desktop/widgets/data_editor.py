"""ExampleEditor: edit one example turn by turn (roles, order, system prompt, tags, notes).

The editor works on a copy; "Save" emits `saved(Example)` and the page turns that into an undoable
workspace operation. Turns with extra fields (tool calls, names) keep them untouched.
"""

from __future__ import annotations

import copy
import json

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.data.example import Example, Message
from core.data.formats import validate_example
from desktop.widgets.safe_inputs import SafeComboBox

TURN_ROLES = ("user", "assistant", "tool", "system")


class TurnEditor(QFrame):
    changed = Signal()
    moveRequested = Signal(object, int)  # self, -1 | +1
    removeRequested = Signal(object)

    def __init__(self, message: Message, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("turn")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.extra = dict(message.extra)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.setSpacing(3)
        head = QHBoxLayout()
        self.role = SafeComboBox()  # scrolling a long conversation must not flip a turn's role
        self.role.addItems(list(TURN_ROLES))
        if message.role not in TURN_ROLES:
            self.role.addItem(message.role)
        self.role.setCurrentText(message.role)
        self.role.currentTextChanged.connect(lambda _t: self.changed.emit())
        head.addWidget(self.role)
        if self.extra:
            note = QLabel("+ " + ", ".join(sorted(self.extra)))
            note.setToolTip(
                "Kept as they are:\n" + json.dumps(self.extra, indent=2, ensure_ascii=False)[:4000]
            )
            note.setObjectName("muted")
            head.addWidget(note)
        head.addStretch(1)
        for text, tip, slot in (
            ("↑", "Move this turn up", lambda: self.moveRequested.emit(self, -1)),
            ("↓", "Move this turn down", lambda: self.moveRequested.emit(self, 1)),
            ("✕", "Remove this turn", lambda: self.removeRequested.emit(self)),
        ):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            head.addWidget(button)
        layout.addLayout(head)
        self.text = QPlainTextEdit(message.content)
        self.text.setTabChangesFocus(True)
        self.text.setMinimumHeight(60)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        lines = max(3, min(14, message.content.count("\n") + 1 + len(message.content) // 70))
        self.text.setFixedHeight(int(self.text.fontMetrics().lineSpacing() * lines + 14))
        self.text.textChanged.connect(self.changed.emit)
        layout.addWidget(self.text)

    def message(self) -> Message:
        return Message(self.role.currentText(), self.text.toPlainText(), dict(self.extra))


class ExampleEditor(QWidget):
    saved = Signal(object)  # Example
    dirtyChanged = Signal(bool)
    historyRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.example: Example | None = None
        self._dirty = False
        self._loading = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("Select a row to edit it")
        self.title.setObjectName("sectionTitle")
        outer.addWidget(self.title)
        sys_label = QLabel("System prompt")
        outer.addWidget(sys_label)
        self.system = QPlainTextEdit()
        self.system.setPlaceholderText("(none) — instructions the model sees before the conversation")
        self.system.setFixedHeight(58)
        self.system.textChanged.connect(self._on_changed)
        outer.addWidget(self.system)
        self.turns_scroll = QScrollArea()
        self.turns_scroll.setWidgetResizable(True)
        self.turns_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.turns_host = QWidget()
        self.turns_layout = QVBoxLayout(self.turns_host)
        self.turns_layout.setContentsMargins(0, 0, 0, 0)
        self.turns_layout.setSpacing(6)
        self.turns_layout.addStretch(1)
        self.turns_scroll.setWidget(self.turns_host)
        outer.addWidget(self.turns_scroll, 1)
        add_row = QHBoxLayout()
        self.add_user = QPushButton("+ User turn")
        self.add_user.clicked.connect(lambda: self.add_turn("user"))
        self.add_assistant = QPushButton("+ Assistant turn")
        self.add_assistant.clicked.connect(lambda: self.add_turn("assistant"))
        add_row.addWidget(self.add_user)
        add_row.addWidget(self.add_assistant)
        add_row.addStretch(1)
        outer.addLayout(add_row)
        meta = QHBoxLayout()
        meta.addWidget(QLabel("Tags"))
        self.tags = QLineEdit()
        self.tags.setPlaceholderText("comma-separated")
        self.tags.textChanged.connect(self._on_changed)
        meta.addWidget(self.tags, 1)
        meta.addWidget(QLabel("Notes"))
        self.notes = QLineEdit()
        self.notes.textChanged.connect(self._on_changed)
        meta.addWidget(self.notes, 1)
        outer.addLayout(meta)
        self.problems = QLabel("")
        self.problems.setObjectName("warning")
        self.problems.setWordWrap(True)
        outer.addWidget(self.problems)
        buttons = QHBoxLayout()
        self.history_button = QPushButton("History…")
        self.history_button.setToolTip("Every saved change to this example")
        self.history_button.clicked.connect(lambda: self.historyRequested.emit())
        buttons.addWidget(self.history_button)
        self.revert_button = QPushButton("Revert")
        self.revert_button.clicked.connect(self.revert)
        self.save_button = QPushButton("Save changes")
        self.save_button.setObjectName("primary")
        self.save_button.setShortcut("Ctrl+S")
        self.save_button.setToolTip("Save this example (Ctrl+S); undo with Ctrl+Z")
        self.save_button.clicked.connect(self.save)
        buttons.addStretch(1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        outer.addLayout(buttons)
        self.set_example(None)

    # --- state -------------------------------------------------------------------------------------
    def turn_editors(self) -> list[TurnEditor]:
        out = []
        for i in range(self.turns_layout.count()):
            item = self.turns_layout.itemAt(i)
            w = item.widget() if item is not None else None
            if isinstance(w, TurnEditor):
                out.append(w)
        return out

    @property
    def dirty(self) -> bool:
        return self._dirty

    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self._dirty:
            self._dirty = dirty
            self.dirtyChanged.emit(dirty)
        self.save_button.setEnabled(dirty and self.example is not None)
        self.revert_button.setEnabled(dirty and self.example is not None)

    def _on_changed(self) -> None:
        if self._loading:
            return
        self._set_dirty(True)
        current = self.current()
        if current is not None:
            problems = validate_example(current)
            self.problems.setText("⚠ " + "; ".join(problems) if problems else "")

    def set_example(self, example: Example | None) -> None:
        self._loading = True
        try:
            self.example = copy.deepcopy(example)
            for w in self.turn_editors():
                w.setParent(None)
                w.deleteLater()
            enabled = example is not None
            for field in (
                self.system,
                self.tags,
                self.notes,
                self.add_user,
                self.add_assistant,
                self.history_button,
            ):
                field.setEnabled(enabled)
            if example is None:
                self.title.setText("Select a row to edit it")
                self.system.setPlainText("")
                self.tags.setText("")
                self.notes.setText("")
                self.problems.setText("")
            else:
                where = f" · line {example.line}" if example.line else ""
                self.title.setText(f"Example {example.id}{where}")
                msgs = list(example.messages)
                system = ""
                if msgs and msgs[0].role == "system" and not msgs[0].extra:
                    system = msgs.pop(0).content
                self.system.setPlainText(system)
                for m in msgs:
                    self._insert_turn(m)
                self.tags.setText(", ".join(example.tags))
                self.notes.setText(example.notes)
                problems = validate_example(example)
                self.problems.setText("⚠ " + "; ".join(problems) if problems else "")
        finally:
            self._loading = False
        self._set_dirty(False)

    def _insert_turn(self, message: Message, index: int | None = None) -> TurnEditor:
        turn = TurnEditor(message)
        turn.changed.connect(self._on_changed)
        turn.moveRequested.connect(self.move_turn)
        turn.removeRequested.connect(self.remove_turn)
        count = len(self.turn_editors())
        self.turns_layout.insertWidget(count if index is None else index, turn)
        return turn

    def add_turn(self, role: str) -> None:
        if self.example is None:
            return
        turn = self._insert_turn(Message(role, ""))
        turn.text.setFocus()
        self._on_changed()

    def move_turn(self, turn: TurnEditor, delta: int) -> None:
        turns = self.turn_editors()
        i = turns.index(turn)
        j = i + delta
        if not 0 <= j < len(turns):
            return
        self.turns_layout.removeWidget(turn)
        self.turns_layout.insertWidget(j, turn)
        self._on_changed()

    def remove_turn(self, turn: TurnEditor) -> None:
        self.turns_layout.removeWidget(turn)
        turn.setParent(None)
        turn.deleteLater()
        self._on_changed()

    def current(self) -> Example | None:
        if self.example is None:
            return None
        ex = copy.deepcopy(self.example)
        messages = []
        system = self.system.toPlainText()
        if system.strip():
            messages.append(Message("system", system))
        messages += [t.message() for t in self.turn_editors() if t.parent() is not None]
        ex.messages = messages
        tags: list[str] = []
        for t in self.tags.text().split(","):
            if t.strip() and t.strip() not in tags:
                tags.append(t.strip())
        ex.tags = tags
        ex.notes = self.notes.text()
        return ex

    def save(self) -> None:
        current = self.current()
        if current is None or not self._dirty:
            return
        self.saved.emit(current)

    def revert(self) -> None:
        self.set_example(self.example)
