"""The Qt binding must not leak references to None: with PySide6 6.12.0 on Python 3.11 every Qt call that
returns nothing dropped one, and the app aborted ("Fatal Python error: none_dealloc") once a few thousand
progress updates had run (pyproject.toml pins below 6.12 there). From Python 3.12 None is immortal."""

from __future__ import annotations

import sys

import pytest


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12: no count to lose")
def test_qt_calls_that_return_nothing_keep_nones_reference_count(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QCoreApplication, QTimer
    from PySide6.QtWidgets import QLabel, QProgressBar

    label, bar, timer = QLabel(), QProgressBar(), QTimer()
    qtbot.addWidget(label)
    qtbot.addWidget(bar)
    before = sys.getrefcount(None)
    for i in range(1000):
        label.setText(f"{i} examples")
        bar.setValue(i % 100)
        timer.setInterval(i + 1)
        QCoreApplication.processEvents()
    lost = before - sys.getrefcount(None)
    assert lost < 50, f"{lost} references to None lost in 4,000 Qt calls (PySide6 6.12 on Python 3.11?)"
