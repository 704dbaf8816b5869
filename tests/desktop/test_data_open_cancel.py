"""Data page: Cancel while a file opens, or while it is read again, loses nothing and leaves nothing half-made.

The import is held at its first `should_stop()` check (after its first chunk of rows) until the test presses
Cancel, so nothing depends on timing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import core.data.workspace as workspace_module
from core import paths
from core.data.workspace import staging_path_for, workspace_path_for
from core.progress import StopFn, check_stop
from desktop.context import AppContext
from desktop.pages.data import DataPage
from tests.core.test_import_cancel import _support_chats


class HoldAtFirstCheck:
    """Stands in for core.data.workspace.check_stop: the first check of the import waits there (in the worker
    thread) until the job is cancelled, then stops as the real one does."""

    def __init__(self) -> None:
        self.reached = threading.Event()

    def __call__(self, should_stop: StopFn | None) -> None:
        if should_stop is not None and not self.reached.is_set():
            self.reached.set()
            deadline = time.monotonic() + 60  # (only if the test failed before pressing Cancel)
            while not should_stop() and time.monotonic() < deadline:
                threading.Event().wait(0.005)
        check_stop(should_stop)


def _page(qtbot, path: Path) -> DataPage:
    page = DataPage(AppContext())
    qtbot.addWidget(page)
    page.resize(1300, 800)
    page.show()
    with qtbot.waitSignal(page.ctx.workspaceChanged, timeout=30000):
        page.open_path(str(path))
    qtbot.waitUntil(lambda: not page._jobs, timeout=60000)  # the search index too: the hold is for the import
    return page


def _statuses(page: DataPage) -> list[str]:
    seen: list[str] = []
    page.ctx.statusMessage.connect(lambda text, _ms: seen.append(text))
    return seen


def _cancel(qtbot, page: DataPage, hold: HoldAtFirstCheck) -> None:
    qtbot.waitUntil(hold.reached.is_set, timeout=30000)
    assert page.job_cancel.isVisible() and page.job_cancel.isEnabled()
    runner = page.job_row.runner
    assert runner is not None
    with qtbot.waitSignal(runner.done, timeout=30000):
        page.job_cancel.click()


def test_cancel_opening_keeps_the_open_workspace(
    qtbot, tmp_path: Path, sample_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = _page(qtbot, sample_data)
    ws = page.workspace
    assert ws is not None and page.model.total() == 120
    kept = sorted(p.name for p in paths.workspaces_dir().iterdir())
    big = _support_chats(tmp_path / "support.jsonl")
    hold = HoldAtFirstCheck()
    monkeypatch.setattr(workspace_module, "check_stop", hold)
    statuses = _statuses(page)

    page.open_path(str(big))
    qtbot.waitUntil(hold.reached.is_set, timeout=30000)
    assert page.workspace is ws and page.model.total() == 120  # shown while the other file is read
    _cancel(qtbot, page, hold)

    assert page.workspace is ws and page.ctx.workspace is ws
    assert page.stack.currentWidget() is page.main and page.model.total() == 120
    assert ws.count() == 120 and ws.get(ws.ids()[0]).messages  # still open: its rows read as before
    assert not workspace_path_for(big).exists()
    assert sorted(p.name for p in paths.workspaces_dir().iterdir()) == kept  # no new or temporary file
    assert statuses[-1] == "Opening support.jsonl was cancelled; sample_dataset.jsonl is open as it was."
    assert not page.job_row.is_running() and page.open_button.isEnabled()

    monkeypatch.setattr(workspace_module, "check_stop", check_stop)  # the page opens it when asked again
    with qtbot.waitSignal(page.ctx.workspaceChanged, timeout=30000):
        page.open_path(str(big))
    assert page.workspace is not ws and page.model.total() == 3_000
    qtbot.waitUntil(lambda: not page._jobs, timeout=60000)


def test_cancel_the_first_opening_leaves_the_page_empty(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = DataPage(AppContext())
    qtbot.addWidget(page)
    page.show()
    big = _support_chats(tmp_path / "support.jsonl")
    hold = HoldAtFirstCheck()
    monkeypatch.setattr(workspace_module, "check_stop", hold)
    statuses = _statuses(page)
    page.open_path(str(big))
    _cancel(qtbot, page, hold)
    assert page.workspace is None and page.stack.currentWidget() is page.empty
    assert not workspace_path_for(big).exists()
    assert statuses[-1] == "Opening support.jsonl was cancelled; nothing was opened."


def test_cancel_reading_again_keeps_rows_and_edits(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _support_chats(tmp_path / "support.jsonl", rows=1_200)
    page = _page(qtbot, data)
    ws = page.workspace
    assert ws is not None
    first = ws.get(ws.ids()[0])
    first.messages[1].content = "Ticket 0, edited: the router drops Wi-Fi at night."
    page.save_example(first)
    ws.delete(ws.ids()[1:4])
    page.model.set_workspace(ws, ws.ids())
    undo_steps = page.undo_stack.count()
    before = {i: ws.get(i).to_dict() for i in ws.ids()}
    hold = HoldAtFirstCheck()
    monkeypatch.setattr(workspace_module, "check_stop", hold)
    statuses = _statuses(page)

    page.reimport("prompt-completion", confirm=False)
    qtbot.waitUntil(hold.reached.is_set, timeout=30000)
    assert page.workspace is ws and page.model.total() == 1_197  # shown, unchanged, while the file is read
    assert not page.editor.isEnabled()  # nothing typed now could be lost
    _cancel(qtbot, page, hold)

    assert page.workspace is ws and page.ctx.workspace is ws
    assert page.model.total() == 1_197 and ws.source_format == "messages"
    assert {i: ws.get(i).to_dict() for i in ws.ids()} == before
    assert ws.get(first.id).messages[1].content.endswith("edited: the router drops Wi-Fi at night.")
    assert len(ws.deleted_ids()) == 3
    assert page.undo_stack.count() == undo_steps and page.editor.isEnabled()
    assert not staging_path_for(ws.path).exists()
    assert (
        statuses[-1]
        == "Reading support.jsonl as prompt-completion was cancelled; support.jsonl is open as it was."
    )


def test_reading_again_that_fails_keeps_the_workspace(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, messages: list[str]
) -> None:
    from core.data.workspace import DatasetWorkspace
    from core.errors import UserError

    data = _support_chats(tmp_path / "support.jsonl", rows=600)
    page = _page(qtbot, data)
    ws = page.workspace
    assert ws is not None
    ws.delete(ws.ids()[:2])
    page.model.set_workspace(ws, ws.ids())
    create = DatasetWorkspace.create_from_file

    def half_then_fail(source, target, **kw):  # writes the staging file, then the disk "fills"
        create(source, target, **kw).close()
        raise UserError("The disk is full: 0 MB free where the workspace is kept.")

    monkeypatch.setattr(DatasetWorkspace, "create_from_file", half_then_fail)
    runner_done = []
    page.reimport("messages", confirm=False)
    runner = page.job_row.runner
    assert runner is not None
    runner.done.connect(lambda: runner_done.append(True))
    qtbot.waitUntil(lambda: bool(runner_done), timeout=30000)
    assert messages == ["The disk is full: 0 MB free where the workspace is kept."]
    assert page.workspace is ws and ws.count() == 598 and page.model.total() == 598
    assert not staging_path_for(ws.path).exists()  # what the failed job had built is gone
    assert page.editor.isEnabled() and page._opening is None


def test_reading_again_stops_the_old_readers_before_the_swap(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search-index reader of the old file still running when the new file is to take its place is stopped
    first (SQLite finds a file's -wal by name); the new file then keeps an edit made on it."""
    data = _support_chats(tmp_path / "support.jsonl", rows=600)
    page = _page(qtbot, data)
    ws = page.workspace
    assert ws is not None
    hold = HoldAtFirstCheck()
    monkeypatch.setattr(workspace_module, "check_stop", hold)
    page._build_index_in_background()  # held at its first check, until cancelled
    qtbot.waitUntil(hold.reached.is_set, timeout=30000)
    index_job = next(iter(page._jobs))
    with qtbot.waitSignal(page.ctx.workspaceChanged, timeout=30000):
        page.reimport("messages", confirm=False)
    assert not index_job.is_running()
    new = page.workspace
    assert new is not None and new is not ws and new.count() == 600
    new.delete(new.ids()[:5])  # an edit on the new file, after the swap
    page.model.set_workspace(new, new.ids())
    qtbot.waitUntil(lambda: not page._jobs, timeout=60000)
    path = new.path
    page.close()
    from core.data.workspace import DatasetWorkspace

    with DatasetWorkspace.open(path) as again:
        assert again.count() == 595
