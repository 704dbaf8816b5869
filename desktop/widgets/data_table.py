"""ExampleTableModel: a QAbstractTableModel over a DatasetWorkspace's (filtered) rows.

It holds only the list of row ids; each cell is read on demand from the workspace's in-memory row summaries
(previews, split, tags, tokens, issues), so 100,000 rows cost no widgets and no decoding. Rows are exposed
to the view in chunks through canFetchMore/fetchMore, so the view never lays out more than it shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from core.data.workspace import DatasetWorkspace

COLUMNS = ("First user turn", "Assistant reply", "Tokens", "Split", "Tags", "Issues")
COL_USER, COL_ASSISTANT, COL_TOKENS, COL_SPLIT, COL_TAGS, COL_ISSUES = range(6)
ID_ROLE = Qt.ItemDataRole.UserRole + 1
FETCH_CHUNK = 2000
_SPLIT_COLOURS = {"train": "#e8f1ff", "validation": "#fff5e0", "test": "#ffe9ec"}

Index = QModelIndex | QPersistentModelIndex


class ExampleTableModel(QAbstractTableModel):
    def __init__(self, workspace: DatasetWorkspace | None = None, parent: Any = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self._ids: list[str] = []
        self._loaded = 0
        self.max_length: int | None = None
        self._bold = QFont()
        self._bold.setBold(True)

    # --- content -----------------------------------------------------------------------------------
    def set_rows(self, ids: Sequence[str]) -> None:
        self.beginResetModel()
        self._ids = list(ids)
        self._loaded = min(len(self._ids), FETCH_CHUNK)
        self.endResetModel()

    def set_workspace(self, workspace: DatasetWorkspace | None, ids: Sequence[str] = ()) -> None:
        self.workspace = workspace
        self.set_rows(ids)

    def ids(self) -> list[str]:
        return self._ids

    def id_at(self, row: int) -> str:
        return self._ids[row]

    def row_of(self, id_: str) -> int:
        try:
            row = self._ids.index(id_)
        except ValueError:
            return -1
        while row >= self._loaded and self.canFetchMore(QModelIndex()):
            self.fetchMore(QModelIndex())
        return row

    def total(self) -> int:
        return len(self._ids)

    def refresh_rows(self, ids: Sequence[str]) -> None:
        """Repaint rows whose summary changed (edits that keep the row set)."""
        wanted = set(ids)
        rows = [r for r, i in enumerate(self._ids[: self._loaded]) if i in wanted]
        if rows:
            self.dataChanged.emit(self.index(min(rows), 0), self.index(max(rows), len(COLUMNS) - 1))

    # --- Qt model API ------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self._loaded

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def canFetchMore(self, parent: Index) -> bool:
        return not parent.isValid() and self._loaded < len(self._ids)

    def fetchMore(self, parent: Index) -> None:
        if parent.isValid():
            return
        more = min(FETCH_CHUNK, len(self._ids) - self._loaded)
        if more <= 0:
            return
        self.beginInsertRows(QModelIndex(), self._loaded, self._loaded + more - 1)
        self._loaded += more
        self.endInsertRows()

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            if orientation == Qt.Orientation.Horizontal:
                return COLUMNS[section]
            return str(section + 1)
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self.workspace is None or index.row() >= len(self._ids):
            return None
        id_ = self._ids[index.row()]
        if role == ID_ROLE:
            return id_
        s = self.workspace.summary(id_)
        col = index.column()
        over = s.tokens is not None and self.max_length is not None and s.tokens > self.max_length
        if role == Qt.ItemDataRole.DisplayRole:
            if col == COL_USER:
                return s.user
            if col == COL_ASSISTANT:
                return s.assistant
            if col == COL_TOKENS:
                return "" if s.tokens is None else f"{s.tokens:,}"
            if col == COL_SPLIT:
                return s.split or ""
            if col == COL_TAGS:
                return ", ".join(s.tags)
            if col == COL_ISSUES:
                parts = [s.issues] if s.issues else []
                if over:
                    parts.append(f"longer than {self.max_length:,} tokens")
                return "; ".join(parts)
        elif role == Qt.ItemDataRole.ToolTipRole:
            if col == COL_TOKENS and over:
                return (
                    f"{s.tokens:,} tokens: longer than the max length ({self.max_length:,}); it will be cut."
                )
            if col == COL_ISSUES and (s.issues or over):
                return self.data(index, Qt.ItemDataRole.DisplayRole)
            if col in (COL_USER, COL_ASSISTANT):
                return s.user if col == COL_USER else s.assistant
        elif role == Qt.ItemDataRole.ForegroundRole:
            if (col == COL_TOKENS and over) or col == COL_ISSUES:
                return QBrush(QColor("#b3261e"))
        elif role == Qt.ItemDataRole.FontRole:
            if col == COL_TOKENS and over:
                return self._bold
        elif role == Qt.ItemDataRole.BackgroundRole:
            if col == COL_SPLIT and s.split in _SPLIT_COLOURS:
                return QBrush(QColor(_SPLIT_COLOURS[s.split]))
        elif role == Qt.ItemDataRole.TextAlignmentRole:
            if col == COL_TOKENS:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
