"""Adapter export: the PEFT folder as trained, plus a README model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.progress import ProgressFn, StopFn, check_stop, no_progress
from core.runs import RunFolder, run_summary


def require_adapter(run: RunFolder) -> Path:
    adapter = run.adapter_dir
    if not (adapter / "adapter_config.json").exists():
        raise UserError(
            f"{run.path} has no trained adapter yet ({adapter} has no adapter_config.json); "
            "finish training first."
        )
    if not any(adapter.glob("adapter_model*.safetensors")) and not any(adapter.glob("adapter_model*.bin")):
        raise UserError(f"{adapter} has no adapter weights (adapter_model.safetensors).")
    return adapter


def eval_metrics(run: RunFolder) -> dict[str, Any] | None:
    """The tuned/base metrics from eval/results.json, when the run was evaluated."""
    file = run.eval_dir / "results.json"
    if not file.exists():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {k: data.get(k) for k in ("n", "base", "tuned", "source", "created") if k in data}


def _final_losses(run: RunFolder) -> dict[str, Any]:
    """Steps and final losses as the Runs list shows them (one rule: core.runs.final_losses)."""
    summary = run_summary(run)
    out = {
        "steps": summary["steps"],
        "final_train_loss": summary["final_loss"],
        "final_eval_loss": summary["final_eval_loss"],
    }
    return {k: v for k, v in out.items() if v is not None}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def model_card(run: RunFolder, kind: str, extra: dict[str, Any] | None = None) -> str:
    """A README.md describing what was trained on what, and how it scored."""
    config = run.read_config()
    base = run.base_model()
    sha = run.dataset_sha256()
    lines = [
        f"# Whetstone fine-tune ({kind})",
        "",
        f"- Base model: `{base}`",
        f"- Run folder: `{run.path}`",
        f"- Dataset snapshot sha256: `{sha or 'unknown'}`",
    ]
    try:
        records = run.dataset_records()
        counts: dict[str, int] = {}
        for row in records:
            split = str(row.get("split") or "train")
            counts[split] = counts.get(split, 0) + 1
        lines.append("- Examples: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    except OSError:
        pass
    for key, value in _final_losses(run).items():
        lines.append(f"- {key.replace('_', ' ').capitalize()}: {_fmt(value)}")
    lines += ["", "## Training configuration", "", "```yaml"]
    import yaml

    lines.append(yaml.safe_dump(config, sort_keys=False).rstrip())
    lines += ["```", ""]
    metrics = eval_metrics(run)
    if metrics and isinstance(metrics.get("tuned"), dict):
        lines += ["## Evaluation (held-out split)", "", "| metric | base | tuned |", "|---|---|---|"]
        base_m = metrics.get("base") or {}
        for name, value in metrics["tuned"].items():
            lines.append(f"| {name} | {_fmt(base_m.get(name, ''))} | {_fmt(value)} |")
        lines += ["", f"Examples evaluated: {metrics.get('n')}", ""]
    else:
        lines += ["## Evaluation", "", "Not evaluated yet (run `whetstone eval RUN_DIR`).", ""]
    if extra:
        lines += ["## Export", ""]
        for key, value in extra.items():
            lines.append(f"- {key}: {_fmt(value)}")
        lines.append("")
    if kind == "adapter":
        lines += [
            "## Use",
            "",
            "```python",
            "from peft import AutoPeftModelForCausalLM",
            'model = AutoPeftModelForCausalLM.from_pretrained("THIS_FOLDER")',
            "```",
            "",
            f"The adapter applies to the base model `{base}`.",
            "",
        ]
    return "\n".join(lines)


def export_adapter(
    run: RunFolder,
    out_dir: Path,
    progress: ProgressFn = no_progress,
    should_stop: StopFn | None = None,
) -> list[Path]:
    """Copy the trained PEFT adapter (and its tokenizer) into `out_dir` and add README.md."""
    adapter = require_adapter(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in adapter.rglob("*") if p.is_file())
    written = []
    for i, file in enumerate(files):
        check_stop(should_stop)
        target = out_dir / file.relative_to(adapter)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
        written.append(target)
        progress((i + 1) / max(len(files), 1) * 0.95, f"Copying {file.name}")
    card = out_dir / "README.md"
    card.write_text(model_card(run, "adapter"), encoding="utf-8")
    written.append(card)
    progress(1.0, "Adapter exported")
    return written
