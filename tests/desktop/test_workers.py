from __future__ import annotations

import pytest

from core.errors import Cancelled, UserError
from core.progress import check_stop
from desktop.workers import JobRunner


def test_job_reports_progress_and_result(qtbot) -> None:
    def job(progress, should_stop):
        for i in range(5):
            progress(i / 4, f"step {i}")
        return 42

    runner = JobRunner(job, min_interval=0)
    seen = []
    runner.progressed.connect(lambda f, m: seen.append(f))
    with qtbot.waitSignal(runner.finished, timeout=5000) as blocker:
        runner.start()
    assert blocker.args == [42]
    assert seen[-1] == 1.0
    assert runner.wait(5000)


def test_user_error_becomes_one_line_failure(qtbot) -> None:
    def job(progress, should_stop):
        raise UserError("That file is not a dataset.\nmore detail")

    runner = JobRunner(job)
    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start()
    assert blocker.args == ["That file is not a dataset."]
    assert runner.wait(5000)


@pytest.mark.timeout(30)
def test_cancel_stops_a_long_job(qtbot) -> None:
    import threading

    started = threading.Event()

    def job(progress, should_stop):
        started.set()
        while True:
            check_stop(should_stop)
            progress(0.5, "working")

    runner = JobRunner(job)
    runner.start()
    qtbot.waitUntil(started.is_set, timeout=5000)
    with qtbot.waitSignal(runner.cancelled, timeout=5000):
        runner.cancel()
    assert runner.wait(5000)


@pytest.mark.timeout(30)
def test_a_throttled_message_before_a_quiet_phase_still_arrives(qtbot) -> None:
    """A burst of updates then the next phase's message at once, then a long quiet phase: the throttle holds that
    message back, and it still reaches the UI while the phase runs (not a stale line from the burst)."""
    import threading

    release = threading.Event()

    def job(progress, should_stop):
        for i in range(50):
            progress(i / 100, f"tensor {i}")
        progress(0.8, "Checking the result")  # right after the burst: within the throttle interval
        assert release.wait(20)
        return "ok"

    runner = JobRunner(job, min_interval=1.0)  # everything after the first update is held back
    seen: list[str] = []
    runner.progressed.connect(lambda _f, m: seen.append(m))
    runner.start()
    qtbot.waitUntil(lambda: bool(seen) and seen[-1] == "Checking the result", timeout=10000)
    assert "tensor 1" not in seen  # still throttled: the burst is not replayed
    with qtbot.waitSignal(runner.finished, timeout=5000):
        release.set()
    assert runner.wait(5000)


def _fails(progress, should_stop):
    raise UserError("No.")


def _stops(progress, should_stop):
    raise Cancelled()


@pytest.mark.parametrize(
    "job", [lambda progress, should_stop: 1, _fails, _stops], ids=["finished", "failed", "cancelled"]
)
def test_an_ended_job_leaves_no_thread_worker_or_runner_behind(qtbot, job) -> None:
    """The one cleanup policy: whatever the outcome, `done` comes once the thread has stopped, then the
    thread, the worker and the runner are deleted; asking the runner afterwards is still safe."""
    from shiboken6 import isValid

    runner = JobRunner(job)
    thread, worker = runner._thread, runner._worker
    with qtbot.waitSignal(runner.done, timeout=5000):
        runner.start()
    assert not thread.isRunning()
    qtbot.waitUntil(lambda: not isValid(thread) and not isValid(worker) and not isValid(runner), timeout=5000)
    assert not runner.is_running() and runner.wait(0)


@pytest.mark.timeout(60)
def test_closing_the_page_mid_job_cancels_and_waits_for_it(qtbot) -> None:
    """A page closed while its job runs (a window closed, a test torn down) stops the job's thread before the
    close returns: nothing runs on for a page that is gone."""
    import threading

    from PySide6.QtWidgets import QWidget

    from desktop.workers import JobSet

    started = threading.Event()

    def job(progress, should_stop):
        started.set()
        while True:
            check_stop(should_stop)
            started.wait(0.01)

    page = QWidget()
    qtbot.addWidget(page)
    jobs = JobSet(page)
    runner = jobs.add(JobRunner(job))
    outcome: list[str] = []
    runner.cancelled.connect(lambda: outcome.append("cancelled"))
    thread = runner._thread
    runner.start()
    qtbot.waitUntil(started.is_set, timeout=5000)
    assert len(jobs) == 1
    page.close()
    assert not thread.isRunning() and outcome == ["cancelled"] and not jobs


def test_shutdown_returns_with_the_outcome_and_done_delivered(qtbot) -> None:
    """After JobSet.shutdown() the page is idle: the cancelled job's outcome, then `done`, have arrived."""
    import threading

    from PySide6.QtWidgets import QWidget

    from desktop.workers import JobSet

    started = threading.Event()

    def job(progress, should_stop):
        started.set()
        while True:
            check_stop(should_stop)
            started.wait(0.01)

    page = QWidget()
    qtbot.addWidget(page)
    jobs = JobSet(page)
    runner = jobs.add(JobRunner(job))
    seen: list[str] = []
    runner.cancelled.connect(lambda: seen.append("cancelled"))
    runner.done.connect(lambda: seen.append("done"))
    runner.start()
    qtbot.waitUntil(started.is_set, timeout=5000)
    jobs.shutdown()
    assert seen == ["cancelled", "done"] and not jobs
