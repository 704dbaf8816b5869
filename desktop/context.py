"""AppContext: the state shared by the pages (settings, model registry, current workspace and run)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from core.models import ModelRegistry
from core.settings import Settings, load_settings, save_settings


class AppContext(QObject):
    """Pages receive this in `__init__`; they talk to each other only through its signals."""

    workspaceChanged = Signal(str)  # path of the opened workspace
    workspaceEdited = Signal(str)  # a page other than Data changed rows of the open workspace (its name)
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

    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = ModelRegistry()
        return self._registry

    def save_settings(self) -> None:
        save_settings(self.settings)

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
