"""Data page, bad lines and small fixes: discard one or all, add all lines of another format in one step,
messages in plain words; the token filter can be cleared; an edited row gets its token count again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from core.data.formats import read_dataset
from desktop.context import AppContext
from desktop.pages.data import DataPage
from desktop.widgets.data_table import COL_TOKENS


def _messages(q: str, a: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    lines = [
        _messages("How do I reset my password?", "Use the reset link."),  # 1
        json.dumps({"instruction": "Translate 'cat' to German", "output": "Katze"}),  # 2 alpaca
        '{"messages": [{"role": "user", "content": "cut off',  # 3 ends early
        _messages("Where is my invoice?", "Under Billing."),  # 4
        json.dumps({"prompt": "2+2?", "completion": "4"}),  # 5 prompt-completion
        '{"messages": [{"role": "user", "content": "hi", "ok": tru}]}',  # 6 misspelt literal
        json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}),
        "just some text",  # 8
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _page(qtbot, path: Path) -> DataPage:
    ctx = AppContext()
    page = DataPage(ctx)
    qtbot.addWidget(page)
    page.resize(1300, 800)
    with qtbot.waitSignal(ctx.workspaceChanged, timeout=30000):
        ctx.openWorkspaceRequested.emit(str(path))
    qtbot.waitUntil(lambda: not page._jobs, timeout=60000)
    return page


def test_messages_are_plain_words(mixed: Path) -> None:
    reasons = {e.line: e.message for e in read_dataset(mixed).errors}
    column = mixed.read_text(encoding="utf-8").splitlines()[5].index("tru") + 1
    assert reasons[3] == "not valid JSON (it ends early; a closing quote, ] or } is missing)"
    assert reasons[6].startswith(f"not valid JSON (a word at column {column} is not a JSON value;")
    assert "true, false and null in lower case" in reasons[6]
    assert reasons[8] == "not valid JSON (this line is not a record; a record starts with {)"
    assert (
        reasons[2]
        == "mixed formats: this line is an alpaca record in a messages file; it can be added as it is"
    )
    assert not any("invalid literal" in r or "expected 'true'" in r for r in reasons.values())


def test_add_all_lines_of_another_format_in_one_step(qtbot, mixed: Path) -> None:
    page = _page(qtbot, mixed)
    ws = page.workspace
    assert ws is not None and ws.count() == 2
    issues = page.issues
    assert issues.list.count() == 6
    assert issues.list.item(1).text() == (
        "Line 3 is not valid JSON (it ends early; a closing quote, ] or } is missing)"
    )
    assert issues.add_all_button.text() == "Add all 3 of another format" and issues.add_all_button.isEnabled()
    issues.add_all_button.click()
    assert ws.count() == 5
    assert [e.line for e in ws.examples()] == [1, 2, 4, 5, 7]  # each at its place in the file
    added = {e.line: e for e in ws.examples()}
    assert added[2].messages[1].content == "Katze" and added[7].messages[0].content == "Hi"
    assert [b.line for b in ws.bad_lines()] == [3, 6, 8]
    assert page.tabs.tabText(2) == "Issues (3)"
    assert issues.add_all_button.text() == "Add all" and not issues.add_all_button.isEnabled()
    assert page.undo_stack.count() == 1
    page.undo_stack.undo()  # one step takes all three out again
    assert ws.count() == 2 and [b.line for b in ws.bad_lines()] == [2, 3, 5, 6, 7, 8]
    page.undo_stack.redo()
    assert ws.count() == 5 and len(ws.bad_lines()) == 3


def test_discard_one_and_all_with_undo(qtbot, mixed: Path) -> None:
    page = _page(qtbot, mixed)
    ws = page.workspace
    assert ws is not None
    issues = page.issues
    issues.select(next(b.rowid for b in ws.bad_lines() if b.line == 8))
    issues.discard_button.click()
    assert [b.line for b in ws.bad_lines()] == [2, 3, 5, 6, 7]
    assert issues.list.count() == 5 and ws.count() == 2
    issues.discard_all_button.click()
    assert ws.bad_lines() == [] and page.tabs.tabText(2) == "Issues"
    assert not issues.discard_all_button.isEnabled() and not issues.fix_button.isEnabled()
    page.undo_stack.undo()
    assert len(ws.bad_lines()) == 5
    page.undo_stack.undo()
    assert len(ws.bad_lines()) == 6 and ws.count() == 2  # nothing was lost


def test_token_filter_field_clears(qtbot, mixed: Path) -> None:
    page = _page(qtbot, mixed)
    box = page.min_tokens
    box.setValue(250)
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Backspace)
    assert box.value() == 0
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    assert box.value() == 0 and box.text() == "min"
    assert page.filter_kwargs()["min_tokens"] is None


def test_edited_row_gets_its_token_count_again(qtbot, mixed: Path, smollm2_dir: Path) -> None:
    from core.data.tokens import TokenCounter

    page = _page(qtbot, mixed)
    ws = page.workspace
    assert ws is not None
    model = str(smollm2_dir)
    counter = TokenCounter.for_model(model)
    page.counter, page._counter_model = counter, model  # as after "Count tokens" with that model
    ids = ws.ids()
    before = dict(zip(ids, counter.count([e.messages_dicts() for e in ws.get_many(ids)]), strict=True))
    ws.set_token_counts(before, model)
    page.select_row(0)
    example = ws.get(ids[0])
    example.messages[1].content = "Use the reset link in the email we sent you a minute ago."
    page.save_example(example)
    qtbot.waitUntil(lambda: not page._jobs and page._bulk is None)
    expected = counter.count([example.messages_dicts()])[0]
    assert expected > before[ids[0]]
    assert ws.summary(ids[0]).tokens == expected  # counted again, not left empty
    assert ws.summary(ids[1]).tokens == before[ids[1]]
    assert str(page.model.data(page.model.index(0, COL_TOKENS))).replace(",", "") == str(expected)
