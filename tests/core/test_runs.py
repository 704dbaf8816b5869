"""core.runs: the run event schema (one definition for the worker, the CLI and the desktop), final losses by one
rule (the model card and the Runs list agree), and the runs folder from the settings."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from core import paths
from core.doctor import check_dirs
from core.export.adapter import model_card
from core.runs import (
    EVENT_FIELDS,
    RunEvent,
    RunFolder,
    check_event,
    describe_event,
    final_losses,
    fold_resumed,
    list_runs,
    run_summary,
    runs_root,
)
from core.settings import Settings, save_settings, settings_path
from core.training.config import TrainingConfig
from core.training.launch import new_run_dir
from tests.conftest import run_cli


def _run(root: Path, events: list[dict], summary: dict | None = None, name: str = "run") -> RunFolder:
    run = RunFolder(root / name).ensure()
    run.config_file.write_text("model:\n  name: tiny\n", encoding="utf-8")
    rows = [
        {"id": f"ex{i}", "messages": [{"role": "user", "content": "hi"}], "split": "train"} for i in range(3)
    ]
    run.dataset_file.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    run.events_file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    if summary is not None:
        run.summary_file.write_text(json.dumps(summary), encoding="utf-8")
    return run


# a run stopped at step 2 (its summary.json says so), resumed from checkpoint 2, finished at step 4: the summary
# was not rewritten (the worker was killed after its done event), so it and the events disagree
RESUMED = [
    {"type": "step", "step": 1, "loss": 2.5, "max_steps": 4},
    {"type": "step", "step": 2, "loss": 2.0, "max_steps": 4},
    {"type": "eval", "step": 2, "eval_loss": 2.2, "best": True},
    {"type": "step", "step": 3, "loss": 1.9, "max_steps": 4},  # re-run after the resume: dropped
    {
        "type": "done",
        "step": 2,
        "status": "stopped",
        "message": "Stopped at step 2; Resume continues from here.",
    },
    {"type": "log", "step": 2, "resumed_from": 2, "message": "Resuming from step 2"},
    {"type": "step", "step": 3, "loss": 1.6, "max_steps": 4},
    {"type": "step", "step": 4, "loss": 1.5, "max_steps": 4},
    {"type": "eval", "step": 4, "eval_loss": 1.7, "best": True},
    {"type": "step", "step": 4, "loss": float("nan"), "max_steps": 4},  # the last raw loss became NaN
    {"type": "done", "step": 4, "status": "finished", "message": "Finished at step 4."},
]
STALE_SUMMARY = {"status": "finished", "steps": 2, "final_loss": 2.0, "final_eval_loss": 2.2, "flags": []}


def test_final_losses_follow_the_curve_not_a_stale_summary_or_a_nan() -> None:
    got = final_losses(fold_resumed(RESUMED), STALE_SUMMARY)
    assert got == {"steps": 4, "final_loss": 1.5, "final_eval_loss": 1.7}
    # with no events the summary fills in; with neither there is nothing to report
    assert final_losses([], STALE_SUMMARY) == {"steps": 2, "final_loss": 2.0, "final_eval_loss": 2.2}
    assert final_losses([], None) == {"steps": 0, "final_loss": None, "final_eval_loss": None}


def test_model_card_and_runs_list_agree_when_summary_and_last_event_differ(tmp_path: Path) -> None:
    run = _run(tmp_path, RESUMED, STALE_SUMMARY)
    summary = run_summary(run)
    assert (summary["steps"], summary["final_loss"], summary["final_eval_loss"]) == (4, 1.5, 1.7)
    card = model_card(run, "adapter")
    assert "- Steps: 4\n- Final train loss: 1.5\n- Final eval loss: 1.7\n" in card
    assert "nan" not in card.lower() and "2.2" not in card
    proc = run_cli("runs", "list", "--root", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(proc.stdout)
    assert (row["steps"], row["final_loss"], row["final_eval_loss"]) == (4, 1.5, 1.7)


def test_events_written_before_this_change_still_read() -> None:
    # lines as earlier versions wrote them: no "time", numbers as text, a field this version does not know
    old = [
        b'{"type": "step", "step": 3, "epoch": 0.5, "loss": 1.25, "lr": 0.0002, "max_steps": 10}',
        b'{"type": "eval", "step": "3", "eval_loss": "1.5", "best": true, "note": "kept"}',
        b'{"step": 3, "message": "no type"}',
        b'{"type": "error", "message": "Cancelled by the user.", "cancelled": true}',
    ]
    step, ev, log, err = (RunEvent.from_dict(orjson.loads(line)) for line in old)
    assert (step.type, step.step, step.loss, step.max_steps, step.time) == ("step", 3, 1.25, 10, None)
    assert (ev.step, ev.eval_loss, ev.best, dict(ev.extra)) == (3, 1.5, True, {"note": "kept"})
    assert (log.type, log.message) == ("log", "no type")
    assert (err.type, err.step, err.cancelled, err.message) == ("error", 0, True, "Cancelled by the user.")
    assert RunEvent.from_dict({"type": "step", "loss": "oops", "best": "yes"}).loss is None
    assert EVENT_FIELDS == (
        "type",
        "step",
        "epoch",
        "loss",
        "eval_loss",
        "lr",
        "grad_norm",
        "tokens_per_s",
        "vram_gib",
        "eta_s",
        "message",
    )


def test_the_writer_refuses_an_event_that_breaks_the_schema(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run").ensure()
    good = {"type": "step", "step": 1, "loss": 2.0, "max_steps": 4, "time": 1.5}
    assert check_event(good) == []
    run.append_event(good)
    for bad, why in (
        ({"type": "progress", "step": 1}, "type 'progress'"),
        ({"type": "step", "step": 1, "los": 2.0}, "unknown field 'los'"),
        ({"type": "step", "step": "1"}, "step='1' should be int"),
        ({"type": "eval", "step": 1, "best": 1}, "best=1 should be bool"),
    ):
        with pytest.raises(ValueError, match=why):
            run.append_event(bad)
    assert run.read_events()[0] == [good]  # nothing half-written


def test_the_cli_describes_events_as_before() -> None:
    step = {"type": "step", "step": 3, "max_steps": 10, "loss": 1.23456, "tokens_per_s": 1234.4}
    assert describe_event({**step, "vram_gib": 2.54, "eta_s": 12.2}) == (
        "step 3/10  loss 1.2346  1234 tok/s  2.5 GiB  ETA 12s"
    )
    assert describe_event({"type": "step", "step": 3, "loss": 1.0}) == "step 3/?  loss 1.0000"
    assert describe_event({"type": "eval", "step": 4, "eval_loss": 1.5}) == "step 4: validation loss 1.5000"
    assert (
        describe_event({"type": "checkpoint", "step": 4, "message": "/r/checkpoint-4"}) == "/r/checkpoint-4"
    )
    assert (
        describe_event({"type": "done", "step": 4, "message": "Finished at step 4."}) == "Finished at step 4."
    )
    assert describe_event({"type": "error", "message": "boom"}) is None


def test_the_runs_folder_comes_from_the_settings(tmp_path: Path) -> None:
    default = paths.runs_dir()
    assert runs_root(Settings()) == default and runs_root() == default
    mine = tmp_path / "my runs"
    _run(mine, [{"type": "step", "step": 1, "loss": 1.0}], name="a")
    _run(default, [{"type": "step", "step": 1, "loss": 1.0}], name="b")
    settings = Settings(runs_dir=str(mine))
    assert runs_root(settings) == mine
    assert [r.path.name for r in list_runs(runs_root(settings))] == ["a"]
    save_settings(settings)
    assert runs_root() == mine and [r.path.name for r in list_runs()] == ["a"]
    assert new_run_dir(TrainingConfig().model.name).parent == mine
    assert check_dirs().details["dirs"]["runs"]["path"] == str(mine)  # doctor checks the folder runs go to
    proc = run_cli("runs", "list", "--json")  # the CLI lists the same folder as the app
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in json.loads(proc.stdout)] == ["a"]


def test_a_broken_settings_file_is_left_alone_by_a_reader(tmp_path: Path) -> None:
    settings_path().write_text("{not json", encoding="utf-8")
    assert runs_root() == paths.runs_dir()
    assert settings_path().read_text(encoding="utf-8") == "{not json"
