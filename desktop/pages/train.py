"""Train page (placeholder until its issue lands)."""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout, QWidget

from desktop.context import AppContext
from desktop.widgets.empty_state import EmptyState


class TrainPage(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        layout = QVBoxLayout(self)
        layout.addWidget(EmptyState("Train", "Fine-tune a base model on the open workspace with QLoRA."))
