"""The QThread/QTimer leak watch behind the desktop tests' autouse fixture reports what it should."""

from __future__ import annotations

import sys
import threading

from PySide6.QtCore import QThread, QTimer
from PySide6.QtWidgets import QWidget

from tests.desktop.leaks import QtLeakWatch


def _next_line() -> str:
    """'tests/desktop/test_leaks.py:N' for the line after the caller's."""
    return f"tests/desktop/test_leaks.py:{sys._getframe(1).f_lineno + 1}"


class _Blocked(QThread):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def run(self) -> None:
        self.release.wait(30)


def test_a_thread_left_running_is_reported_with_where_it_started(qtbot) -> None:
    watch = QtLeakWatch()
    watch.install()
    try:
        thread = _Blocked()
        start_line = _next_line()
        thread.start()
    finally:
        watch.uninstall()
    try:
        (where,) = watch.running_threads(grace_s=0.1)
        assert where.split(" < ")[0] == start_line
    finally:
        thread.release.set()
        assert thread.wait(5000)
    assert watch.running_threads(grace_s=0) == []


def test_a_finished_thread_is_not_a_leak(qtbot) -> None:
    watch = QtLeakWatch()
    watch.install()
    try:
        thread = _Blocked()
        thread.release.set()
        with qtbot.waitSignal(thread.finished, timeout=5000):
            thread.start()
    finally:
        watch.uninstall()
    assert watch.running_threads() == []


def test_an_active_timer_of_a_live_object_is_reported_and_stopped(qtbot) -> None:
    watch = QtLeakWatch()
    watch.install()
    try:
        owner = QWidget()
        qtbot.addWidget(owner)
        timer = QTimer(owner)
        start_line = _next_line()
        timer.start(60_000)
        gone = QWidget()
        QTimer(gone).start(60_000)  # its widget is deleted: the timer goes with it
        gone.deleteLater()
    finally:
        watch.uninstall()
    (where,) = watch.active_timers()
    assert where.split(" < ")[0] == start_line
    assert not timer.isActive()
    assert watch.active_timers() == []
