"""Progress and cancellation protocol for long core jobs.

Long functions take `progress(fraction, message)` and `should_stop()` callables. The desktop adapts them
to Qt signals; the CLI draws a bar on stderr with `ConsoleProgress`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from core.errors import Cancelled

ProgressFn = Callable[[float, str], None]
StopFn = Callable[[], bool]


def no_progress(fraction: float, message: str = "") -> None:
    """A progress callback that ignores updates."""


def sub_progress(progress: ProgressFn, lo: float, hi: float) -> ProgressFn:
    """A progress callback for one stage of a job: its 0..1 maps onto lo..hi of `progress`."""

    def report(fraction: float, message: str = "") -> None:
        progress(lo + (hi - lo) * min(max(fraction, 0.0), 1.0), message)

    return report


def never_stop() -> bool:
    return False


def check_stop(should_stop: StopFn | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("cancelled")


class ConsoleProgress:
    """A progress bar on stderr. On a terminal it redraws in place; otherwise it prints a line per 10%."""

    def __init__(self, label: str = "", stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_draw = 0.0
        self._last_decile = -1
        self._start = time.monotonic()

    def __call__(self, fraction: float, message: str = "") -> None:
        if not self.enabled:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        now = time.monotonic()
        if self._tty:
            if fraction < 1.0 and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            width = 30
            filled = int(round(width * fraction))
            bar = "#" * filled + "-" * (width - filled)
            elapsed = now - self._start
            self.stream.write(
                f"\r{self.label} [{bar}] {fraction * 100:5.1f}% {elapsed:6.1f}s {message[:80]:<80}"
            )
            if fraction >= 1.0:
                self.stream.write("\n")
            self.stream.flush()
        else:
            decile = int(fraction * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(f"{self.label} {fraction * 100:.0f}% {message}\n")
                self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()
