"""Duplicates page (placeholder until its issue lands)."""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout, QWidget

from desktop.context import AppContext
from desktop.widgets.empty_state import EmptyState


class DedupPage(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        layout = QVBoxLayout(self)
        layout.addWidget(
            EmptyState("Duplicates", "Find exact and near-duplicate examples in the open workspace.")
        )
