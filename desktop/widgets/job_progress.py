"""The progress bar and Cancel button of a page's background job, the same on every page.

`JobProgress.start(fn, ...)` runs `fn(progress, should_stop)` in a `JobRunner` (desktop/workers.py) kept in the
page's `JobSet` (closing the page cancels and waits for it), shows its progress in plain words and wires
Cancel to it; the page passes what to do with the outcome. How the progress reads:

- a fraction below 0 means none is known yet (a tokenizer loading): the bar shows it is busy and the label
  says what the job is doing;
- otherwise the bar fills, and the message goes into the bar (`bar_format`, e.g. "{percent:.0f}%  {message}")
  or, without a `bar_format`, into the label as a sentence (first letter capital);
- a job started with a `title` keeps it in the label while the bar carries the message.

`idle` says what shows between jobs: "hide" (the whole row), "hide_bar" (the bar; Cancel stays, disabled),
"keep" (the bar keeps the last outcome, e.g. "Done in 3.1 s"; Cancel disabled). Several jobs may overlap
(a page opening a file while it counts tokens): the last one started is shown and Cancel cancels it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from desktop.workers import JobFn, JobRunner, JobSet

Idle = Literal["hide", "hide_bar", "keep"]


class JobProgress(QWidget):
    def __init__(
        self,
        jobs: JobSet,
        *,
        label: QLabel | None = None,
        bar_format: str | None = None,
        idle: Idle = "hide_bar",
        text_visible: bool = True,
        cancel_text: str = "",
        cancel_first: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        """`jobs`: the page's JobSet. `label`: a label placed elsewhere by the page (by default one left of
        the bar, shown only when it has text). `cancel_text`: what the label says once Cancel is pressed, until the
        job ends. `cancel_first`: Cancel left of the bar (beside the button that starts the job)."""
        super().__init__(parent)
        self.jobs = jobs
        self._bar_format = bar_format
        self._idle = idle
        self._cancel_text = cancel_text
        self._shown: list[tuple[JobRunner, str, bool]] = []  # running jobs, last started last
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._own_label = label is None
        self.label = label if label is not None else QLabel("")
        if self._own_label:
            layout.addWidget(self.label)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(text_visible)
        if bar_format is not None:
            self.bar.setFormat("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.cancel())
        if cancel_first:
            layout.addWidget(self.cancel_button)
        layout.addWidget(self.bar, 1)
        layout.addStretch(0)  # takes the bar's room while it is hidden, so the buttons keep their size
        if not cancel_first:
            layout.addWidget(self.cancel_button)
        self._show_idle()

    def add_before_cancel(self, widget: QWidget) -> None:
        """Put a page's own button (e.g. the one that starts the job) between the bar and Cancel."""
        layout = self.layout()
        assert isinstance(layout, QHBoxLayout)
        layout.insertWidget(layout.indexOf(self.cancel_button), widget)  # (left of the bar with cancel_first)

    # --- running ---------------------------------------------------------------------------------------------
    @property
    def runner(self) -> JobRunner | None:
        """The job shown now (None between jobs)."""
        return self._shown[-1][0] if self._shown else None

    def is_running(self) -> bool:
        """Whether a job is under way (until its `done`; `shutdown()` returns with none)."""
        return bool(self._shown)

    def start(
        self,
        fn: JobFn,
        *,
        title: str = "",
        cancellable: bool = True,
        finished: Callable[[Any], None] | None = None,
        failed: Callable[[str], None] | None = None,
        cancelled: Callable[[], None] | None = None,
        done: Callable[[], None] | None = None,
        start_text: str = "",
        parent: Any = None,
    ) -> JobRunner:
        runner = JobRunner(fn, parent)
        self._shown.append((runner, title, cancellable))
        runner.progressed.connect(lambda f, m, r=runner: self._progress(r, f, m))
        if finished is not None:
            runner.finished.connect(finished)
        if failed is not None:
            runner.failed.connect(failed)
        if cancelled is not None:
            runner.cancelled.connect(cancelled)
        runner.done.connect(lambda r=runner: self._ended(r))
        if done is not None:
            runner.done.connect(done)
        self.jobs.add(runner)
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        if self._bar_format is not None:
            self.bar.setFormat(start_text)
        elif start_text:
            self.label.setText(start_text)
        self._show_current()
        self.show()
        self.bar.show()
        runner.start()
        return runner

    def cancel(self) -> None:
        """Ask the shown job to stop (it ends at its next safe point); the label says so meanwhile."""
        runner = self.runner
        if runner is None or not self._shown[-1][2]:
            return
        runner.cancel()
        self.cancel_button.setEnabled(False)
        if self._cancel_text:
            self.label.setText(self._cancel_text)

    def shutdown(self, wait_ms: int | None = None) -> None:
        self.jobs.shutdown(wait_ms)

    # --- showing -------------------------------------------------------------------------------------------
    def _show_current(self) -> None:
        _runner, title, cancellable = self._shown[-1]
        if title:
            self.label.setText(title)
        if self._own_label:
            self.label.setVisible(bool(self.label.text()))
        self.cancel_button.setVisible(cancellable or self._idle != "hide")
        self.cancel_button.setEnabled(cancellable)

    def _progress(self, runner: JobRunner, fraction: float, message: str) -> None:
        if runner is self.runner:  # (not an earlier job still running under the one shown)
            self.show_progress(fraction, message)

    def show_progress(self, fraction: float, message: str) -> None:
        """Show one progress update (what the shown job's updates do)."""
        title = self._shown[-1][1] if self._shown else ""
        if fraction < 0:
            self.bar.setRange(0, 0)
            self.label.setText(message)
            return
        if title:
            self.label.setText(title)
        self.bar.setRange(0, 1000)
        self.bar.setValue(int(fraction * 1000))
        if self._bar_format is not None:
            self.bar.setFormat(self._bar_format.format(percent=fraction * 100, message=message))
        elif message:
            self.label.setText(message[:1].upper() + message[1:])  # a sentence, like the page's other lines
        if self._own_label:
            self.label.setVisible(bool(self.label.text()))

    def _ended(self, runner: JobRunner) -> None:
        self._shown = [entry for entry in self._shown if entry[0] is not runner]
        if self._shown:
            self._show_current()
        else:
            self._show_idle()

    def _show_idle(self) -> None:
        self.cancel_button.setEnabled(False)
        if self.bar.maximum() == 0:
            self.bar.setRange(0, 1000)
        if self._idle == "hide":
            self.hide()
        elif self._idle == "hide_bar":
            self.bar.hide()
