"""Combo and spin boxes that a mouse wheel changes only after the user clicked or tabbed into them.

Qt's own boxes take every wheel event that passes over them, so scrolling a long form changed the settings
under the pointer (the Train page's attention kernel became flash_attention_2 and the preset Custom). These
ignore the wheel until they have focus, so it scrolls the page instead; clicking or tabbing in still works
(StrongFocus: no focus from the wheel itself).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox


class WheelNeedsFocus:
    """Mixin for a Qt input: the wheel changes it only while it has focus (clicked or tabbed into; the wheel
    itself gives no focus), otherwise the event goes on to the parent and the page scrolls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # type: ignore[attr-defined]

    def wheelEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if self.hasFocus():  # type: ignore[attr-defined]
            super().wheelEvent(event)  # type: ignore[misc]
        else:
            event.ignore()


class SafeComboBox(WheelNeedsFocus, QComboBox):
    pass


class SafeSpinBox(WheelNeedsFocus, QSpinBox):
    pass


class SafeDoubleSpinBox(WheelNeedsFocus, QDoubleSpinBox):
    pass
