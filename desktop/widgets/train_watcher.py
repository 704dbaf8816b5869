"""Starts and watches the training worker process from a QThread; turns its JSON-line events into signals.

The worker (`python -m core.training.worker RUN_DIR`) appends events to RUN_DIR/events.jsonl; the watcher
tails that file, so watching a run this app started and reattaching to one a previous session left running
are the same code. Signals carry small frozen dataclasses (events: core.runs.RunEvent).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal

from core.runs import RunEvent, RunFolder


@dataclass(frozen=True)
class RunEnded:
    run_dir: str
    exit_code: int | None
    status: str  # finished | stopped | error | cancelled | interrupted | detached


class TrainingWatcher(QObject):
    """Lives in its own QThread. `run()` optionally prepares the run folder, starts the worker (unless
    attaching), then tails events until the worker exits or `detach()` is called."""

    # not `event`: that name would shadow QObject.event(), the virtual every Qt event is delivered through
    run_event = Signal(object)  # core.runs.RunEvent
    started = Signal(str)  # run dir
    ended = Signal(object)  # RunEnded
    failed = Signal(str)  # could not even start (bad input)

    def __init__(
        self,
        run_dir: Path,
        *,
        prepare: Callable[[], object] | None = None,
        start: bool = True,
        resume: bool = False,
        from_offset: int = 0,
        poll_ms: int = 150,
    ) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self._prepare = prepare
        self._start = start
        self._resume = resume
        self._offset = from_offset
        self._poll_ms = poll_ms
        self._detach = False
        self._cancel = False
        self.proc: subprocess.Popen[bytes] | None = None

    # called from the UI thread (plain flags: the loop reads them)
    def detach(self) -> None:
        self._detach = True

    def cancel(self) -> None:
        self._cancel = True

    def run(self) -> None:
        from core.errors import WhetstoneError
        from core.runs import worker_died
        from core.training.launch import kill_worker, start_worker

        try:
            if self._prepare is not None:
                self._prepare()
            run = RunFolder(self.run_dir)
            if self._start:
                self.proc = start_worker(run, resume=self._resume, capture_stdout=False)
        except WhetstoneError as exc:
            self.failed.emit(str(exc))
            return
        except OSError as exc:
            self.failed.emit(f"Could not start training: {exc}")
            return
        self.started.emit(str(self.run_dir))
        thread = QThread.currentThread()
        last_status = None
        while True:
            if self._cancel:
                kill_worker(run, self.proc)
                self._drain(run)
                self.ended.emit(RunEnded(str(self.run_dir), None, "cancelled"))
                return
            last_status = self._drain(run) or last_status
            alive = self.proc.poll() is None if self.proc is not None else run.is_running()
            if not alive:
                last_status = self._drain(run) or last_status
                code = self.proc.returncode if self.proc is not None else None
                if last_status is None and code != 0 and worker_died(run):
                    last_status = "interrupted"  # killed (kill -9, the OOM killer) without a word
                status = last_status or ("finished" if code == 0 else "error")
                self.ended.emit(RunEnded(str(self.run_dir), code, status))
                return
            if self._detach:
                self.ended.emit(RunEnded(str(self.run_dir), None, "detached"))
                return
            thread.msleep(self._poll_ms)

    def _drain(self, run: RunFolder) -> str | None:
        events, self._offset = run.read_events(self._offset)
        status = None
        for raw in events:
            ev = RunEvent.from_dict(raw)
            if ev.type == "done":
                status = ev.status or "finished"
            elif ev.type == "error":
                status = "cancelled" if ev.cancelled else "error"
            self.run_event.emit(ev)
        return status


class WatcherHandle:
    """Owns a watcher and its thread; `stop()` detaches and joins (the worker process keeps running)."""

    def __init__(self, watcher: TrainingWatcher, parent: QObject | None = None) -> None:
        self.watcher = watcher
        self.thread = QThread(parent)
        watcher.moveToThread(self.thread)
        self.thread.started.connect(watcher.run)
        watcher.ended.connect(self.thread.quit)
        watcher.failed.connect(self.thread.quit)

    def start(self) -> None:
        self.thread.start()

    def running(self) -> bool:
        return self.thread.isRunning()

    def stop(self, wait_ms: int = 10000) -> None:
        self.watcher.detach()
        self.thread.quit()
        self.thread.wait(wait_ms)
