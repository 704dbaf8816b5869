"""Fixtures shared by the desktop tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.desktop.leaks import QtLeakWatch


@pytest.fixture(autouse=True)
def no_leftover_qthreads_or_qtimers() -> Iterator[QtLeakWatch]:
    """No desktop test may leave a QThread running or a QTimer active (tests/desktop/leaks.py). Runs after
    pytest-qt has closed the test's widgets: a page closed mid-job must have stopped its job's thread."""
    watch = QtLeakWatch()
    watch.install()
    try:
        yield watch
    finally:
        watch.uninstall()
    threads = watch.running_threads()
    timers = watch.active_timers() if QApplication.instance() is not None else []
    assert not threads, f"test left QThreads running, started at: {threads}"
    assert not timers, f"test left QTimers active after its widgets were closed, started at: {timers}"


@pytest.fixture
def messages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Texts of the warning/information boxes a test's page showed (the boxes themselves never open)."""
    seen: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text, *a, **k: seen.append(text))
    monkeypatch.setattr(QMessageBox, "information", lambda _p, _t, text, *a, **k: seen.append(text))
    return seen
