"""Prepare a run folder and start/watch the training worker process (used by the CLI and the desktop)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.errors import UserError, WhetstoneError
from core.runs import RunFolder
from core.training.config import TrainingConfig, save_config, with_overrides


def new_run_dir(model_name: str, root: Path | None = None) -> Path:
    """A new run folder's path under `root` (default: `core.runs.runs_root()`): TIMESTAMP-MODEL."""
    from core.runs import runs_root

    stem = Path(model_name).name or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = (root if root is not None else runs_root()) / f"{stamp}-{stem}"
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


def run_sharded(run: RunFolder) -> bool:
    """Whether the run splits its model across its GPUs (`train.shard_model`)."""
    try:
        return bool((run.read_config().get("train") or {}).get("shard_model")) and run_gpus(run) > 1
    except WhetstoneError:
        return False


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
    return [sys.executable, *accelerate_launch(gpus, run_sharded(run)), "--module", *worker]


def accelerate_launch(gpus: int, sharded: bool) -> list[str]:
    """The interpreter arguments that start accelerate's launcher for `gpus` local processes (data parallel, or
    FSDP2 when `sharded`); the script or `--module` to run follows them."""
    return [
        "-m",
        "accelerate.commands.launch",
        *(fsdp_flags() if sharded else ["--multi_gpu"]),
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
    ]


def fsdp_flags() -> list[str]:
    """accelerate's FSDP2 for `train.shard_model`: each rank keeps 1/N of every decoder layer's weights (the
    4-bit ones stored as bfloat16 so FSDP can split them) and gathers a layer only while it runs. Layers are
    found from the model's own `_no_split_modules`. The model is loaded on the CPU by each rank and moved to
    its GPU one shard at a time (core.training.trainer.load_model), so no GPU ever holds the whole model; the
    gradient checkpointing and mixed precision come from the trainer's own settings."""
    return [
        "--use_fsdp",
        "--fsdp_version",
        "2",
        "--fsdp_auto_wrap_policy",
        "TRANSFORMER_BASED_WRAP",
        "--fsdp_reshard_after_forward",
        "true",
        "--fsdp_state_dict_type",
        "SHARDED_STATE_DICT",
        "--fsdp_cpu_ram_efficient_loading",
        "false",
        "--fsdp_offload_params",
        "false",
        "--fsdp_activation_checkpointing",
        "false",
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
    # growable allocator segments: less fragmentation, so the estimate's peak (allocated memory) is what the
    # card must hold; long-context runs allocate and free GiB-sized tensors at every layer
    full_env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
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
