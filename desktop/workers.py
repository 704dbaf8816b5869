"""Run a long core job off the UI thread.

`JobRunner` runs `fn(progress=..., should_stop=...)` in a QThread and turns the core progress protocol
(core/progress.py) into Qt signals: `progressed(fraction, message)` (throttled), `finished(result)`,
`failed(message)` (one line, for the user), `cancelled()`. `cancel()` makes `should_stop()` return True.

    runner = JobRunner(lambda progress, should_stop: core_fn(x, progress=progress, should_stop=should_stop))
    runner.progressed.connect(bar.set_fraction); runner.finished.connect(self.on_done); runner.start()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from core.errors import Cancelled, WhetstoneError
from core.failures import failure_line

JobFn = Callable[[Callable[[float, str], None], Callable[[], bool]], Any]


class _Worker(QObject):
    progressed = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, fn: JobFn, stop: threading.Event, min_interval: float) -> None:
        super().__init__()
        self._fn = fn
        self._stop = stop
        self._min_interval = min_interval
        self._last = 0.0
        # the latest update the throttle held back: flush_pending() sends it, so a phase's message that came
        # right after a burst (then minutes of silence while it runs) is still shown
        self._pending: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def _progress(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            send = fraction >= 1.0 or now - self._last >= self._min_interval
            if send:
                self._last = now
                self._pending = None
            else:
                self._pending = (float(fraction), message)
        if send:
            self.progressed.emit(float(fraction), message)

    def flush_pending(self) -> None:
        """Send the update the throttle held back, once the interval has passed (called on the UI thread by
        JobRunner's timer)."""
        now = time.monotonic()
        with self._lock:
            if self._pending is None or now - self._last < self._min_interval:
                return
            pending, self._pending = self._pending, None
            self._last = now
        self.progressed.emit(*pending)

    def run(self) -> None:
        try:
            result = self._fn(self._progress, self._stop.is_set)
        except Cancelled:
            self.cancelled.emit()
        except WhetstoneError as exc:
            if self._stop.is_set():
                self.cancelled.emit()
            else:
                self.failed.emit(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
        except Exception as exc:  # one plain line for the user, the traceback in the log the line names
            self.failed.emit(failure_line(exc, "desktop-errors.log", getattr(self._fn, "__qualname__", "")))
        else:
            if self._stop.is_set():
                self.cancelled.emit()
            else:
                self.finished.emit(result)
        finally:
            thread = QThread.currentThread()
            if thread is not None:
                thread.quit()  # thread-safe; not a queued slot, so wait() never deadlocks


class JobRunner(QObject):
    progressed = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    done = Signal()  # after any of finished/failed/cancelled, once the thread has stopped

    def __init__(self, fn: JobFn, parent: QObject | None = None, min_interval: float = 0.05) -> None:
        super().__init__(parent)
        self._stop = threading.Event()
        self._thread = QThread()
        self._worker = _Worker(fn, self._stop, min_interval)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progressed.connect(self.progressed)
        self._worker.finished.connect(self.finished)
        self._worker.failed.connect(self.failed)
        self._worker.cancelled.connect(self.cancelled)
        self._flush = QTimer(self)
        self._flush.setInterval(100)
        self._flush.timeout.connect(self._flush_pending)
        self._thread.finished.connect(self._flush.stop)
        self._thread.finished.connect(self.done)

    def start(self) -> None:
        self._thread.start()
        self._flush.start()

    def _flush_pending(self) -> None:
        self._worker.flush_pending()  # called directly: the worker's own thread is busy running the job

    def cancel(self) -> None:
        self._stop.set()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, ms: int = 30000) -> bool:
        return self._thread.wait(ms)
