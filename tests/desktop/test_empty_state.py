"""The empty state shows its whole explanation, wrapped, whatever the page's width."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QLabel

from desktop.widgets.empty_state import EmptyState

LONG = (
    "Choose a trained run above (or finish one on the Train page). Both models then answer the run's "
    "held-out test split: metrics with confidence intervals, answers side by side, a blind review for "
    "domain experts and a report to share."
)


@pytest.mark.parametrize("width", [420, 900, 1400])
def test_body_text_is_wrapped_and_never_cut_off(qtbot, width: int) -> None:
    state = EmptyState("Compare the tuned model with the base model", LONG, "Run evaluation")
    qtbot.addWidget(state)
    state.resize(width, 700)
    state.show()
    qtbot.waitExposed(state)
    body = state.findChild(QLabel, "emptyText")
    assert body is not None
    assert body.width() >= min(width - 40, 280)  # wide enough to read, not squeezed to a column
    assert body.width() <= 560
    assert body.height() >= body.heightForWidth(body.width())  # every wrapped line fits
