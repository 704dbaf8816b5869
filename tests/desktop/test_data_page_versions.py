"""Data page with a workspace of another schema: an old one is upgraded (and says where its backup is), a newer
one is shown read-only with a plain sentence and every edit refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.data.workspace import SCHEMA_VERSION, DatasetWorkspace
from desktop.context import AppContext
from desktop.pages.data import DataPage
from tests.core.workspace_fixtures import build_v1, table_dump


def _page(qtbot, path: Path) -> DataPage:
    ctx = AppContext()
    page = DataPage(ctx)
    qtbot.addWidget(page)
    page.resize(1300, 800)
    page.show()
    with qtbot.waitSignal(ctx.workspaceChanged, timeout=30000):
        ctx.openWorkspaceRequested.emit(str(path))
    qtbot.waitUntil(lambda: not page._jobs, timeout=60000)
    return page


def test_old_workspace_is_upgraded_and_says_where_its_backup_is(qtbot, tmp_path: Path, messages) -> None:
    path = tmp_path / "tickets.wsdb"
    exp = build_v1(path)
    page = _page(qtbot, path)
    assert page.model.total() == len(exp.order)
    assert page.notice.isVisible()
    text = page.notice.text()
    assert "upgraded" in text and str(tmp_path / "tickets.wsdb.v1-backup") in text
    assert page.editor.isEnabled() and page.delete_button.isEnabled()
    page.grab().save(str(tmp_path / "upgraded.png"))


def test_newer_workspace_is_read_only_with_a_plain_message(qtbot, tmp_path: Path, messages) -> None:
    path = tmp_path / "future.wsdb"
    with DatasetWorkspace.create(path) as ws:
        ws.add_example()
    conn = sqlite3.connect(str(path))
    conn.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    before = table_dump(path)
    page = _page(qtbot, path)
    assert page.model.total() == 1
    assert page.notice.isVisible() and "read-only" in page.notice.text()
    assert "newer Whetstone" in page.notice.text()
    for widget in (page.editor, page.delete_button, page.add_button, page.tag_button, page.format_button):
        assert not widget.isEnabled()
    assert page.open_button.isEnabled()
    # An edit that arrives anyway (a shortcut, a signal) is refused in words and changes nothing.
    page.select_row(0)
    example = page.workspace.get(page.workspace.ids()[0])
    example.notes = "try"
    page.save_example(example)
    assert messages and "read-only" in messages[-1]
    assert page.undo_stack.count() == 0
    page.grab().save(str(tmp_path / "readonly.png"))
    page.close()
    page.workspace.close()
    assert table_dump(path) == before
