"""The TrainerCallback's red flags: overfitting (with the best checkpoint marked), NaN loss stops the run,
and stop requests are seen at the next step."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

from core.runs import RunFolder
from core.training.config import TrainingConfig
from core.training.trainer import make_callback


def _setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    run = RunFolder(tmp_path / "run").ensure()
    events: list[dict] = []
    cb = make_callback(run, events.append, TrainingConfig(), [0])
    args = SimpleNamespace(learning_rate=2e-4, output_dir=str(run.checkpoints_dir))
    state = SimpleNamespace(global_step=0, epoch=0.0, max_steps=100)
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    cb.on_train_begin(args, state, control)
    return run, events, cb, args, state, control


def test_overfitting_is_flagged_and_best_step_kept(tmp_path: Path) -> None:
    run, events, cb, args, state, control = _setup(tmp_path)
    train = [2.0, 1.5, 1.0, 0.8, 0.6, 0.4, 0.3, 0.2]
    val = {2: 1.6, 4: 1.2, 6: 1.3, 8: 1.5}
    for step, loss in enumerate(train, 1):
        state.global_step = step
        cb.on_log(args, state, control, logs={"loss": loss, "learning_rate": 1e-4, "grad_norm": 0.5})
        if step in val:
            cb.on_log(args, state, control, logs={"eval_loss": val[step]})
    flags = [e for e in events if e.get("flag") == "overfitting"]
    assert len(flags) == 1 and "step 4" in flags[0]["message"]
    assert cb.state.best_step == 4 and cb.state.flags == ["overfitting"]
    assert [e["best"] for e in events if e["type"] == "eval"] == [True, True, False, False]
    assert not control.should_training_stop


def test_nan_loss_stops_with_advice(tmp_path: Path) -> None:
    run, events, cb, args, state, control = _setup(tmp_path)
    state.global_step = 3
    cb.on_log(args, state, control, logs={"loss": math.nan})
    assert control.should_training_stop and cb.state.nan
    assert "lower the learning rate" in events[-1]["message"]


def test_stop_request_saves_then_stops(tmp_path: Path) -> None:
    run, events, cb, args, state, control = _setup(tmp_path)
    state.global_step = 5
    cb.on_step_end(args, state, control)
    assert not control.should_training_stop
    run.request_stop()
    cb.on_step_end(args, state, control)
    assert control.should_save and control.should_training_stop and cb.state.stopped
