"""Train page: a worker killed while the page watches (kill -9, as the OOM killer does) ends as "interrupted at
step N" in the Runs list and on the page, Resume continues from the last complete checkpoint, and the curve
goes on without repeated steps."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from core.runs import RunFolder
from desktop.context import AppContext
from desktop.pages.train import TrainPage
from tests.desktop.test_train_page import _small


@pytest.mark.slow
def test_killed_worker_is_interrupted_and_resumes(qtbot, tiny_llama_dir: Path, sample_data: Path) -> None:  # type: ignore[no-untyped-def]
    ctx = AppContext()
    page = TrainPage(ctx)
    qtbot.addWidget(page)
    _small(page, tiny_llama_dir, sample_data, steps=400)
    page.form.fields[("train", "eval_steps")].set(1000)
    with qtbot.waitSignal(page.runStarted, timeout=120_000) as started:
        page.start_training()
    run = RunFolder.open(started.args[0])
    qtbot.waitUntil(lambda: run.last_checkpoint() is not None and len(page.plot.train) >= 3, timeout=300_000)
    pid = int(json.loads(run.pid_file.read_text())["pid"])
    with qtbot.waitSignal(page.runEnded, timeout=60_000) as ended:
        os.killpg(pid, signal.SIGKILL)
    assert ended.args[0].status == "interrupted"
    killed_at = page.plot.train[-1][0]
    checkpoint = int(run.last_checkpoint().name.split("-")[1])
    assert checkpoint <= killed_at
    status = page.runs.table.item(0, 1)
    assert status.text() == f"interrupted at step {killed_at} (last checkpoint: step {checkpoint})"
    assert f"checkpoint (step {checkpoint})" in status.toolTip()
    assert page.run_label.text().startswith(f"Interrupted at step {killed_at}")
    assert page.error_label.isVisibleTo(page) and "Resume continues" in page.error_label.text()
    assert page.resume_button.isEnabled()

    with qtbot.waitSignal(page.runStarted, timeout=120_000):
        page.resume_button.click()
    qtbot.waitUntil(lambda: page.plot.train and page.plot.train[-1][0] > killed_at, timeout=300_000)
    steps = [s for s, _ in page.plot.train]
    assert steps == list(range(1, steps[-1] + 1))  # the curve continues from the checkpoint, no repeats
    assert any(e.get("resumed_from") == checkpoint for e in run.read_events()[0])
    with qtbot.waitSignal(page.runEnded, timeout=60_000) as ended:
        page.cancel_training(confirm=False)
    assert ended.args[0].status == "cancelled" and not run.is_running()


def test_run_killed_before_its_first_checkpoint_can_start_again(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.runs import fold_resumed
    from tests.core.test_training_interrupted import STEPS, _fake_run

    run = _fake_run(tmp_path, STEPS, pid_file=True)  # died at step 3, no checkpoint
    page = TrainPage(AppContext())
    qtbot.addWidget(page)
    page.show_run(str(run.path))
    assert page.run_label.text().startswith("Interrupted at step 3")
    assert page.resume_button.isEnabled()  # Resume starts it again from the beginning
    messages = [page.messages.item(i).text() for i in range(page.messages.count())]
    assert any("no complete checkpoint" in m for m in messages)
    # what the worker then logs makes the curve start again, without the killed attempt's steps
    restart = {"type": "log", "step": 0, "resumed_from": 0, "message": "No checkpoint to resume from"}
    assert fold_resumed([*STEPS, restart, {"type": "step", "step": 1, "loss": 1.0}])[-2:] == [
        restart,
        {"type": "step", "step": 1, "loss": 1.0},
    ]
    assert [e for e in fold_resumed([*STEPS, restart]) if e["type"] == "step"] == []
