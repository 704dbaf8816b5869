"""The run picker of the Evaluate and Export pages: the runs folder's runs (newest first) in a list, and a
Browse… button for a run folder elsewhere. A pick goes through AppContext.set_run, so every page follows."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QWidget

from core.runs import list_runs, run_summary, runs_root
from desktop.context import AppContext
from desktop.widgets.safe_inputs import SafeComboBox

PLACEHOLDER = "Choose a run…"


def newest_finished_run(root: Path) -> Path | None:
    """The newest run that finished (or was stopped) with a trained adapter, or None. The status is the one
    the Runs list shows (core.runs.run_summary): a stopped run resumed and then interrupted is not "stopped"."""
    for run in list_runs(root):
        if not (run.adapter_dir / "adapter_config.json").exists() or run.is_running():
            continue
        if run_summary(run)["status"] in ("finished", "stopped"):
            return run.path
    return None


class RunPicker(QWidget):
    """ "Run: [list of runs] [Browse…]". `runPicked(path)` when the user picks one (not when set_run selects
    one); `invalidFolder(path)` when Browse… chose a folder that is not a run."""

    runPicked = Signal(str)
    invalidFolder = Signal(str)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Run:"))
        self.combo = SafeComboBox()
        self.combo.setMinimumWidth(360)
        self.combo.currentIndexChanged.connect(self._on_index)
        row.addWidget(self.combo, 1)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setToolTip("Choose a run folder outside the runs folder")
        self.browse_button.clicked.connect(self.browse)
        row.addWidget(self.browse_button)
        self.refresh()

    def runs(self) -> list[Path]:
        return [Path(self.combo.itemData(i)) for i in range(self.combo.count()) if self.combo.itemData(i)]

    def refresh(self) -> None:
        """List the runs again (runs trained since), keeping the one shown."""
        current = self.run_dir()
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem(PLACEHOLDER, "")
        for run in list_runs(runs_root(self.ctx.settings)):
            self.combo.addItem(run.path.name, str(run.path))
        if current is not None and self.combo.findData(str(current)) < 0:
            self.combo.addItem(str(current), str(current))
        if current is not None:
            self.combo.setCurrentIndex(self.combo.findData(str(current)))
        self.combo.blockSignals(False)

    def run_dir(self) -> Path | None:
        data = self.combo.currentData() if self.combo.count() else ""
        return Path(data) if data else None

    def set_run(self, run_dir: str) -> bool:
        """Show `run_dir` (added to the list if it is elsewhere) without emitting runPicked; True if it
        changed."""
        if self.combo.findData(run_dir) < 0:
            self.combo.addItem(Path(run_dir).name, run_dir)
        index = self.combo.findData(run_dir)
        if index == self.combo.currentIndex():
            return False
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(index)
        self.combo.blockSignals(False)
        return True

    def _on_index(self, _index: int) -> None:
        path = self.run_dir()
        self.runPicked.emit(str(path) if path is not None else "")

    def browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Choose a run folder", str(runs_root(self.ctx.settings))
        )
        if not folder:
            return
        if not (Path(folder) / "config.yaml").exists():
            self.invalidFolder.emit(folder)
            return
        self.set_run(folder)
        self.runPicked.emit(folder)
