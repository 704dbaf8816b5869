"""Reading a run as a whole: its status, steps and final losses (`run_summary`), and the runs of a runs folder
(`list_runs`, `runs_root`). The Runs list, the Train page, `whetstone runs list`, `train --json` and the
exported model card all read runs through here, so they cannot disagree."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError
from core.runs.folder import RunFolder

if TYPE_CHECKING:
    from core.settings import Settings


def runs_root(settings: Settings | None = None) -> Path:
    """The runs folder: the settings' `runs_dir` when the user set one, else runs/ under the app's data folder.
    Without `settings`, the saved settings are read (a broken settings file is left where it is)."""
    from core import paths

    if settings is None:
        from core.settings import load_settings

        settings = load_settings(set_aside=False)
    if settings.runs_dir:
        return Path(settings.runs_dir).expanduser()
    return paths.runs_dir()


def list_runs(root: Path | None = None) -> list[RunFolder]:
    """The run folders (those with a config.yaml) under `root` (default: `runs_root()`), newest first."""
    base = root if root is not None else runs_root()
    out = [RunFolder(p) for p in base.iterdir() if (p / "config.yaml").exists()] if base.is_dir() else []
    return sorted(out, key=lambda r: r.path.stat().st_mtime, reverse=True)


def final_losses(events: list[dict[str, Any]], summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """{"steps", "final_loss", "final_eval_loss"} of a run, by one rule.

    The events are the record: `events` is the run's curve (`RunFolder.curve()`: a resume's re-run steps
    replace the ones they re-ran). The final training loss is the last finite loss of a step event (a loss
    that became NaN is flagged, not reported as the result), the final validation loss the last finite one of
    an eval event, the steps the step of the last step/eval/checkpoint/done event. summary.json is written from
    the same numbers when the worker ends; it only fills in what the events do not hold (`summary`: the run's
    summary.json when it belongs to the run's last session, else None).
    """
    summary = summary or {}
    loss = eval_loss = step = None
    for event in events:
        kind = event.get("type")
        if kind == "step" and _finite(event.get("loss")):
            loss = float(event["loss"])
        if kind == "eval" and _finite(event.get("eval_loss")):
            eval_loss = float(event["eval_loss"])
        if kind in ("step", "eval", "checkpoint", "done") and _finite(event.get("step")):
            step = int(event["step"])
    return {
        "steps": step if step is not None else summary.get("steps", 0),
        "final_loss": loss if loss is not None else summary.get("final_loss"),
        "final_eval_loss": eval_loss if eval_loss is not None else summary.get("final_eval_loss"),
    }


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def run_summary(run: RunFolder) -> dict[str, Any]:
    """What the Runs list, `runs list`, `train --json` and the model card show: status, steps, final losses
    (`final_losses`), best step, red flags, dataset version, adapter."""
    summary = run.read_summary()
    events = run.curve()
    steps = [e for e in events if e.get("type") == "step"]
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
    if (
        running or interrupted
    ):  # summary.json, if any, is from an earlier session of the run (before a resume)
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
        **final_losses(events, summary),
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
