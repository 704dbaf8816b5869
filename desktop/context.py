"""AppContext: the state shared by the pages (settings, model registry, current workspace and run, and the
workspace's one undo history)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from core.models import ModelRegistry
from core.settings import Settings, load_settings, save_settings


class WorkspaceCommand(QUndoCommand):
    """An undoable workspace operation that has already been applied, from any page: undo applies its inverse
    operation, redo applies the inverse of that (each core workspace operation returns its own inverse).

    `replay(command, redo)` is the pushing page's way of applying `command.inverse` (undo) or `command.forward`
    (redo) and refreshing its views; it hands the operation the workspace returned to `landed` (at once, or
    once a background change of many `rows` has landed)."""

    def __init__(
        self,
        description: str,
        inverse: Any,
        replay: Callable[[WorkspaceCommand, bool], None],
        rows: int = 1,
    ) -> None:
        super().__init__(description)
        self.inverse: Any = inverse
        self.forward: Any = None
        self.rows = rows
        self._replay = replay
        self._first = True

    def redo(self) -> None:
        if self._first:  # pushed after the change happened
            self._first = False
            return
        self._replay(self, True)

    def undo(self) -> None:
        self._replay(self, False)

    def operation(self, redo: bool) -> Any:
        """The operation that undoes (redo False) or redoes this step now."""
        return self.forward if redo else self.inverse

    def landed(self, redo: bool, inverse: Any) -> None:
        """The replayed operation has been applied; `inverse` is what reverses it."""
        if redo:
            self.inverse = inverse
        else:
            self.forward = inverse


class WorkspaceUndoStack(QUndoStack):
    """The open workspace's one undo history, shared by the Data and Duplicates pages, so an undo on either
    page reverts the latest change of both, in order. While a background change of many rows runs
    (`AppContext.workspaceBusy`), undo and redo are refused like any other edit (this covers calls from code
    too), so steps never run out of order."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__(ctx)
        self._ctx = ctx
        self.busy = ""
        ctx.workspaceBusy.connect(self._on_busy)

    def _on_busy(self, text: str) -> None:
        self.busy = text

    def _refused(self) -> bool:
        if not self.busy:
            return False
        self._ctx.status(f"{self.busy} Wait until it has finished.")
        return True

    def undo(self) -> None:
        if not self._refused():
            super().undo()

    def redo(self) -> None:
        if not self._refused():
            super().redo()


class AppContext(QObject):
    """Pages receive this in `__init__`; they talk to each other only through its signals."""

    workspaceChanged = Signal(str)  # path of the opened workspace
    # rows of the open workspace changed where another page does not see it (the name of the page that
    # changed them): a removal on Duplicates, an undo/redo on the shared history
    workspaceEdited = Signal(str)
    workspaceBusy = Signal(str)  # what a background change is doing to the workspace; "" once it has landed
    openWorkspaceRequested = Signal(str)  # a data file or workspace path the user asked to open
    runChanged = Signal(str)  # run folder now selected (Train -> Evaluate/Export)
    showExampleRequested = Signal(str)  # example id to show on the Data page
    navigateRequested = Signal(str)  # page key
    statusMessage = Signal(str, int)  # text, timeout ms

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or load_settings()
        self._registry: ModelRegistry | None = None
        self.workspace_path: Path | None = None
        self.run_dir: Path | None = None
        self.workspace: object | None = None  # core.data.workspace.DatasetWorkspace once open
        self.undo_stack = WorkspaceUndoStack(self)  # the workspace's edits from every page, in order

    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = ModelRegistry()
        return self._registry

    def save_settings(self) -> None:
        save_settings(self.settings)

    def workspace_name(self) -> str:
        """The open workspace as the user knows it: the file they imported ("helpdesk.csv"), not the internal
        workspace file ("helpdesk-266b7ad9c3.wsdb"); "" when none is open."""
        meta = getattr(self.workspace, "meta", None)
        source = meta("source") if meta is not None else None
        if source:
            return Path(source).name
        return self.workspace_path.name if self.workspace_path is not None else ""

    def set_workspace(self, path: str | Path, workspace: object | None = None) -> None:
        self.workspace_path = Path(path)
        self.workspace = workspace
        self.settings.add_recent(path)
        self.save_settings()
        self.workspaceChanged.emit(str(path))

    def set_run(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.runChanged.emit(str(run_dir))

    def status(self, text: str, timeout_ms: int = 5000) -> None:
        self.statusMessage.emit(text, timeout_ms)
