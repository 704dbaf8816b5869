"""Finds the QThreads and QTimers a test left running (the autouse fixture in tests/desktop/conftest.py).

`QThread.start` and `QTimer.start` are wrapped for the test's duration so every thread and timer started is
remembered, weakly, with the line of our code that started it (napari's leak fixtures work the same way). A
thread still running when the test is over is a leak: it outlives the widget that owns it and Qt aborts the
process when a running QThread is destroyed. A timer still active once the test's widgets are closed and
deleted is a leak too: it fires into a torn-down page.
"""

from __future__ import annotations

import sys
import time
import weakref
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QThread, QTimer

REPO = str(Path(__file__).resolve().parents[2])
# a leaked thread is never destroyed while it runs (that aborts the process): kept here once it is reported
_KEPT: list[Any] = []


def _where() -> str:
    """The first three frames in our code (desktop/, core/, tests/) outside this file, innermost first, as
    'path:line < path:line < ...' (a JobRunner's start, the page that started it, the test)."""
    frame = sys._getframe(2)
    places: list[str] = []
    while frame is not None and len(places) < 3:
        name = frame.f_code.co_filename
        if name.startswith(REPO) and name != __file__:
            places.append(f"{Path(name).relative_to(REPO)}:{frame.f_lineno}")
        frame = frame.f_back
    return " < ".join(places) or "outside the project"


def _alive(obj: Any, check: str) -> bool:
    try:
        return bool(getattr(obj, check)())
    except RuntimeError:  # the C++ object is already deleted: not running
        return False


class QtLeakWatch:
    def __init__(self) -> None:
        self.threads: weakref.WeakKeyDictionary[QThread, str] = weakref.WeakKeyDictionary()
        self.timers: weakref.WeakKeyDictionary[QTimer, str] = weakref.WeakKeyDictionary()
        self._saved: list[tuple[type, str, Any]] = []

    def install(self) -> None:
        thread_start, timer_start = QThread.start, QTimer.start
        threads, timers = self.threads, self.timers

        def start_thread(thread: QThread, *args: Any) -> None:
            threads[thread] = _where()
            thread_start(thread, *args)

        def start_timer(timer: QTimer, *args: Any) -> None:
            timers[timer] = _where()
            timer_start(timer, *args)

        self._saved = [(QThread, "start", thread_start), (QTimer, "start", timer_start)]
        QThread.start = start_thread  # type: ignore[method-assign]
        QTimer.start = start_timer  # type: ignore[method-assign]

    def uninstall(self) -> None:
        for cls, name, original in self._saved:
            setattr(cls, name, original)
        self._saved = []

    def running_threads(self, grace_s: float = 1.0) -> list[str]:
        """Where the threads still running were started. `grace_s` lets a thread that has emitted its last
        signal return from its run (it is quitting, not working)."""
        deadline = time.monotonic() + grace_s
        left = [(t, where) for t, where in list(self.threads.items()) if _alive(t, "isRunning")]
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = [(t, where) for t, where in left if _alive(t, "isRunning")]
        for thread, _ in left:
            _KEPT.append(thread)
            try:
                thread.quit()  # an event-loop thread stops; a busy one is kept (above) rather than destroyed
            except RuntimeError:
                pass
        return [where for _t, where in left]

    def active_timers(self) -> list[str]:
        """Where the timers still active after the widgets' deferred deletion were started (they are stopped)."""
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        left = [(t, where) for t, where in list(self.timers.items()) if _alive(t, "isActive")]
        for timer, _ in left:
            timer.stop()
        return [where for _t, where in left]
