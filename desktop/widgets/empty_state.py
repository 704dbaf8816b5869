"""A friendly empty state: a title, a line of explanation, and an optional action button."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget


class EmptyState(QWidget):
    def __init__(
        self,
        title: str,
        text: str,
        action_text: str | None = None,
        on_action: Callable[[], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._layout = layout = QVBoxLayout(self)
        layout.addStretch(1)
        self.heading = heading = QLabel(title)
        heading.setObjectName("emptyTitle")
        heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.body = body = QLabel(text)
        body.setObjectName("emptyText")
        body.setWordWrap(True)
        body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        body.setMaximumWidth(560)
        body.setMinimumWidth(280)
        body.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout.addWidget(heading, 0, Qt.AlignmentFlag.AlignHCenter)
        # Centred by stretches, not by an alignment flag: an aligned word-wrapped label gets its one-line
        # size hint and is cut off; in a row the layout asks it for its height at the width it gets.
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(body, 10)
        row.addStretch(1)
        layout.addLayout(row)
        self.button: QPushButton | None = None
        if action_text:
            self.button = QPushButton(action_text)
            self.button.setObjectName("primary")
            if on_action:
                self.button.clicked.connect(on_action)
            layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignCenter)
        layout.addStretch(2)

    def add_widget(self, widget: QWidget) -> None:
        """Another centred control under the text and button (above the bottom stretch)."""
        self._layout.insertWidget(self._layout.count() - 1, widget, 0, Qt.AlignmentFlag.AlignCenter)

    def set_text(self, title: str, text: str) -> None:
        self.heading.setText(title)
        self.body.setText(text)
