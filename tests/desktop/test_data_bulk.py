"""Data page: changes of many rows run in a worker thread (its own SQLite connection) while the window keeps
running; edits wait for them; they land on the undo stack, and undo/redo run in the background too."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QInputDialog

import core.data.splits
from core.data.tokens import TokenCounter
from core.data.workspace import DatasetWorkspace
from core.errors import UserError
from desktop.pages.data import DataPage
from tests.desktop.test_data_page import _page as open_page
from tests.desktop.test_data_page import _wait_idle

ROWS = 2 * DataPage.BACKGROUND_ROWS  # a workspace whose assign-splits takes the background path


@pytest.fixture
def big_data(tmp_path: Path, sample_data: Path) -> Path:
    rows = sample_data.read_bytes().splitlines()
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(rows[i % len(rows)] for i in range(ROWS)) + b"\n")
    return path


@pytest.fixture
def held_assignment(monkeypatch: pytest.MonkeyPatch):
    """Hold core's split assignment (which runs inside the background change) until the test releases it."""
    entered, release = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []
    real = core.data.splits.assign_splits

    def held(*args, **kwargs):
        threads.append(threading.current_thread())
        entered.set()
        assert release.wait(60), "the test never released the change"
        return real(*args, **kwargs)

    monkeypatch.setattr(core.data.splits, "assign_splits", held)
    yield entered, release, threads
    release.set()  # never leave the worker waiting, whatever the test did


def _page(qtbot, path: Path) -> DataPage:
    page = open_page(qtbot, path)
    _wait_idle(qtbot, page)  # the text index builds in the background
    return page


def _landed(qtbot, page: DataPage) -> None:
    qtbot.waitUntil(lambda: not page.bulk_running(), timeout=60000)
    qtbot.waitUntil(lambda: not page._jobs, timeout=60000)


def _splits(ws: DatasetWorkspace) -> dict[str, str | None]:
    return {i: ws.summary(i).split for i in ws.ids()}


def _editing_actions(page: DataPage) -> list:
    return [
        page.add_button,
        page.tag_button,
        page.move_button,
        page.duplicate_button,
        page.delete_button,
        page.splits.assign_button,
        page.editor,
        page.open_button,
        page.format_button,
    ]


def test_assign_splits_runs_in_background_blocks_edits_and_undoes(
    qtbot, big_data: Path, held_assignment, messages
) -> None:
    entered, release, threads = held_assignment
    page = _page(qtbot, big_data)
    ws = page.workspace
    assert ws is not None and ws.count() == ROWS
    page.select_row(0)
    first = page._current_id
    assert first is not None
    before = _splits(ws)
    assert set(before.values()) == {None}
    statuses: list[str] = []
    page.ctx.statusMessage.connect(lambda text, _ms: statuses.append(text))

    page.tabs.setCurrentWidget(page.splits)
    page.splits.assign_button.click()  # returns at once: the change runs in a worker thread
    assert page.bulk_running()
    qtbot.waitUntil(entered.is_set, timeout=30000)  # the worker is inside the change now
    assert threads and threads[0] is not threading.main_thread()

    # The window's event loop keeps running while the change is held in the worker.
    ticks: list[int] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=10000)
    timer.stop()
    assert page.bulk_running()

    # The page says what it is doing and blocks every other edit until it has landed.
    assert page.bulk_label.isVisible() and page.bulk_label.text() == "Assigning splits…"
    assert page.bulk_bar.isVisible()
    assert not any(w.isEnabled() for w in _editing_actions(page))
    assert not page.undo_action.isEnabled() and not page.redo_action.isEnabled()
    page.move_selected("train")
    page.add_example()
    page.delete_selected()
    page.undo_stack.undo()  # from code too
    assert ws.count() == ROWS and ws.summary(first).split is None and page.undo_stack.count() == 0
    assert "Wait until it has finished" in statuses[-1]
    with pytest.raises(UserError, match="busy"):
        ws.set_split([first], "train")  # the workspace itself refuses a second writer
    assert not messages

    release.set()
    _landed(qtbot, page)
    counts = ws.split_counts()
    assert counts["none"] == 0 and counts["test"] > 0 and ws.test_locked
    assert statuses[-1].startswith("Splits: ")
    assigned = _splits(ws)
    with DatasetWorkspace.open(ws.path) as reader:  # what the page shows is what was committed
        assert _splits(reader) == assigned
    assert page.undo_stack.count() == 1 and page.undo_stack.undoText() == "Assign splits"
    assert all(w.isEnabled() for w in _editing_actions(page)) and page.undo_action.isEnabled()
    assert not page.bulk_label.isVisible()
    assert "locked" in page.splits.lock_label.text()
    page.split_filter.setCurrentIndex(page.split_filter.findData("test"))
    assert page.model.total() == counts["test"]
    page.split_filter.setCurrentIndex(0)

    # Undo restores the previous splits (in the background as well), redo the assigned ones.
    page.undo_stack.undo()
    assert page.bulk_running() and page.bulk_label.text() == "Undoing Assign splits…"
    _landed(qtbot, page)
    assert _splits(ws) == before and not ws.test_locked
    page.undo_stack.redo()
    _landed(qtbot, page)
    assert _splits(ws) == assigned and ws.test_locked
    assert not messages


def test_bulk_tag_move_delete_in_background_with_undo(
    qtbot, sample_data: Path, monkeypatch, messages
) -> None:
    monkeypatch.setattr(DataPage, "BACKGROUND_ROWS", 50)
    page = _page(qtbot, sample_data)
    ws = page.workspace
    assert ws is not None
    page.table.selectAll()
    ids = page.selected_ids()
    assert len(ids) == 120
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("reviewed", True))

    page.tag_button.click()
    assert page.bulk_running() and page.bulk_label.text() == "Tagging 120 examples 'reviewed'…"
    _landed(qtbot, page)
    assert all("reviewed" in ws.summary(i).tags for i in ids)
    assert page.tag_filter.findData("reviewed") >= 0  # the side panels show it

    page.move_selected("validation")
    assert page.bulk_running()
    _landed(qtbot, page)
    assert ws.split_counts()["validation"] == 120
    assert len(page.selected_ids()) == 120  # the rows stay selected

    page.delete_selected()
    _landed(qtbot, page)
    assert ws.count() == 0 and page.model.total() == 0 and page.bin_button.text() == "Bin (120)"
    assert page.bin_button.isEnabled()

    for _ in range(3):
        page.undo_stack.undo()
        assert page.bulk_running()
        _landed(qtbot, page)
    assert ws.count() == 120
    assert all(ws.summary(i).split is None and "reviewed" not in ws.summary(i).tags for i in ids)
    assert page.undo_stack.index() == 0
    page.undo_stack.redo()
    _landed(qtbot, page)
    assert all("reviewed" in ws.summary(i).tags for i in ids)
    assert ws.filter("refund")  # the text index survived the background changes
    assert not messages


def test_failed_background_change_is_one_message_and_changes_nothing(
    qtbot, sample_data: Path, monkeypatch, messages
) -> None:
    monkeypatch.setattr(DataPage, "BACKGROUND_ROWS", 50)
    page = _page(qtbot, sample_data)
    ws = page.workspace
    assert ws is not None
    page.assign_splits((0.8, 0.1, 0.1), 0, False)
    _landed(qtbot, page)
    before = _splits(ws)
    page.table.selectAll()
    page.move_selected("train")  # the locked test split cannot lose rows: the worker's change fails
    _landed(qtbot, page)
    assert len(messages) == 1 and "locked" in messages[0] and "Traceback" not in messages[0]
    assert _splits(ws) == before and page.undo_stack.count() == 1
    assert all(w.isEnabled() for w in _editing_actions(page))
    page.undo_stack.undo()  # the assignment still undoes
    _landed(qtbot, page)
    assert set(_splits(ws).values()) == {None}


def test_token_counts_finishing_during_a_bulk_change_are_stored_after_it(
    qtbot, big_data: Path, held_assignment
) -> None:
    entered, release, _threads = held_assignment
    page = _page(qtbot, big_data)
    ws = page.workspace
    assert ws is not None
    page.assign_splits((0.8, 0.1, 0.1), 0, False)
    qtbot.waitUntil(entered.is_set, timeout=30000)

    class Sevens(TokenCounter):
        def __init__(self) -> None:
            self.name = "sevens"

        def count(self, conversations, progress=None, should_stop=None, batch_size=0):  # type: ignore[override]
            return [7 for _ in conversations]

        def preview(self, messages, *args, **kwargs):  # type: ignore[override]
            raise UserError("no template preview for this counter")

    page.counter = Sevens()
    page._counter_model = page._model_id()
    page.count_tokens()
    qtbot.waitUntil(lambda: page._count_job is None, timeout=60000)
    assert ws.summary(ws.ids()[0]).tokens is None  # waits for the split assignment to land
    release.set()
    _landed(qtbot, page)
    assert {ws.summary(i).tokens for i in ws.ids()} == {7}
    assert ws.split_counts()["none"] == 0
