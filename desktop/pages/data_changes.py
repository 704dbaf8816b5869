"""Data page: changes to the workspace and their undo (split from desktop/pages/data.py).

Every change is a core workspace operation wrapped in a WorkspaceCommand on the workspace's one undo history
(`AppContext.undo_stack`, shared with the Duplicates page). A change of many rows (assign splits, bulk
tag/move/delete, and their undo/redo) runs in a worker thread through a core BackgroundChange on a second
connection, with the editing actions disabled until it has landed; a one-row edit applies at once. The
functions take the page; DataPage binds them as its methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QMessageBox

from core.data.formats import RecordError
from core.data.workspace import BackgroundChange, DatasetWorkspace, Operation
from core.errors import WhetstoneError
from desktop.context import WorkspaceCommand
from desktop.workers import JobRunner

if TYPE_CHECKING:
    from desktop.pages.data import DataPage

Change = Callable[[DatasetWorkspace], Operation]  # makes a change to a workspace, returns its inverse


def push(
    page: DataPage,
    change: Change,
    description: str = "",
    rows: int = 1,
    busy_text: str = "",
    then: Callable[[], None] | None = None,
) -> bool:
    """Make a workspace change and put it on the undo stack; errors become a message.

    `change(workspace)` makes it and returns its inverse. A change of `rows` >= BACKGROUND_ROWS runs in a
    worker thread (the page says `busy_text` and refuses other edits until it has landed); `then` runs
    once it has. Returns False when the change was refused or failed at once."""
    ws = page.workspace
    if ws is None or page._refuse_while_busy():
        return False
    if ws.read_only:
        QMessageBox.warning(page, "Whetstone", ws.read_only)
        return False

    def landed(inverse: Operation) -> None:
        page.undo_stack.push(WorkspaceCommand(description or _describe(inverse), inverse, page._replay, rows))
        if then is not None:
            then()

    if rows >= page.BACKGROUND_ROWS:
        if page.editor.dirty:
            page.editor.save()  # one row, now: the typing is kept, and the editor is locked next
        page._start_bulk(busy_text or f"{description or 'Changing'}…", change, landed)
        return True
    try:
        inverse = change(ws)
    except (WhetstoneError, RecordError) as exc:
        QMessageBox.warning(page, "Whetstone", str(exc))
        return False
    page.undo_stack.push(WorkspaceCommand(description or _describe(inverse), inverse, page._replay, rows))
    page._after_change()
    if then is not None:
        then()
    return True


def _replay(page: DataPage, command: WorkspaceCommand, redo: bool) -> None:
    """Undo or redo a command (the stack has moved already), in the background when it changes many
    rows. The shared stack refuses undo/redo while a bulk change runs; should one come anyway, it waits."""

    def run() -> None:
        op = command.operation(redo)
        if page.workspace is None or op is None:
            return

        def landed(inverse: Operation) -> None:
            command.landed(redo, inverse)
            page.ctx.workspaceEdited.emit("data")  # the Duplicates page may be the one showing

        if command.rows >= page.BACKGROUND_ROWS:
            verb = "Redoing" if redo else "Undoing"
            page._start_bulk(f"{verb} {command.text()}…", lambda w: w.apply(op), landed, page._replay_failed)
        else:
            landed(page._apply_now(op))

    if page._bulk is None:
        run()
    else:
        page._queued.append(run)


def _replay_failed(page: DataPage, message: str) -> None:
    # The stack has moved past a step that did not happen: its history no longer matches the data.
    page.undo_stack.clear()
    QMessageBox.warning(page, "Whetstone", f"{message}\nThe undo history was cleared.")


def _start_bulk(
    page: DataPage,
    text: str,
    change: Change,
    landed: Callable[[Operation], None],
    failed: Callable[[str], None] | None = None,
) -> None:
    """Run a change of many rows in a worker thread, on its own connection (core BackgroundChange); the
    page keeps reading the workspace meanwhile, and its edits wait."""
    ws = page.workspace
    assert ws is not None and page._bulk is None
    job: BackgroundChange = ws.background_change(text.rstrip("…"), change)
    runner = JobRunner(job.run)
    outcome: dict[str, Any] = {}
    runner.finished.connect(lambda inverse: outcome.update(inverse=inverse))
    runner.failed.connect(lambda message: outcome.update(error=message))
    runner.cancelled.connect(lambda: outcome.update(error="Cancelled"))
    had_index = ws.search_ready
    runner.done.connect(lambda: page._bulk_done(ws, job, outcome, landed, failed, had_index))
    page._bulk = runner
    page._bulk_text = text
    page._set_editing(False)
    page.bulk_label.setText(text)
    page.bulk_label.show()
    page.bulk_bar.show()
    page.ctx.status(text)
    page.ctx.workspaceBusy.emit(text)  # other pages hold their edits meanwhile
    page._jobs.add(runner)
    runner.start()


def _bulk_done(
    page: DataPage,
    ws: DatasetWorkspace,
    job: BackgroundChange,
    outcome: dict[str, Any],
    landed: Callable[[Operation], None],
    failed: Callable[[str], None] | None,
    had_index: bool,
) -> None:
    job.finish()  # the workspace adopts the new row summaries: no reload on this thread
    page._bulk = None
    page.ctx.workspaceBusy.emit("")
    page.bulk_label.hide()
    page.bulk_bar.hide()
    page._set_editing(True)
    if page.workspace is ws:
        page.ctx.status("")
        page._after_change(job.aggregates)
        if "inverse" in outcome:
            landed(outcome["inverse"])
        elif failed is not None:
            failed(str(outcome.get("error", "")))
        else:
            QMessageBox.warning(page, "Whetstone", str(outcome.get("error", "")))
        if had_index and not ws.search_ready:
            page._build_index_in_background()  # a failed change drops the search index
    elif page.workspace is not None:
        page._refresh_side_panels()  # another workspace opened meanwhile: its bin and Issues buttons
    while page._queued and page._bulk is None:
        page._queued.pop(0)()


def bulk_running(page: DataPage) -> bool:
    """Whether a change of many rows is running (edits wait for it)."""
    return page._bulk is not None


def _refuse_while_busy(page: DataPage) -> bool:
    if page._bulk is None:
        return False
    page.ctx.status(f"{page._bulk_text} Wait until it has finished.")
    return True


def _describe(op: Operation) -> str:
    return op.description or "Edit"
