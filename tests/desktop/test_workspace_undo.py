"""The workspace's one undo history: the Data and Duplicates pages push onto the same stack (AppContext), so an
undo on either page reverts the latest change of both, in order, and each page shows the result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QStackedWidget

from desktop.context import AppContext
from desktop.main_window import MainWindow
from desktop.pages.data import DataPage
from desktop.pages.dedup import DedupPage
from tests.core.dedup_helpers import FakeEmbedder
from tests.desktop.test_dedup_page import ROWS, run_search


@pytest.fixture
def dups(tmp_path: Path) -> Path:
    data = tmp_path / "dups.jsonl"
    lines = [
        json.dumps(
            {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}], "split": s}
        )
        for u, a, s in ROWS
    ]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data


def _pages(qtbot, dups: Path) -> tuple[AppContext, QStackedWidget, DataPage, DedupPage]:
    ctx = AppContext()
    window = QStackedWidget()  # one page showing at a time, as in the main window
    qtbot.addWidget(window)
    data, dedup = DataPage(ctx), DedupPage(ctx)
    dedup.embedder_factory = lambda model: FakeEmbedder()
    window.addWidget(data)
    window.addWidget(dedup)
    window.resize(1300, 800)
    window.show()
    with qtbot.waitSignal(ctx.workspaceChanged, timeout=30000):
        ctx.openWorkspaceRequested.emit(str(dups))
    qtbot.waitUntil(lambda: not data._jobs, timeout=60000)
    return ctx, window, data, dedup


@pytest.mark.parametrize("undo_on", ["data", "dedup"])
def test_undo_on_either_page_reverts_both_pages_changes_in_order(qtbot, dups: Path, undo_on: str) -> None:
    ctx, window, data, dedup = _pages(qtbot, dups)
    ws = data.workspace
    assert ws is not None and ctx.workspace is ws and data.undo_stack is dedup.undo_stack is ctx.undo_stack

    # Duplicates page: keep the longest of the first cluster -> two rows to the bin
    window.setCurrentWidget(dedup)
    dedup.slider.setValue(900)
    run_search(qtbot, dedup)
    assert len(dedup.views) == 2
    dedup.cluster_list.setCurrentRow(0)
    dedup.keep_one("longest")
    removed = set(ws.deleted_ids())
    assert len(removed) == 2 and ws.count() == len(ROWS) - 2

    # Data page: it shows the removal, then one row is edited
    window.setCurrentWidget(data)
    assert data.model.total() == len(ROWS) - 2
    data.select_row(0)
    id_ = data._current_id
    assert id_ is not None and id_ not in removed
    before = ws.get(id_).messages[0].content
    data.editor.turn_editors()[0].text.setPlainText("An edited question")
    data.editor.save_button.click()
    assert ws.get(id_).messages[0].content == "An edited question"
    assert ctx.undo_stack.count() == 2

    page = data if undo_on == "data" else dedup
    window.setCurrentWidget(page)
    page.undo_action.trigger()  # the latest step first: the edit
    assert ws.get(id_).messages[0].content == before
    assert set(ws.deleted_ids()) == removed
    page.undo_action.trigger()  # then the removal made on the Duplicates page
    assert ws.deleted_ids() == [] and ws.count() == len(ROWS)
    if undo_on == "data":
        assert data.model.total() == len(ROWS)  # the page showing follows at once
    else:
        assert len(dedup.views) == 2
    assert ctx.undo_stack.index() == 0

    page.redo_action.trigger()  # redo in order: the removal, then the edit
    assert set(ws.deleted_ids()) == removed and ws.get(id_).messages[0].content == before
    page.redo_action.trigger()
    assert ws.get(id_).messages[0].content == "An edited question"
    assert ctx.undo_stack.index() == 2

    # each page shows the result when it is shown
    window.setCurrentWidget(data)
    assert data.model.total() == len(ROWS) - 2
    window.setCurrentWidget(dedup)
    assert [v.rows for v in dedup.views] == [[4, 5]]


def test_edit_menu_undoes_the_shared_history(qtbot, dups: Path) -> None:
    ctx = AppContext()
    window = MainWindow(ctx)
    qtbot.addWidget(window)
    window.show()
    window.show_page("data")
    data = window.stack.currentWidget()
    assert isinstance(data, DataPage)
    with qtbot.waitSignal(ctx.workspaceChanged, timeout=30000):
        ctx.openWorkspaceRequested.emit(str(dups))
    qtbot.waitUntil(lambda: not data._jobs, timeout=60000)
    ws = data.workspace
    assert ws is not None
    first = ws.ids()[0]
    data.push(lambda w: w.delete([first]), "Delete 1 example")
    assert window.undo_action.isEnabled() and window.undo_action.text() == "&Undo Delete 1 example"
    window.undo_action.trigger()
    assert ws.deleted_ids() == [] and window.redo_action.isEnabled()
    window.redo_action.trigger()
    assert ws.deleted_ids() == [first]
