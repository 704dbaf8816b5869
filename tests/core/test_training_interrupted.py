"""Runs whose worker died (kill -9, OOM killer, power cut): shown as "interrupted at step N" with their last
complete checkpoint (`whetstone runs list`), a kill inside a checkpoint write leaves the previous checkpoint
usable, and Resume continues the curve. Checkpoints on a full disk fail in one line and keep the earlier ones."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.diskspace import DiskFullError
from core.runs import RunFolder, run_summary, status_text
from core.testhooks import PAUSE_AT, PAUSE_FLAG
from core.training.checkpoints import STAGING, install_atomic_checkpoints
from core.training.launch import prepare_run, start_worker
from tests.conftest import run_cli
from tests.core.test_training_train import _tiny_config


def _events(run: RunFolder) -> list[dict[str, Any]]:
    return run.read_events()[0]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _fake_run(tmp_path: Path, events: list[dict[str, Any]], pid_file: bool) -> RunFolder:
    run = RunFolder(tmp_path / "run").ensure()
    run.config_file.write_text("model:\n  name: tiny\n", encoding="utf-8")
    for e in events:
        run.append_event(e)
    if pid_file:
        run.pid_file.write_text(json.dumps({"pid": _dead_pid(), "started": 0}), encoding="utf-8")
    return run


STEPS = [{"type": "step", "step": s, "loss": 2.0 - s / 10} for s in (1, 2, 3)]


def test_dead_worker_without_done_event_is_interrupted(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, STEPS, pid_file=True)
    (run.checkpoints_dir / "checkpoint-2").mkdir()
    (run.checkpoints_dir / STAGING / "checkpoint-3").mkdir(parents=True)  # a write that never finished
    s = run_summary(run)
    assert s["status"] == "interrupted" and s["interrupted_at"] == 3
    assert s["last_checkpoint"] == {"step": 2, "path": str(run.checkpoints_dir / "checkpoint-2")}
    assert status_text(s) == "interrupted at step 3"
    assert "step 3" in s["message"] and "checkpoint (step 2)" in s["message"]
    # a summary.json from before a resume does not hide it
    run.summary_file.write_text(json.dumps({"status": "stopped", "steps": 1}), encoding="utf-8")
    assert run_summary(run)["status"] == "interrupted" and run_summary(run)["steps"] == 3


def test_killed_before_any_event_is_interrupted_at_step_0(tmp_path: Path) -> None:
    s = run_summary(_fake_run(tmp_path, [], pid_file=True))
    assert s["status"] == "interrupted" and s["interrupted_at"] == 0 and s["last_checkpoint"] is None
    assert "starts it again from the beginning" in s["message"]


@pytest.mark.parametrize(
    ("last", "status"),
    [
        ({"type": "done", "step": 3, "status": "finished", "message": "Finished"}, "finished"),
        ({"type": "error", "message": "Out of GPU memory"}, "error"),
        ({"type": "error", "message": "Cancelled by the user.", "cancelled": True}, "cancelled"),
    ],
)
def test_runs_that_ended_in_words_are_not_interrupted(tmp_path: Path, last: dict, status: str) -> None:
    run = _fake_run(tmp_path, [*STEPS, last], pid_file=False)
    if status == "finished":
        run.summary_file.write_text(json.dumps({"status": "finished"}), encoding="utf-8")
    s = run_summary(run)
    assert s["status"] == status and s["interrupted_at"] is None


def test_runs_list_cli(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, STEPS, pid_file=True)
    (run.checkpoints_dir / "checkpoint-2").mkdir()
    proc = run_cli("runs", "list", "--root", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(proc.stdout)
    assert row["status"] == "interrupted" and row["status_text"] == "interrupted at step 3"
    assert (
        row["interrupted_at"] == 3 and row["last_checkpoint"]["step"] == 2 and row["run_dir"] == str(run.path)
    )
    proc = run_cli("runs", "list", "--root", str(tmp_path))
    assert proc.returncode == 0 and "interrupted at step 3" in proc.stdout and "checkpoint 2" in proc.stdout
    proc = run_cli("runs", "list", "--root", str(tmp_path / "nope"), "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "No such folder" in proc.stderr


# --- atomic checkpoints, with a stand-in for the Trainer -----------------------------------------------------
class FakeTrainer:
    """What install_atomic_checkpoints uses of a transformers Trainer; writes files as the real one does."""

    def __init__(self, output: Path, fail_at: int | None = None) -> None:
        self.args = SimpleNamespace(output_dir=str(output))
        self.state = SimpleNamespace(global_step=0, best_global_step=None, best_model_checkpoint=None)
        self.fail_at = fail_at

    def _get_output_dir(self, trial: Any = None) -> str:
        return self.args.output_dir

    def _save_optimizer_and_scheduler(self, folder: str) -> None:
        if self.state.global_step == self.fail_at:
            with open(os.path.join(folder, "optimizer.pt"), "wb") as handle:
                handle.write(b"x" * 100)
                raise OSError(errno.ENOSPC, "No space left on device")
        Path(folder, "optimizer.pt").write_bytes(b"o" * 4000)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        folder = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"a" * 1000)
        self._save_optimizer_and_scheduler(str(folder))
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": self.state.global_step}))


def test_checkpoint_appears_only_when_complete_and_disk_full_keeps_the_previous(tmp_path: Path) -> None:
    out = tmp_path / "checkpoints"
    out.mkdir()
    (out / STAGING / "checkpoint-9").mkdir(parents=True)  # left by a killed worker
    trainer = FakeTrainer(out, fail_at=4)
    install_atomic_checkpoints(trainer)
    assert not (out / STAGING).exists()
    trainer.state.global_step = 2
    trainer._save_checkpoint(None, None)
    first = out / "checkpoint-2"
    assert sorted(p.name for p in first.iterdir()) == [
        "adapter_model.safetensors",
        "optimizer.pt",
        "trainer_state.json",
    ]
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    trainer.state.global_step = 4
    with pytest.raises(DiskFullError) as err:
        trainer._save_checkpoint(None, None)
    message = str(err.value)
    assert "\n" not in message and "disk is full" in message and str(out) in message
    assert "a checkpoint needs about" in message and "KB" in message  # the size of the previous one
    assert sorted(p.name for p in out.iterdir() if p.name != STAGING) == ["checkpoint-2"]
    assert not any((out / STAGING).iterdir())  # no partial checkpoint left
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    assert RunFolder(tmp_path).last_checkpoint() == first


def test_checkpoint_refused_before_writing_when_space_is_short(tmp_path: Path, monkeypatch) -> None:
    import core.diskspace

    out = tmp_path / "checkpoints"
    out.mkdir()
    trainer = FakeTrainer(out)
    install_atomic_checkpoints(trainer)
    trainer.state.global_step = 2
    trainer._save_checkpoint(None, None)
    monkeypatch.setattr(core.diskspace, "free_bytes", lambda folder: 10)
    trainer.state.global_step = 4
    with pytest.raises(
        DiskFullError, match=r"a checkpoint needs about 4\.9 KB in .*checkpoints \(10 bytes free\)"
    ):
        trainer._save_checkpoint(None, None)
    assert sorted(p.name for p in out.iterdir() if p.name != STAGING) == ["checkpoint-2"]


# --- the real worker, killed inside a checkpoint write ---------------------------------------------------------
@pytest.mark.slow
def test_kill_9_inside_a_checkpoint_write_then_resume_continues(
    tiny_llama_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    cfg = _tiny_config(
        tiny_llama_dir, **{"quant.mode": "none", "train.save_steps": 2, "train.eval_steps": 100}
    )
    run = prepare_run(cfg, sample_data, tmp_path / "runs" / "run")
    flag = tmp_path / "in-checkpoint-write"
    proc = start_worker(
        run, env={PAUSE_AT: "checkpoint-write-4", PAUSE_FLAG: str(flag)}, capture_stdout=False
    )
    try:
        while not flag.exists():  # the worker writes the flag inside the step-4 checkpoint, then waits
            try:
                proc.wait(0.2)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError((run.logs_dir / "worker.log").read_text()[-3000:])
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    # The step-4 checkpoint was half-written aside (adapter, no optimizer); the step-2 one is whole and last.
    partial = run.checkpoints_dir / STAGING / "checkpoint-4"
    assert (partial / "adapter_model.safetensors").exists() and not (partial / "optimizer.pt").exists()
    assert run.last_checkpoint() == run.checkpoints_dir / "checkpoint-2"
    for name in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"):
        assert (run.checkpoints_dir / "checkpoint-2" / name).stat().st_size > 0, name
    s = run_summary(run)
    assert s["status"] == "interrupted" and s["interrupted_at"] == 4
    assert s["last_checkpoint"]["step"] == 2
    proc = run_cli("runs", "list", "--root", str(run.path.parent), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["status_text"] == "interrupted at step 4"

    proc = run_cli("train", "--run-dir", str(run.path), "--resume", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "finished" and doc["steps"] == 6
    assert any(e.get("resumed_from") == 2 for e in _events(run))
    curve = [e for e in run.curve() if e["type"] == "step"]
    assert [e["step"] for e in curve] == [1, 2, 3, 4, 5, 6]  # steps 3-4 of the killed session replaced
    assert not (run.checkpoints_dir / STAGING).exists() or not any((run.checkpoints_dir / STAGING).iterdir())
    assert sorted(p.name for p in run.checkpoints_dir.glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
        "checkpoint-6",
    ]
    assert run_summary(run)["status"] == "finished"


@pytest.mark.slow
def test_checkpoint_on_a_full_disk_with_the_real_worker(
    tiny_llama_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    """The run folder on a small tmpfs (where this machine lets the test mount one; elsewhere the stand-in
    Trainer tests above cover it): the disk is filled after the step-2 checkpoint, the step-4 one is refused
    in one line, and the step-2 checkpoint stays whole for a resume elsewhere."""
    from tests.core.test_disk_full import _mount_tmpfs

    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount_tmpfs(disk, "64m"):
        pytest.skip("mounting a tmpfs needs root; covered by the stand-in Trainer tests")
    try:
        cfg = _tiny_config(
            tiny_llama_dir, **{"quant.mode": "none", "train.save_steps": 2, "train.eval_steps": 100}
        )
        run = prepare_run(cfg, sample_data, disk / "run")
        flag = tmp_path / "before-checkpoint-4"
        proc = start_worker(
            run, env={PAUSE_AT: "checkpoint-start-4", PAUSE_FLAG: str(flag)}, capture_stdout=False
        )
        try:
            while not flag.exists():
                try:
                    proc.wait(0.2)
                except subprocess.TimeoutExpired:
                    continue
                raise AssertionError((run.logs_dir / "worker.log").read_text()[-3000:])
            first = run.checkpoints_dir / "checkpoint-2"
            before = {p.relative_to(first): p.read_bytes() for p in first.rglob("*") if p.is_file()}
            size = sum(len(b) for b in before.values())
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            leave = min(64 << 10, size // 2)
            (disk / "filler").write_bytes(b"\0" * max(0, free - leave))  # the disk is (nearly) full now
            Path(f"{flag}.continue").touch()
            proc.wait(300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        assert proc.returncode == 1
        error = [e for e in _events(run) if e["type"] == "error"][-1]
        message = error["message"]
        assert "\n" not in message and message.startswith("The disk is full: a checkpoint needs about")
        assert str(run.checkpoints_dir) in message
        assert sorted(p.name for p in run.checkpoints_dir.glob("checkpoint-*")) == ["checkpoint-2"]
        assert not any((run.checkpoints_dir / STAGING).iterdir())
        assert {p.relative_to(first): p.read_bytes() for p in first.rglob("*") if p.is_file()} == before
        s = run_summary(run)
        assert s["status"] == "error" and s["last_checkpoint"]["step"] == 2
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.slow
def test_cli_watching_a_worker_that_is_killed_says_how_to_resume(
    tiny_llama_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    """`whetstone train` whose worker is killed (as the OOM killer does): one line with the step and the
    resume command, exit 1; the run lists as interrupted."""
    import sys

    cfg = tmp_path / "tiny.yaml"
    from core.training.config import save_config

    save_config(_tiny_config(tiny_llama_dir, **{"quant.mode": "none", "train.save_steps": 2}), cfg)
    run_dir = tmp_path / "runs" / "run"
    flag = tmp_path / "before-checkpoint-4"
    env = {
        **os.environ,
        "WHETSTONE_BLOCK_NETWORK": "1",
        PAUSE_AT: "checkpoint-start-4",
        PAUSE_FLAG: str(flag),
    }
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.cli",
            "train",
            "--data",
            str(sample_data),
            "--run-dir",
            str(run_dir),
            "--config",
            str(cfg),
            "--quiet",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not flag.exists():
            try:
                cli.wait(0.2)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(cli.stderr.read() if cli.stderr else "")
        os.kill(int(flag.read_text()), signal.SIGKILL)  # the worker, not the command watching it
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 1 and out == "" and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line == (
        f"whetstone: error: The training worker was killed (signal 9) at step 4; resume it with: "
        f"whetstone train --run-dir {run_dir} --resume"
    )
    s = run_summary(RunFolder(run_dir))
    assert s["status"] == "interrupted" and s["last_checkpoint"]["step"] == 2
