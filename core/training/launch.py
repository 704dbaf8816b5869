"""Prepare a run folder and start/watch the training worker process (used by the CLI and the desktop)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.errors import UserError, WhetstoneError
from core.training.config import TrainingConfig, save_config, with_overrides
from core.training.run import RunFolder


def new_run_dir(model_name: str) -> Path:
    from core import paths

    stem = Path(model_name).name or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = paths.runs_dir() / f"{stamp}-{stem}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def prepare_run(config: TrainingConfig, data: str | Path | None, run_dir: str | Path) -> RunFolder:
    """Create RUN_DIR with config.yaml and the pinned dataset snapshot (dataset.jsonl + dataset.sha256)."""
    from core.training.dataset import write_snapshot

    source = str(data) if data else config.data.source
    if not source:
        raise UserError("No dataset given: pass --data FILE (a data file or a .wsdb workspace).")
    folder = Path(run_dir).expanduser()
    if (folder / "events.jsonl").exists():
        raise UserError(f"{folder} already holds a run; pick a new folder (or resume it).")
    run = RunFolder(folder).ensure()
    config = with_overrides(config, {"data.source": str(Path(source).expanduser().resolve())})
    write_snapshot(
        source,
        run.dataset_file,
        val_ratio=config.data.val_ratio,
        test_ratio=config.data.test_ratio,
        seed=config.data.split_seed,
    )
    save_config(config, run.config_file)
    return run


CPU_PROCESSES_ENV = "WHETSTONE_DDP_ON_CPU"
"""Set to 1 to let `train.gpus > 1` start that many CPU processes (gloo) on a machine without GPUs: the same
launch path as on GPUs, which is how CPU CI proves it; users never need it."""


def run_gpus(run: RunFolder) -> int:
    """How many processes (one per GPU) the run trains with; 1 for a config that does not say."""
    try:
        value = int(((run.read_config().get("train") or {}).get("gpus")) or 1)
    except (WhetstoneError, TypeError, ValueError):
        return 1
    return max(1, value)


def check_gpus(gpus: int) -> None:
    """A one-line UserError when this machine cannot train on `gpus` GPUs."""
    if gpus <= 1:
        return
    if os.environ.get(CPU_PROCESSES_ENV) == "1":
        return
    from core.device import list_gpus

    found = list_gpus()
    if not found:
        raise UserError(f"Training on {gpus} GPUs was asked for, but this machine has no NVIDIA GPU.")
    if len(found) < gpus:
        names = ", ".join(f"{d.name} ({d.total_gib:.0f} GiB)" for d in found)
        raise UserError(
            f"Training on {gpus} GPUs was asked for, but this machine has {len(found)}: {names}. "
            f"Set GPUs to {len(found)} or fewer."
        )


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_command(run: RunFolder, resume: bool = False) -> list[str]:
    """One process on one device; with `train.gpus` = N > 1, accelerate's launcher starts N copies of the same
    worker (one per GPU, torch.distributed underneath); rank 0 writes the events, checkpoints and adapter."""
    worker = ["core.training.worker", str(run.path)] + (["--resume"] if resume else [])
    gpus = run_gpus(run)
    if gpus <= 1:
        return [sys.executable, "-m", *worker]
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(gpus),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",  # the trainer's own bf16/fp16 settings decide
        "--dynamo_backend",
        "no",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(_free_port()),
        "--monitor_interval",
        "1",
        "--module",
        *worker,
    ]


def start_worker(
    run: RunFolder, resume: bool = False, env: dict[str, str] | None = None, capture_stdout: bool = True
) -> subprocess.Popen[bytes]:
    """Start the worker in its own process group (so a cancel kills it and nothing else); its stderr goes to
    logs/worker.log. stdout carries the events (one JSON per line) when `capture_stdout`."""
    run.ensure()
    check_gpus(run_gpus(run))
    log = open(run.logs_dir / "worker.log", "ab")  # noqa: SIM115 - handed to the child
    repo_root = str(Path(__file__).resolve().parents[2])
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, full_env.get("PYTHONPATH", "")) if p)
    try:
        return subprocess.Popen(
            worker_command(run, resume),
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=full_env,
            start_new_session=True,
        )
    finally:
        log.close()


def kill_worker(run: RunFolder, proc: subprocess.Popen[bytes] | None = None, grace_s: float = 3.0) -> None:
    """Cancel: end the worker's process group (SIGTERM, then SIGKILL)."""
    pid = proc.pid if proc is not None else run.worker_pid()
    if pid is None:
        return
    try:
        pgid = os.getpgid(pid)
    except OSError:
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                break
        elif run.worker_pid() is None:
            break
        time.sleep(0.05)
    else:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    run.pid_file.unlink(missing_ok=True)
    run.append_event(
        {
            "type": "error",
            "message": "Cancelled by the user.",
            "cancelled": True,
            "time": round(time.time(), 3),
        }
    )


def run_summary(run: RunFolder) -> dict[str, Any]:
    """What the Runs list and `train --json` show: status, steps, final losses, dataset version, adapter."""
    summary = run.read_summary()
    events = run.curve()
    steps = [e for e in events if e.get("type") == "step"]
    evals = [e for e in events if e.get("type") == "eval"]
    last = events[-1] if events else {}
    status = summary.get("status")
    running = run.is_running()
    interrupted = not running and worker_died(run, events)
    if running:
        status = "running"
    elif interrupted:
        status = "interrupted"
    elif last.get("cancelled"):
        status = "cancelled"
    elif status is None:
        status = "error" if last.get("type") == "error" else "new"
    if interrupted:  # summary.json, if any, is from an earlier session of the run (before a resume)
        summary = {"flags": summary.get("flags", [])}
    try:
        model = run.base_model()
    except UserError:
        model = ""
    sha = run.dataset_sha256() or ""
    out = {
        "run_dir": str(run.path),
        "name": run.path.name,
        "status": status,
        "model": model,
        "steps": summary.get("steps", steps[-1].get("step") if steps else 0),
        "final_loss": summary.get("final_loss", steps[-1].get("loss") if steps else None),
        "final_eval_loss": summary.get("final_eval_loss", evals[-1].get("eval_loss") if evals else None),
        "best_step": summary.get("best_step"),
        "flags": summary.get("flags", []),
        "dataset_sha256": sha,
        "adapter": str(run.adapter_dir) if (run.adapter_dir / "adapter_config.json").exists() else None,
        "message": last.get("message", "") if last.get("type") in ("error", "done") else "",
        # interrupted runs: the last step reached and the last complete checkpoint a resume starts from
        "interrupted_at": (steps[-1].get("step") if steps else 0) if interrupted else None,
        "last_checkpoint": checkpoint_info(run),
        "mtime": run.events_file.stat().st_mtime if run.events_file.exists() else run.path.stat().st_mtime,
    }
    if interrupted:
        out["message"] = interrupted_message(out)
    return out


def worker_died(run: RunFolder, events: list[dict[str, Any]] | None = None) -> bool:
    """True when the run's worker ended without saying so (kill -9, the OOM killer, a power cut): it left its
    pid file or events behind, it is not alive, and no done/error event followed its last start."""
    if run.is_running():
        return False
    events = run.read_events()[0] if events is None else events
    last = events[-1] if events else {}
    if last.get("type") in ("done", "error"):
        return False
    return run.pid_file.exists() or bool(events)


def checkpoint_info(run: RunFolder) -> dict[str, Any] | None:
    """{"step", "path"} of the last complete checkpoint (incomplete ones are never in checkpoints/)."""
    last = run.last_checkpoint()
    if last is None:
        return None
    return {"step": int(last.name.split("-")[1]), "path": str(last)}


def status_text(summary: dict[str, Any]) -> str:
    """The status in words for the Runs list and the CLI: 'interrupted at step 40' for a run whose worker died."""
    status = str(summary.get("status") or "")
    if status == "interrupted":
        return f"interrupted at step {summary.get('interrupted_at') or 0}"
    return status


def interrupted_message(summary: dict[str, Any]) -> str:
    """One sentence for an interrupted run: where it stopped and what Resume starts from."""
    at = summary.get("interrupted_at") or 0
    cp = summary.get("last_checkpoint")
    where = (
        f"Resume continues from its last complete checkpoint (step {cp['step']})."
        if cp
        else "It has no complete checkpoint: Resume starts it again from the beginning."
    )
    return (
        f"The training stopped without finishing at step {at} (killed, out of memory or a power cut). {where}"
    )


def list_runs(root: Path | None = None) -> list[RunFolder]:
    from core import paths

    base = root or paths.runs_dir()
    out = [RunFolder(p) for p in base.iterdir() if (p / "config.yaml").exists()] if base.is_dir() else []
    return sorted(out, key=lambda r: r.path.stat().st_mtime, reverse=True)
