"""Data page: open, edit turn by turn, undo/redo, filter, bulk actions, splits, Issues fixing, token counts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog

from core.data.workspace import DatasetWorkspace
from desktop.context import AppContext
from desktop.pages.data import DataPage
from desktop.widgets.data_table import COL_ISSUES, COL_SPLIT, COL_TOKENS, FETCH_CHUNK


def _page(qtbot, path: Path | None = None) -> DataPage:
    ctx = AppContext()
    page = DataPage(ctx)
    qtbot.addWidget(page)
    page.resize(1300, 800)
    with qtbot.waitActive(page):
        page.show()
        page.activateWindow()
    if path is not None:
        with qtbot.waitSignal(ctx.workspaceChanged, timeout=30000):
            ctx.openWorkspaceRequested.emit(str(path))
    return page


def _wait_idle(qtbot, page: DataPage) -> None:
    qtbot.waitUntil(lambda: not page._jobs, timeout=60000)


def test_empty_state_then_sample(qtbot) -> None:
    page = _page(qtbot)
    assert page.stack.currentWidget() is page.empty
    with qtbot.waitSignal(page.ctx.workspaceChanged, timeout=30000):
        page.sample_button.click()
    assert page.stack.currentWidget() is page.main
    assert isinstance(page.ctx.workspace, DatasetWorkspace)
    assert page.model.total() == 120
    assert page.editor.example is not None and page.editor.example.line == 1
    assert "120 examples" in page.count_label.text()
    _wait_idle(qtbot, page)


def test_edit_turns_save_undo_redo(qtbot, sample_data: Path) -> None:
    page = _page(qtbot, sample_data)
    ws = page.workspace
    assert ws is not None
    page.select_row(2)
    id_ = page._current_id
    assert id_ is not None
    before = ws.get(id_)
    editor = page.editor
    assert editor.system.toPlainText().startswith("You triage")
    turns = editor.turn_editors()
    assert [t.role.currentText() for t in turns] == ["user", "assistant"]
    turns[0].text.setPlainText("A rewritten ticket")
    editor.add_turn("user")
    editor.turn_editors()[-1].text.setPlainText("And a follow-up")
    editor.add_turn("assistant")
    editor.turn_editors()[-1].text.setPlainText('{"category": "account"}')
    editor.move_turn(editor.turn_editors()[1], 1)  # reorder: assistant after the follow-up
    editor.move_turn(editor.turn_editors()[2], -1)  # and back
    editor.turn_editors()[2].role.setCurrentText("user")
    assert editor.dirty
    editor.save_button.click()
    saved = ws.get(id_)
    assert [m.role for m in saved.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert saved.messages[1].content == "A rewritten ticket"
    assert page.model.data(page.model.index(2, 0)) == "A rewritten ticket"
    assert len(ws.history(id_)) == 1
    page.table.setFocus()  # in a text field Ctrl+Z undoes typing; elsewhere it undoes the last edit
    qtbot.keyClick(page.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ws.get(id_).messages_dicts() == before.messages_dicts()
    assert page.editor.turn_editors()[0].text.toPlainText() == before.messages[1].content
    qtbot.keyClick(
        page.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    assert ws.get(id_).messages[1].content == "A rewritten ticket"
    # Remove a turn and clear the system prompt: the example is flagged, not lost.
    editor = page.editor
    editor.remove_turn(editor.turn_editors()[-1])
    editor.system.setPlainText("")
    editor.save()
    assert ws.get(id_).messages[0].role == "user"
    assert "last turn" in ws.summary(id_).issues
    _wait_idle(qtbot, page)


def test_switching_rows_keeps_typed_text(qtbot, sample_data: Path) -> None:
    page = _page(qtbot, sample_data)
    page.select_row(0)
    id_ = page._current_id
    page.editor.notes.setText("remember me")
    page.select_row(1)
    assert page.workspace is not None and page.workspace.get(id_).notes == "remember me"
    page.undo_stack.undo()
    assert page.workspace.get(id_).notes == ""
    page.select_row(0)
    history = page.history_lines(id_)
    assert len(history) == 2 and "notes" in history[0] and "notes" in history[1]
    _wait_idle(qtbot, page)


def test_search_regex_and_filters(qtbot, sample_data: Path) -> None:
    page = _page(qtbot, sample_data)
    ws = page.workspace
    assert ws is not None
    _wait_idle(qtbot, page)
    page.search.setText("refund")
    qtbot.waitUntil(lambda: page.model.total() == len(ws.filter("refund")), timeout=5000)
    assert 0 < page.model.total() < 120
    assert all("refund" in page.model.data(page.model.index(r, 0)).lower() for r in range(page.model.total()))
    page.regex.setChecked(True)
    page.search.setText(r"crash(es)?\b")
    page.apply_filters()
    assert page.model.total() == len(ws.filter(r"crash(es)?\b", regex=True))
    page.search.setText("(")
    page.apply_filters()
    assert "regular expression" in page.search.toolTip()
    page.search.clear()
    page.regex.setChecked(False)
    page.tag_filter.setCurrentIndex(page.tag_filter.findData("billing"))
    assert page.model.total() == ws.tags()["billing"]
    page.tag_filter.setCurrentIndex(0)
    page.issues_only.setChecked(True)
    assert page.model.total() == 0
    page.issues_only.setChecked(False)
    assert page.model.total() == 120


def test_bulk_tag_move_duplicate_delete_with_undo(qtbot, sample_data: Path, monkeypatch, messages) -> None:
    page = _page(qtbot, sample_data)
    ws = page.workspace
    assert ws is not None
    page.select_row(0)
    page.table.selectionModel().select(
        page.model.index(1, 0),
        page.table.selectionModel().SelectionFlag.Select | page.table.selectionModel().SelectionFlag.Rows,
    )
    ids = page.selected_ids()
    assert len(ids) == 2
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("reviewed", True))
    page.tag_button.click()
    assert all("reviewed" in ws.summary(i).tags for i in ids)
    page.move_selected("validation")
    assert page.model.data(page.model.index(0, COL_SPLIT)) == "validation"
    page.duplicate_selected()
    assert ws.count() == 122
    page.select_row(0)
    page.delete_selected()
    assert ws.count() == 121 and page.bin_button.isEnabled()
    for _ in range(4):
        page.undo_stack.undo()
    assert ws.count() == 120
    assert all(ws.summary(i).split is None and "reviewed" not in ws.summary(i).tags for i in ids)
    page.undo_stack.redo()
    assert "reviewed" in ws.summary(ids[0]).tags
    _wait_idle(qtbot, page)


def test_splits_are_assigned_locked_and_balanced(qtbot, sample_data: Path, messages) -> None:
    page = _page(qtbot, sample_data)
    ws = page.workspace
    assert ws is not None
    page.tabs.setCurrentWidget(page.splits)
    page.splits.stratify.setChecked(True)
    page.splits.assign_button.click()
    counts = ws.split_counts()
    assert counts["none"] == 0 and counts["test"] >= 10 and ws.test_locked
    assert "locked" in page.splits.lock_label.text()
    assert page.splits.balance.rowCount() == len(ws.tags()) + 1
    page.split_filter.setCurrentIndex(page.split_filter.findData("test"))
    assert page.model.total() == counts["test"]
    page.select_row(0)
    page.move_selected("train")
    assert messages and "locked" in messages[-1]
    assert ws.split_counts()["test"] == counts["test"]
    page.undo_stack.undo()
    assert not ws.test_locked and ws.split_counts()["none"] == 120
    _wait_idle(qtbot, page)


def test_issues_list_fix_adds_the_row(qtbot, tmp_path: Path, sample_data: Path) -> None:
    lines = sample_data.read_text(encoding="utf-8").splitlines()[:3]
    broken = lines[1][:-40]
    path = tmp_path / "with-bad.jsonl"
    path.write_text("\n".join([lines[0], broken, lines[2], "not json at all"]) + "\n", encoding="utf-8")
    page = _page(qtbot, path)
    ws = page.workspace
    assert ws is not None and ws.count() == 2
    assert page.tabs.tabText(2) == "Issues (2)"
    page.tabs.setCurrentWidget(page.issues)
    assert page.issues.list.count() == 2
    page.issues.list.setCurrentRow(0)
    assert page.issues.editor.toPlainText() == broken
    page.issues.editor.setPlainText(broken + "oops")
    page.issues.fix_button.click()
    assert "Still not valid" in page.issues.reason.text() and ws.count() == 2
    page.issues.editor.setPlainText(lines[1])
    page.issues.fix_button.click()
    assert ws.count() == 3 and [e.line for e in ws.examples()] == [1, 2, 3]
    assert page.tabs.tabText(2) == "Issues (1)"
    page.undo_stack.undo()
    assert ws.count() == 2 and len(ws.bad_lines()) == 2
    _wait_idle(qtbot, page)


def test_export_any_format(qtbot, sample_data: Path, tmp_path: Path, messages) -> None:
    page = _page(qtbot, sample_data)
    out = tmp_path / "out.csv"
    result = page.export_to(out, "alpaca")
    assert result.written == 120 and out.exists()
    result = page.export_to(tmp_path / "pc.jsonl", "prompt-completion")
    assert result.written == 0 and messages and "could not be written" in messages[-1]
    page.export_to(tmp_path / "same.jsonl", "messages")
    original = [orjson.loads(x) for x in sample_data.read_bytes().splitlines()]
    assert [orjson.loads(x) for x in (tmp_path / "same.jsonl").read_bytes().splitlines()] == original
    _wait_idle(qtbot, page)


@pytest.mark.slow
def test_token_counting_in_background_preview_and_histogram(
    qtbot, sample_data: Path, smollm2_dir: Path
) -> None:
    page = _page(qtbot, sample_data)
    ws = page.workspace
    assert ws is not None
    page.tabs.setCurrentWidget(page.lengths)
    page.max_length.setValue(55)
    page.count_button.click()
    assert page.job_row.isVisibleTo(page)
    qtbot.waitUntil(lambda: ws.summary(ws.ids()[0]).tokens is not None, timeout=120000)
    _wait_idle(qtbot, page)
    assert not page.job_row.isVisibleTo(page)
    counts = [ws.summary(i).tokens for i in ws.ids()]
    assert all(isinstance(c, int) and c > 40 for c in counts)
    assert len(page.histogram.counts) == 120
    over = [r for r in range(page.model.total()) if page.model.data(page.model.index(r, COL_ISSUES))]
    assert over and all(int(page.model.data(page.model.index(r, COL_TOKENS))) > 55 for r in over)
    page.issues_only.setChecked(True)
    assert page.model.total() == sum(1 for c in counts if c > 55)
    page.issues_only.setChecked(False)
    page.select_row(1)
    page.tabs.setCurrentWidget(page.preview)
    assert page.preview.preview is not None
    assert page.preview.preview.count == ws.summary(ws.ids()[1]).tokens
    assert 0 < page.preview.preview.trained < page.preview.preview.count
    # the whole-set template probe: rows whose reply lies past max length train nothing, and say so
    probe = page.probe
    assert probe is not None and probe["rows"] == 120 and probe["note"] is None
    assert page.preview.probe_label.isVisibleTo(page)
    for z in probe["zero_trained"]:
        assert z["reason"].startswith("cut by max length") and ws.summary(z["id"]).tokens > 55
    assert (
        f"{len(probe['zero_trained']):,} of 120 rows train no token" in page.preview.probe_label.text()
        or (not probe["zero_trained"] and "Every one of the 120 rows" in page.preview.probe_label.text())
    )


def test_cancel_token_counting(qtbot, sample_data: Path, monkeypatch) -> None:
    from core.data.tokens import TokenCounter
    from core.progress import check_stop

    page = _page(qtbot, sample_data)
    ws = page.workspace
    assert ws is not None

    class Endless(TokenCounter):
        def __init__(self) -> None:
            self.name = "endless"

        def count(self, conversations, progress=None, should_stop=None, batch_size=0):  # type: ignore[override]
            while True:  # until the user cancels
                check_stop(should_stop)
                time.sleep(0.001)  # inside the worker thread, not the test

    page.counter = Endless()
    page._counter_model = page._model_id()
    page.count_tokens()
    assert page.job_cancel.isVisibleTo(page)
    with qtbot.waitSignal(page._count_job.done, timeout=10000):
        page.job_cancel.click()
    assert all(ws.summary(i).tokens is None for i in ws.ids())
    assert page.count_button.isEnabled()


def test_large_workspace_is_fetched_lazily(qtbot, tmp_path: Path, sample_data: Path) -> None:
    rows = sample_data.read_bytes().splitlines()
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(rows[i % len(rows)] for i in range(12_000)) + b"\n")
    page = _page(qtbot, path)
    assert page.model.total() == 12_000
    assert page.model.rowCount() <= 2 * FETCH_CHUNK
    page.table.scrollToBottom()
    qtbot.waitUntil(lambda: page.model.rowCount() > FETCH_CHUNK, timeout=5000)
    page.show_example(page.model.ids()[-1])
    assert page.model.rowCount() == 12_000
    assert page._current_id == page.model.ids()[-1]
    _wait_idle(qtbot, page)


def test_csv_and_parquet_open(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("prompt,completion\nhi,hello\n2+2,4\n", encoding="utf-8")
    page = _page(qtbot, path)
    assert page.workspace is not None and page.workspace.source_format == "prompt-completion"
    assert page.model.total() == 2
    assert json.loads(json.dumps(page.workspace.stats()))["examples"] == 2
    _wait_idle(qtbot, page)


def test_changes_from_other_pages_show_on_return(qtbot, sample_data: Path) -> None:
    page = _page(qtbot, sample_data)
    ws = page.workspace
    assert ws is not None
    page.hide()
    ws.delete(ws.ids()[:3])  # as the Duplicates page does, on the shared workspace
    page.show()
    assert page.model.total() == 117 and page.bin_button.text() == "Bin (3)"
    _wait_idle(qtbot, page)


def test_format_override_reads_the_file_again(qtbot, tmp_path: Path) -> None:
    rows = [{"instruction": "a", "output": "b"}, {"prompt": "c", "completion": "d"}]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    page = _page(qtbot, path)
    assert page.workspace is not None and page.workspace.source_format == "alpaca"
    with qtbot.waitSignal(page.ctx.workspaceChanged, timeout=30000):
        page.reimport("prompt-completion", confirm=False)
    ws = page.workspace
    assert ws.source_format == "prompt-completion" and ws.count() == 1
    assert [b.line for b in ws.bad_lines()] == [1]
    _wait_idle(qtbot, page)
