"""A spin box whose number can be deleted: an empty field means "no value" (its minimum, shown as the special
value text such as "min"), instead of snapping back to the old number when the field loses focus."""

from __future__ import annotations

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QSpinBox

from desktop.widgets.safe_inputs import WheelNeedsFocus


class ClearableSpinBox(WheelNeedsFocus, QSpinBox):
    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        if not text.strip():
            return (QValidator.State.Acceptable, text, pos)
        return super().validate(text, pos)

    def valueFromText(self, text: str) -> int:
        if not text.strip():
            return self.minimum()
        return super().valueFromText(text)
