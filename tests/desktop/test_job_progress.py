"""The job row every page uses (desktop/widgets/job_progress.py): progress in words, Cancel, what shows between
jobs."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtWidgets import QLabel, QWidget

from core.progress import check_stop
from desktop.widgets.job_progress import JobProgress
from desktop.workers import JobSet


class Steps:
    """A job the test walks through: it reports what the test puts in `say`, and ends on `end` (or Cancel)."""

    def __init__(self) -> None:
        self.say: list[tuple[float, str]] = []
        self.end = threading.Event()

    def __call__(self, progress, should_stop):
        while not self.end.is_set():
            check_stop(should_stop)
            while self.say:
                progress(*self.say.pop(0))
            self.end.wait(0.01)
        return "ok"


def _row(qtbot, **kwargs) -> tuple[QWidget, JobProgress]:
    page = QWidget()
    qtbot.addWidget(page)
    row = JobProgress(JobSet(page), parent=page, **kwargs)
    page.show()
    return page, row


def _say(qtbot, job: Steps, fraction: float, message: str, check) -> None:
    job.say.append((fraction, message))
    qtbot.waitUntil(check, timeout=5000)


def test_title_left_of_the_bar_the_step_in_it_and_busy_while_no_fraction_is_known(qtbot) -> None:
    _page, row = _row(qtbot, bar_format="{message}", idle="hide")
    assert not row.isVisible()
    job = Steps()
    runner = row.start(job, title="Token counts (smollm2)")
    assert row.isVisible() and row.label.text() == "Token counts (smollm2)"
    _say(qtbot, job, -1.0, "Loading the tokenizer of smollm2…", lambda: row.bar.maximum() == 0)
    assert row.label.text() == "Loading the tokenizer of smollm2…"  # busy: the label says what it does
    _say(qtbot, job, 0.25, "Counting tokens: 512 of 2,048", lambda: row.bar.value() == 250)
    assert row.bar.maximum() == 1000 and row.bar.format() == "Counting tokens: 512 of 2,048"
    assert row.label.text() == "Token counts (smollm2)"
    with qtbot.waitSignal(runner.done, timeout=5000):
        job.end.set()
    assert not row.isVisible() and row.runner is None


def test_without_a_bar_format_the_message_is_a_sentence_on_the_pages_label(qtbot) -> None:
    status = QLabel("")
    _page, row = _row(qtbot, label=status, cancel_text="Cancelling…")
    job = Steps()
    outcome: list[str] = []
    runner = row.start(job, start_text="Starting…", cancelled=lambda: outcome.append("cancelled"))
    assert status.text() == "Starting…" and row.bar.isVisible() and row.cancel_button.isEnabled()
    _say(qtbot, job, 0.5, "base model answering 3/6", lambda: row.bar.value() == 500)
    assert status.text() == "Base model answering 3/6"
    with qtbot.waitSignal(runner.done, timeout=5000):
        row.cancel_button.click()
        assert status.text() == "Cancelling…" and not row.cancel_button.isEnabled()
    assert outcome == ["cancelled"]
    assert not row.bar.isVisible() and row.cancel_button.isVisible() and not row.cancel_button.isEnabled()


@pytest.mark.parametrize("idle", ["keep", "hide_bar"])
def test_the_bar_keeps_the_outcome_or_hides_between_jobs(qtbot, idle) -> None:
    _page, row = _row(qtbot, bar_format="{percent:.0f}%  {message}", idle=idle)
    job = Steps()
    runner = row.start(job, finished=lambda _result: row.bar.setFormat("Done in 0.1 s"))
    _say(qtbot, job, 0.3, "Embedding", lambda: row.bar.format() == "30%  Embedding")
    with qtbot.waitSignal(runner.done, timeout=5000):
        job.end.set()
    assert row.bar.isVisible() == (idle == "keep") and row.bar.format() == "Done in 0.1 s"


def test_overlapping_jobs_show_the_last_started_then_the_one_still_running(qtbot) -> None:
    _page, row = _row(qtbot, bar_format="{message}", idle="hide")
    first, second = Steps(), Steps()
    runner1 = row.start(first, title="Token counts")
    runner2 = row.start(second, title="Opening data.jsonl…", cancellable=False)
    assert row.label.text() == "Opening data.jsonl…" and not row.cancel_button.isVisible()
    _say(qtbot, second, 0.9, "Reading rows", lambda: row.bar.format() == "Reading rows")
    with qtbot.waitSignal(
        runner1.progressed, timeout=5000
    ):  # not the job shown: the row stays with the second
        first.say.append((0.5, "Counting tokens: 1 of 2"))
    assert row.bar.format() == "Reading rows" and row.label.text() == "Opening data.jsonl…"
    with qtbot.waitSignal(runner2.done, timeout=5000):
        second.end.set()
    assert row.isVisible() and row.label.text() == "Token counts" and row.cancel_button.isEnabled()
    with qtbot.waitSignal(runner1.done, timeout=5000):
        row.cancel_button.click()
    assert not row.isVisible()
