"""The training child process: `python -m core.training.worker RUN_DIR [--resume]`.

Reads RUN_DIR/config.yaml and dataset.jsonl, trains, and writes events (one JSON object per line) to
RUN_DIR/events.jsonl and to stdout. Anything libraries print goes to stderr (the parent sends it to
RUN_DIR/logs/worker.log); a full traceback of any failure lands in logs/ as well. Every run ends with a
`done` event (status finished|stopped) or one-line `error` event, and a summary.json.

Events follow core.runs.RunEvent (the ARCHITECTURE.md fields plus optional extras such as "time", "max_steps",
"best", "flag", "resumed_from", "samples"); RunFolder.append_event refuses one that does not. Such an event is
our bug, not the user's: with WHETSTONE_STRICT_EVENTS=1 (the test suite sets it) it ends the run loudly;
otherwise the worker writes what of it fits the schema, says what it left out in logs/worker.log, and trains on
(an hours-long run is not lost to a bookkeeping mistake).

Exit codes: 0 finished or stopped, 2 bad input (config, data, model), 1 the job failed (OOM, disk full, ...).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
import traceback
from typing import IO, Any

from core.atomic import atomic_write_text
from core.errors import UserError, WhetstoneError
from core.runs import RunFolder


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this worker: (0, 1) alone, set by accelerate's launcher when `train.gpus` > 1."""
    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 0, 1


class EventWriter:
    """Rank 0 (or the only process) writes every event. The other ranks of a multi-GPU run write only their own
    failure. In a multi-GPU run only the first failure is written, naming its GPU: a rank that dies takes the
    others down with connection errors that are not the reason."""

    def __init__(self, run: RunFolder, stream: IO[str], rank: int = 0, world: int = 1) -> None:
        self.run = run
        self.stream = stream
        self.rank = rank
        self.world = world

    def __call__(self, event: dict[str, Any]) -> None:
        if self.rank != 0 and event.get("type") != "error":
            return
        if self.world > 1 and event.get("type") == "error":
            if self.error_reported():  # the first failure is the reason; the rest are its echoes
                return
            event = {**event, "rank": self.rank, "message": f"GPU {self.rank}: {event.get('message', '')}"}
        event = {k: v for k, v in event.items() if v is not None}
        event.setdefault("time", round(time.time(), 3))
        try:
            self.run.append_event(event)
        except ValueError as exc:
            if os.environ.get("WHETSTONE_STRICT_EVENTS") == "1":
                raise
            event = salvage_event(event)
            print(f"whetstone: internal problem, an event was cut to fit the schema: {exc}", file=sys.stderr)
            self.run.append_event(event)
        try:
            self.stream.write(json.dumps(event) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def error_reported(self) -> bool:
        try:
            events, _ = self.run.read_events()
        except (OSError, WhetstoneError):
            return False
        return any(e.get("type") == "error" for e in events)


def salvage_event(event: dict[str, Any]) -> dict[str, Any]:
    """What of an event the schema accepts: its fields that fit, or (an unknown type) a log line saying so."""
    from core.runs.events import EVENT_TYPES, check_event

    kind = event.get("type")
    if kind not in EVENT_TYPES:
        step = event.get("step")
        return {
            "type": "log",
            "step": step if isinstance(step, int) and not isinstance(step, bool) else 0,
            "message": f"(an internal event of unknown type {str(kind)[:40]!r} was left out)",
            "time": round(time.time(), 3),
        }
    return {k: v for k, v in event.items() if k == "type" or not check_event({"type": kind, k: v})}


def _events_stream() -> IO[str]:
    """Keep the real stdout for events; point fd 1 at stderr so library prints cannot corrupt the stream."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(os.dup(2), "w", buffering=1)
    return os.fdopen(fd, "w", buffering=1)


def oom_advice(cfg: dict[str, Any]) -> str:
    t = cfg.get("train", {}) or {}
    q = (cfg.get("quant", {}) or {}).get("mode")
    tips = []
    if int(t.get("micro_batch_size") or 1) > 1:
        tips.append(
            f"lower Examples at once (micro-batch, now {t.get('micro_batch_size')}; raise Batches per update "
            "to keep the same examples per update)"
        )
    if not t.get("gradient_checkpointing"):
        tips.append("turn on Trade speed for memory (gradient checkpointing)")
    if int(t.get("max_length") or 0) > 512:
        tips.append(f"shorten Longest example (max length, now {t.get('max_length')})")
    if q != "4bit":
        tips.append("set Memory saving (quantization) to 4-bit")
    return "; ".join(tips) or "pick a smaller model"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.training.worker")
    parser.add_argument("run_dir")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = parser.parse_args(argv)
    run = RunFolder.open(args.run_dir).ensure()
    rank, world = process_rank()
    emit = EventWriter(run, _events_stream(), rank, world)
    log_path = run.logs_dir / "worker.log"
    if rank == 0:
        atomic_write_text(run.pid_file, json.dumps({"pid": os.getpid(), "started": time.time()}) + "\n")
    try:
        if rank == 0:
            run.control_file.unlink(missing_ok=True)
        return _train(run, emit, args.resume)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one event plus a logged traceback
        return _fail(run, emit, exc, log_path)
    finally:
        if rank == 0:
            run.pid_file.unlink(missing_ok=True)
            run.control_file.unlink(missing_ok=True)


def _fail(run: RunFolder, emit: EventWriter, exc: BaseException, log_path: Any) -> int:
    tb = traceback.format_exc()
    try:
        with open(log_path, "a", encoding="utf-8") as handle:
            handle.write(tb)
    except OSError:
        pass
    sys.stderr.write(tb)
    code = 1
    name = type(exc).__name__
    try:
        cfg = run.read_config()
    except WhetstoneError:
        cfg = {}
    if isinstance(exc, KeyboardInterrupt):
        message = "Training was interrupted."
    elif isinstance(exc, UserError):
        message, code = str(exc), 2
    elif isinstance(exc, WhetstoneError):
        message = str(exc)
    elif "OutOfMemory" in name or "out of memory" in str(exc).lower():
        message = f"Out of GPU memory: {oom_advice(cfg)}."
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        from core.diskspace import disk_full_message

        message = disk_full_message(run.path, None, "training").replace("try again", "resume the run")
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOENT,) and exc.filename:
        message = f"File not found: {exc.filename}"
    elif "pydantic" in type(exc).__module__:
        message, code = f"Bad training settings: {exc}", 2
    else:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = f"{name}: {first}"[:400]
    message += f" (full log: {log_path})" if code == 1 else ""
    try:
        reported = emit.world > 1 and emit.error_reported()
        emit({"type": "error", "message": message, "exit_code": code})
        if not reported:
            run.write_summary({"status": "error", "message": message})
    except OSError:
        pass
    return code


def _train(run: RunFolder, emit: EventWriter, resume: bool) -> int:
    from core.loader import detect_hardware
    from core.training.trainer import build_trainer, environment

    hw = detect_hardware()
    rank, world = process_rank()
    if rank == 0:
        run.write_env({**environment(hw), "processes": world})
    checkpoint = run.last_checkpoint() if resume else None
    if resume and checkpoint is None:
        emit(
            {
                "type": "log",
                "step": 0,
                "resumed_from": 0,  # readers drop the steps of the earlier attempt (run.fold_resumed)
                "message": "No checkpoint to resume from; starting from the beginning.",
            }
        )
    trainer, callback, info = build_trainer(run, emit, hw)
    if checkpoint is not None:
        step = int(checkpoint.name.split("-")[1])
        emit({"type": "log", "step": step, "resumed_from": step, "message": f"Resuming from step {step}"})
        _restore_callback_state(run, callback, step)
    from core.training.trainer import StopDuringEvaluation, save_stopped_checkpoint

    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except StopDuringEvaluation:
        save_stopped_checkpoint(trainer)
    from core.training.trainer import gather_adapter, sharded

    # A model split across GPUs (FSDP): every rank hands in its share of the adapter; rank 0 saves it whole.
    weights = gather_adapter(trainer.model) if sharded(info["resolved"].config) else None
    if rank != 0:
        return 0  # rank 0 saves the adapter and writes the summary
    state = callback.state
    tokenizer = info["tokenizer"]
    run.adapter_dir.mkdir(parents=True, exist_ok=True)
    if weights is not None:  # an ordinary PEFT adapter, as one GPU saves it
        trainer.model.save_pretrained(str(run.adapter_dir), state_dict=weights)
    else:
        trainer.model.save_pretrained(str(run.adapter_dir))
    tokenizer.save_pretrained(str(run.adapter_dir))
    status = "stopped" if state.stopped else ("error" if state.nan else "finished")
    steps = int(trainer.state.global_step)
    summary = {
        "status": status,
        "steps": steps,
        "max_steps": int(trainer.state.max_steps),
        "epoch": round(float(trainer.state.epoch or 0), 4),
        "final_loss": state.last_loss,
        "final_eval_loss": state.last_eval,
        "best_step": state.best_step,
        "best_eval_loss": state.best_eval,
        "flags": state.flags,
        "sample_lengths": state.last_sample_stats,
        "adapter": str(run.adapter_dir),
        "dataset_sha256": run.dataset_sha256(),
        "finished_at": time.time(),
        "peak_ram_gib": _peak_ram_gib(),
    }
    if state.best_step is not None:
        best = run.checkpoints_dir / f"checkpoint-{state.best_step}"
        summary["best_checkpoint"] = str(best) if best.exists() else None
    run.write_summary(summary)
    if state.nan:
        emit(
            {
                "type": "error",
                "step": steps,
                "message": "The loss became NaN: lower the learning rate.",
                "exit_code": 1,
            }
        )
        return 1
    emit(
        {
            "type": "done",
            "step": steps,
            "epoch": summary["epoch"],
            "loss": state.last_loss,
            "eval_loss": state.last_eval,
            "status": status,
            "message": (
                "Stopped at step {s}; Resume continues from here."
                if state.stopped
                else "Finished at step {s}."
            ).format(s=steps),
        }
    )
    return 0


def _peak_ram_gib() -> float | None:
    """The worker's peak resident memory (the figure a laptop user watches), or None where unknown."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**30 if sys.platform == "darwin" else 2**20), 2)


def _restore_callback_state(run: RunFolder, callback: Any, step: int) -> None:
    """Carry the red-flag state (first loss, best validation loss, flags raised, length drift) across a resume."""
    s = callback.state
    for event in run.curve():
        if int(event.get("step") or 0) > step:
            continue
        if event.get("type") == "log" and event.get("flag") and event["flag"] not in s.flags:
            s.flags.append(str(event["flag"]))
        if event.get("type") == "log" and isinstance(event.get("sample_stats"), dict):
            s.drift_history.append(event["sample_stats"].get("drift"))
            s.last_sample_stats = {"step": int(event.get("step") or 0), **event["sample_stats"]}
        if event.get("type") == "step" and event.get("loss") is not None:
            s.first_loss = s.first_loss if s.first_loss is not None else event["loss"]
            s.last_loss = event["loss"]
            s.train_ema = event["loss"] if s.train_ema is None else 0.8 * s.train_ema + 0.2 * event["loss"]
        if event.get("type") == "eval" and event.get("eval_loss") is not None:
            e = float(event["eval_loss"])
            s.last_eval = e
            s.eval_history.append((int(event.get("step") or 0), e, s.train_ema))
            if s.best_eval is None or e < s.best_eval:
                s.best_eval, s.best_step = e, int(event.get("step") or 0)


if __name__ == "__main__":
    from core.offline import enforce_offline

    enforce_offline()
    sys.exit(main())
