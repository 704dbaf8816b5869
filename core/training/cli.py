"""`whetstone estimate` and `whetstone train`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from core.clikit import add_json_flag, emit_json
from core.errors import UserError, WhetstoneError


def add_training_flags(p: argparse.ArgumentParser) -> None:
    from core.training.config import PRESETS

    p.add_argument("--config", help="YAML config; flags given here override it")
    p.add_argument(
        "--preset", choices=list(PRESETS), help="start from a preset (the config and flags override it)"
    )
    p.add_argument("--model", help="model id or local path")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--epochs", type=float)
    p.add_argument("--lr", type=float)
    p.add_argument("--lora-r", type=int)
    p.add_argument("--quant", choices=["4bit", "8bit", "none"])
    p.add_argument("--max-length", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--micro-batch", type=int, help="sequences per micro-batch")
    p.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step")
    p.add_argument("--packing", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--target-modules", choices=["attention", "all-linear"])
    p.add_argument("--eval-steps", type=float)
    p.add_argument("--save-steps", type=float)
    p.add_argument(
        "--gpus", type=int, help="train on N GPUs of this machine (data parallel, through accelerate)"
    )
    p.add_argument(
        "--shard",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="split the model across the GPUs (FSDP through accelerate), for a model too big for one GPU; "
        "needs --gpus 2 or more",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _cmd_estimate(args: argparse.Namespace) -> int:
    from core.training.config import Hardware, config_from_args
    from core.training.estimate import (
        dataset_token_stats,
        estimate,
        format_duration,
        measured_cpu_speed,
        shape_for_model,
    )

    cfg = config_from_args(args)
    shape = shape_for_model(cfg.model.name)
    hw = Hardware.detect()
    if args.gpu_gib:
        hw = Hardware(True, True, args.gpu_name or "GPU", args.gpu_gib)
    tokens = examples = None
    data = args.data or cfg.data.source
    if data:
        tokens, examples = dataset_token_stats(data)
    est = estimate(
        cfg,
        shape,
        hw,
        target_gib=args.target_gib,
        dataset_tokens=tokens or None,
        dataset_examples=examples or None,
        cpu_target=bool(args.cpu),
        preset=args.preset,
        cpu_measured=measured_cpu_speed(cfg.model.name) if args.cpu and not hw.cuda else None,
    )
    doc = est.public()
    if args.json:
        emit_json(doc)
    else:
        if not args.cpu:  # GPU memory matters only for a GPU
            fit = "fits" if est.fits else "does NOT fit"
            print(f"Peak memory ≈ {est.vram_gib:.1f} GiB — {fit} in {est.target_gib:.0f} GiB ({est.device})")
            for key, value in est.breakdown_gib.items():
                print(f"  {key:20} {value:8.2f} GiB")
            if est.memory_plan:
                print(f"  {est.memory_plan}")
        speed = f"{est.tokens_per_s:,.0f} tokens/s on {est.time_device}, {est.time_basis}"
        if est.time_s is not None:
            per = "for the run" if cfg.train.max_steps else "per epoch"
            print(f"Time: {format_duration(est.time_s)} {per} ({speed})")
        else:
            print(f"Speed ≈ {speed} (give --data for the time per epoch)")
        for w in est.warnings:
            print(f"warning: {w}")
        for s in est.suggestions:
            print(f"- {s}")
        for n in est.notes:
            print(f"note: {n}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from core.runs import RunFolder, describe_event, run_summary
    from core.training.config import config_from_args
    from core.training.launch import check_gpus, kill_worker, prepare_run, start_worker

    run_dir = Path(args.run_dir).expanduser()
    if args.resume:
        run = RunFolder.open(run_dir)
        if run.is_running():
            raise UserError(
                f"{run_dir} is training now (worker pid {run.worker_pid()}); wait for it or stop it."
            )
    else:
        if not getattr(args, "preset", None) and not getattr(args, "config", None):
            from core.training.config import Hardware

            if not Hardware.detect().cuda:
                # The plain defaults are sized for a 24 GB GPU (2048-token packed batches); on a CPU they
                # need >20 GB of RAM. Start from the CPU preset instead; flags still override it.
                args.preset = "Quick test (CPU)"
                sys.stderr.write(
                    "whetstone: no CUDA GPU; starting from the 'Quick test (CPU)' preset "
                    "(flags and --config override it)\n"
                )
        cfg = config_from_args(args)
        check_gpus(cfg.train.gpus)
        run = prepare_run(cfg, args.data, run_dir)
    proc = start_worker(run, resume=args.resume)
    last_error: dict[str, Any] | None = None
    stopping = False

    def ask_stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        if stopping:
            kill_worker(run, proc)
            return
        stopping = True
        run.request_stop()
        sys.stderr.write("\nStopping after the current step (Ctrl+C again to kill)...\n")

    previous = signal.signal(signal.SIGINT, ask_stop)
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if event.get("type") == "error":
                last_error = event
            if not args.quiet:
                text = describe_event(event)
                if text:
                    sys.stderr.write(text + "\n")
                    sys.stderr.flush()
        code = proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    summary = run_summary(run)
    if code < 0 and last_error is None:  # killed by a signal (the OOM killer, kill -9): no error event
        raise WhetstoneError(
            f"The training worker was killed (signal {-code}) at step {summary.get('interrupted_at') or 0}; "
            f"resume it with: whetstone train --run-dir {run.path} --resume"
        )
    if code != 0 or last_error is not None:
        message = (last_error or {}).get("message") or f"training failed (exit {code}); see {run.logs_dir}"
        if code == 2:
            raise UserError(message)
        raise WhetstoneError(message)
    if args.json:
        emit_json(
            {
                "run_dir": str(run.path),
                "status": summary["status"],
                "steps": summary["steps"],
                "final_loss": summary["final_loss"],
                "final_eval_loss": summary["final_eval_loss"],
                "best_step": summary["best_step"],
                "flags": summary["flags"],
                "adapter": summary["adapter"],
                "dataset_sha256": summary["dataset_sha256"],
            }
        )
    return 0


RUN_FIELDS = (
    "run_dir",
    "name",
    "status",
    "status_text",
    "model",
    "steps",
    "interrupted_at",
    "last_checkpoint",
    "final_loss",
    "final_eval_loss",
    "best_step",
    "flags",
    "adapter",
    "dataset_sha256",
    "message",
)


def _cmd_runs_list(args: argparse.Namespace) -> int:
    from core.runs import list_runs, run_summary, status_text

    root = Path(args.root).expanduser() if args.root else None
    if root is not None and not root.is_dir():
        raise UserError(f"No such folder: {root}")
    rows = []
    for run in list_runs(root):
        try:
            s = run_summary(run)
        except (OSError, ValueError, WhetstoneError):
            continue  # a broken folder must not hide the others
        s["status_text"] = status_text(s)
        rows.append({k: s.get(k) for k in RUN_FIELDS})
    if args.json:
        emit_json(rows)
        return 0
    for r in rows:
        cp = r["last_checkpoint"]
        loss = f"{r['final_loss']:.4f}" if isinstance(r["final_loss"], float) else "-"
        where = f"checkpoint {cp['step']}" if cp else "no checkpoint"
        print(f"{r['name']:40} {r['status_text']:26} step {r['steps'] or 0:<6} loss {loss:8} {where}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="training runs in the runs folder and their status")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    rlist = runs_sub.add_parser(
        "list", help="every run, newest first: status (interrupted at step N), steps, last checkpoint"
    )
    rlist.add_argument("--root", help="runs folder (default: the app's runs folder)")
    add_json_flag(rlist)
    rlist.set_defaults(handler=_cmd_runs_list)

    est = sub.add_parser("estimate", help="predict peak VRAM and time before training")
    add_training_flags(est)
    est.add_argument("--data", help="data file, for the time per epoch")
    est.add_argument(
        "--target-gib", type=float, help="memory of the target GPU (default: the detected GPU, or 24)"
    )
    est.add_argument(
        "--cpu", action="store_true", help="the time on this machine's CPU (a machine without a GPU)"
    )
    est.add_argument("--gpu-gib", type=float, help=argparse.SUPPRESS)
    est.add_argument("--gpu-name", help=argparse.SUPPRESS)
    add_json_flag(est)
    est.set_defaults(handler=_cmd_estimate)
    train = sub.add_parser("train", help="QLoRA/LoRA training into a run folder")
    train.add_argument("--data", help="data file or workspace (.wsdb)")
    train.add_argument("--run-dir", required=True)
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint"
    )
    add_training_flags(train)
    add_json_flag(train)
    train.set_defaults(handler=_cmd_train)
