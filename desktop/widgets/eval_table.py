"""Evaluate page widgets: the metric summary table and the side-by-side examples table (a view over the
per-example rows that core/evaluation/evaluate.py writes)."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSizePolicy,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from core.evaluation.metrics import METRIC_LABELS, format_metric

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ID_ROLE = Qt.ItemDataRole.UserRole + 2
_GOOD = QColor("#1a7f37")
_BAD = QColor("#c62828")


def _short(text: str, limit: int = 160) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class MetricSummaryTable(QTableWidget):
    """Metric | Base | Tuned | Difference | 95% CI, from an evaluation summary."""

    HEADERS = ("Metric", "Base", "Tuned", "Difference", "95% CI of difference")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(self.HEADERS), parent)
        self.setHorizontalHeaderLabels(list(self.HEADERS))
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(False)
        self.verticalHeader().setDefaultSectionSize(22)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Maximum)

    def set_summary(self, summary: dict[str, Any] | None) -> None:
        self.setRowCount(0)
        if not summary:
            return
        base = summary.get("base", {})
        tuned = summary.get("tuned", {})
        deltas = summary.get("delta", {})
        for metric, b in base.items():
            t = tuned.get(metric)
            d = deltas.get(metric)
            diff = d.get("value") if d else (t - b if t is not None and b is not None else None)
            ci = "–"
            if d and d.get("ci_low") is not None:
                ci = f"[{format_metric(metric, d['ci_low'])}, {format_metric(metric, d['ci_high'])}]"
            row = self.rowCount()
            self.insertRow(row)
            cells = [METRIC_LABELS.get(metric, metric), format_metric(metric, b), format_metric(metric, t)]
            sign = "+" if isinstance(diff, float) and diff > 0 else ""
            cells += [sign + format_metric(metric, diff), ci]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if col == 3 and isinstance(diff, float) and diff and metric != "length_ratio":
                    better = diff < 0 if metric == "perplexity" else diff > 0
                    item.setForeground(QBrush(_GOOD if better else _BAD))
                self.setItem(row, col, item)
        self.updateGeometry()

    def sizeHint(self) -> QSize:  # as tall as its rows (the minimum stays small, so the window never grows)
        hint = super().sizeHint()
        rows = sum(self.rowHeight(r) for r in range(self.rowCount()))
        width = sum(self.columnWidth(c) for c in range(self.columnCount())) + 6
        return QSize(max(width, hint.width() // 2), self.horizontalHeader().sizeHint().height() + rows + 6)


class ExamplesModel(QAbstractTableModel):
    """Rows of the evaluation: id, prompt, reference, both answers, and the chosen metric per side."""

    COLUMNS = ("ID", "Prompt", "Reference", "Base answer", "Tuned answer", "Base", "Tuned", "Δ")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self.metric = "token_f1"

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def set_metric(self, metric: str) -> None:
        self.beginResetModel()
        self.metric = metric
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole and section >= 5:
            label = METRIC_LABELS.get(self.metric, self.metric)
            return f"{label}: " + (
                "tuned minus base" if section == 7 else f"{self.COLUMNS[section].lower()} model"
            )
        return None

    def score(self, row: dict[str, Any], side: str) -> float | None:
        value = row.get(f"{side}_scores", {}).get(self.metric)
        return float(value) if value is not None else None

    def delta(self, row: dict[str, Any]) -> float | None:
        b, t = self.score(row, "base"), self.score(row, "tuned")
        return None if b is None or t is None else t - b

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        col = index.column()
        if role == ID_ROLE:
            return row["id"]
        values: list[Any] = [
            row["id"],
            row.get("prompt", ""),
            row.get("reference", ""),
            row.get("base", ""),
            row.get("tuned", ""),
            self.score(row, "base"),
            self.score(row, "tuned"),
            self.delta(row),
        ]
        value = values[col]
        if role == Qt.ItemDataRole.DisplayRole:
            if col >= 5:
                text = format_metric(self.metric, value)
                return ("+" + text) if col == 7 and isinstance(value, float) and value > 0 else text
            text = _short(value)
            if col == 3 and row.get("base_hit_max_tokens") or col == 4 and row.get("tuned_hit_max_tokens"):
                text += "  [cut off]"
            return text
        if role == Qt.ItemDataRole.ToolTipRole and 1 <= col <= 4:
            return str(value)[:2000]
        if role == SORT_ROLE:
            if col >= 5:
                return -math.inf if value is None else value
            return index.row() if col == 0 else str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole and col >= 5:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and col == 7 and isinstance(value, float) and value:
            return QBrush(_GOOD if value > 0 else _BAD)
        return None


class ExamplesTable(QTableView):
    """The examples table; sortable by any column (numbers sort numerically)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = ExamplesModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.source)
        self.proxy.setSortRole(SORT_ROLE)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setWordWrap(False)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for col in (1, 2, 3, 4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 64), (5, 64), (6, 64), (7, 64)):
            self.setColumnWidth(col, width)
        header.setStretchLastSection(False)
        self.verticalHeader().setDefaultSectionSize(24)

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.source.set_rows(rows)

    def sort_by(self, mode: str) -> None:
        """mode: 'improvement' (largest Δ first), 'regression' (most negative first) or 'order'."""
        if mode == "improvement":
            self.sortByColumn(7, Qt.SortOrder.DescendingOrder)
        elif mode == "regression":
            self.sortByColumn(7, Qt.SortOrder.AscendingOrder)
        else:
            self.sortByColumn(0, Qt.SortOrder.AscendingOrder)

    def example_id_at(self, row: int) -> str:
        return str(self.proxy.index(row, 0).data(ID_ROLE))

    def row_data(self, proxy_row: int) -> dict[str, Any]:
        source_row = self.proxy.mapToSource(self.proxy.index(proxy_row, 0)).row()
        return self.source.rows[source_row]
