"""Run a long core job off the UI thread.

`JobRunner` runs `fn(progress=..., should_stop=...)` in a QThread and turns the core progress protocol
(core/progress.py) into Qt signals: `progressed(fraction, message)` (throttled), `finished(result)`,
`failed(message)` (one line, for the user), `cancelled()`, then `done()` once the thread has stopped.
`cancel()` makes `should_stop()` return True.

The cleanup policy, the same for every job: once the job has ended (finished, failed or cancelled) the runner
waits for its thread to stop, emits `done`, and deletes the thread, the worker and itself; `is_running()` and
`wait()` stay safe to call afterwards. `JobSet` keeps a page's running jobs: when the page is closed (or its
`shutdown()` calls `JobSet.shutdown`) every job is cancelled and waited for, so no thread outlives its page.
The page's progress bar and Cancel button are desktop/widgets/job_progress.JobProgress.

    runner = JobRunner(lambda progress, should_stop: core_fn(x, progress=progress, should_stop=should_stop))
    runner.progressed.connect(bar.set_fraction); runner.finished.connect(self.on_done); runner.start()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QThread, QTimer, Signal

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
        self._over = False  # the job has returned: nothing held back is sent after its outcome
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
            if self._over or self._pending is None or now - self._last < self._min_interval:
                return
            pending, self._pending = self._pending, None
            self._last = now
        self.progressed.emit(*pending)

    def run(self) -> None:
        try:
            try:
                result = self._fn(self._progress, self._stop.is_set)
            finally:
                with self._lock:
                    self._over = True
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
            app = QCoreApplication.instance()
            if app is not None:
                self.moveToThread(
                    app.thread()
                )  # back to the UI thread, which deletes it once the thread ends
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
        self._ended = False  # the thread has stopped and is deleted
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
        self._thread.finished.connect(self._on_thread_finished)

    def start(self) -> None:
        self._thread.start()
        self._flush.start()

    def _flush_pending(self) -> None:
        if not self._ended:
            self._worker.flush_pending()  # called directly: the worker's own thread is busy running the job

    def _on_thread_finished(self) -> None:
        # queued after the worker's finished/failed/cancelled, so the page has its outcome before `done`
        if self._ended:
            return
        self._flush.stop()
        self._thread.wait()  # `finished` comes from the thread's last moments: let it return first
        self._ended = True
        self._worker.deleteLater()
        self._thread.deleteLater()
        self.done.emit()
        self.deleteLater()  # its timer with it; a page keeps no runner past `done`

    def cancel(self) -> None:
        self._stop.set()

    def is_running(self) -> bool:
        return not self._ended and self._thread.isRunning()

    def wait(self, ms: int = 30000) -> bool:
        return self._ended or self._thread.wait(ms)


class JobSet(QObject):
    """The jobs a page runs. A job leaves the set when it is done; closing the `owner` widget (or calling
    `shutdown()`, as the main window does on quit) cancels every job still running and waits for it, so no
    thread outlives the page that started it."""

    def __init__(self, owner: QObject, wait_ms: int = 30000) -> None:
        super().__init__(owner)
        self._owner = owner
        self._wait_ms = wait_ms
        self._running: list[JobRunner] = []
        owner.installEventFilter(self)

    def add(self, runner: JobRunner) -> JobRunner:
        self._running.append(runner)
        runner.done.connect(lambda r=runner: self._forget(r))
        return runner

    def _forget(self, runner: JobRunner) -> None:
        if runner in self._running:
            self._running.remove(runner)

    def __len__(self) -> int:
        return len(self._running)

    def __bool__(self) -> bool:
        return bool(self._running)

    def __iter__(self) -> Iterator[JobRunner]:
        return iter(list(self._running))

    def shutdown(self, wait_ms: int | None = None) -> None:
        """Cancel every running job, then wait for each (a job that cannot stop at once, such as a change of
        many rows that commits first, gets `wait_ms`). A job that has stopped delivers its outcome and `done`
        before this returns, so the page is idle afterwards."""
        jobs = list(self._running)
        for runner in jobs:
            runner.cancel()
        for runner in jobs:
            if runner.wait(self._wait_ms if wait_ms is None else wait_ms):
                QCoreApplication.sendPostedEvents(runner)  # its outcome, then done (queued in that order)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._owner and event.type() == QEvent.Type.Close and self._running:
            self.shutdown()
        return False
