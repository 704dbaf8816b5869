"""Runs list (history with final losses and dataset version) and the two-run comparison dialog."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.runs import RunFolder, flag_label, list_runs, run_summary, status_text
from desktop.widgets.train_plot import TrainingPlot

COLUMNS = ["Run", "Status", "Model", "Steps", "Train loss", "Val loss", "Flags", "Dataset"]


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _status_cell(summary: dict[str, Any]) -> str:
    text = status_text(summary)
    if summary.get("status") == "interrupted":
        cp = summary.get("last_checkpoint")
        text += f" (last checkpoint: step {cp['step']})" if cp else " (no checkpoint)"
    return text


class RunsList(QWidget):
    runSelected = Signal(str)
    compareRequested = Signal(str, str)

    def __init__(self, root: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.root = root
        self.summaries: list[dict[str, Any]] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("runsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_selection)
        buttons = QHBoxLayout()
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.compare_button = QPushButton("Compare selected")
        self.compare_button.setToolTip(
            "Select two runs to see their settings side by side and their curves overlaid"
        )
        self.compare_button.setEnabled(False)
        self.compare_button.clicked.connect(self._compare)
        buttons.addWidget(self.refresh_button)
        buttons.addStretch(1)
        buttons.addWidget(self.compare_button)
        layout.addWidget(self.table)
        layout.addLayout(buttons)

    def refresh(self) -> None:
        selected = set(self.selected_dirs())
        self.summaries = []
        for run in list_runs(self.root):
            try:
                self.summaries.append(run_summary(run))
            except Exception:  # noqa: BLE001 - a broken folder must not hide the others
                continue
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.summaries))
        for row, s in enumerate(self.summaries):
            values = [
                s["name"],
                _status_cell(s),  # "interrupted at step N (last checkpoint: step M)" when the worker died
                Path(s["model"]).name or s["model"],
                s["steps"],
                s["final_loss"],
                s["final_eval_loss"],
                ", ".join(flag_label(f) for f in s["flags"]),
                (s["dataset_sha256"] or "")[:8],
            ]
            for col, value in enumerate(values):
                item = QTableWidgetItem(_fmt(value))
                item.setData(Qt.ItemDataRole.UserRole, s["run_dir"])
                if col == 1 and s.get("message"):
                    item.setToolTip(s["message"])  # for an interrupted run: its last complete checkpoint
                self.table.setItem(row, col, item)
            if s["run_dir"] in selected:
                self.table.selectRow(row)
        self.table.blockSignals(False)

    def update_live(
        self,
        run_dir: str,
        *,
        status: str | None = None,
        step: int | None = None,
        loss: float | None = None,
        eval_loss: float | None = None,
    ) -> None:
        """Show a training run's progress in its row as events arrive (no folder scan, no Refresh needed)."""
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is None or item.data(Qt.ItemDataRole.UserRole) != run_dir:
                continue
            for col, value in ((1, status), (3, step), (4, loss), (5, eval_loss)):
                if value is not None:
                    cell = self.table.item(row, col)
                    if cell is not None:
                        cell.setText(_fmt(value))
            return

    def selected_dirs(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedItems()})
        out = []
        for r in rows:
            item = self.table.item(r, 0)
            if item is not None:
                out.append(str(item.data(Qt.ItemDataRole.UserRole)))
        return out

    def select_run(self, run_dir: str) -> None:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == run_dir:
                self.table.selectRow(row)
                return

    def _on_selection(self) -> None:
        dirs = self.selected_dirs()
        self.compare_button.setEnabled(len(dirs) == 2)
        if len(dirs) == 1:
            self.runSelected.emit(dirs[0])

    def _compare(self) -> None:
        dirs = self.selected_dirs()
        if len(dirs) == 2:
            self.compareRequested.emit(dirs[0], dirs[1])


def config_diff(a: RunFolder, b: RunFolder) -> str:
    left = a.config_file.read_text(encoding="utf-8").splitlines()
    right = b.config_file.read_text(encoding="utf-8").splitlines()
    lines = list(difflib.unified_diff(left, right, a.path.name, b.path.name, lineterm="", n=1))
    sha_a, sha_b = a.dataset_sha256() or "?", b.dataset_sha256() or "?"
    head = [
        f"dataset: {sha_a[:12]} vs {sha_b[:12]}" + (" (same data)" if sha_a == sha_b else " (different data)")
    ]
    return "\n".join(head + (lines or ["(identical settings)"]))


class CompareDialog(QDialog):
    def __init__(self, a: str, b: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        ra, rb = RunFolder.open(a), RunFolder.open(b)
        self.setWindowTitle(f"Compare {ra.path.name} and {rb.path.name}")
        self.resize(900, 640)
        layout = QVBoxLayout(self)
        self.diff = QPlainTextEdit(config_diff(ra, rb))
        self.diff.setObjectName("configDiff")
        self.diff.setReadOnly(True)
        self.diff.setMaximumHeight(220)
        self.plot = TrainingPlot()
        self.plot.lr_plot.setVisible(False)
        for i, run in enumerate((ra, rb)):
            self.plot.overlay(run.path.name, run.curve(), i)
        layout.addWidget(self.diff)
        layout.addWidget(self.plot, 1)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        box.rejected.connect(self.reject)
        box.accepted.connect(self.accept)
        layout.addWidget(box)
