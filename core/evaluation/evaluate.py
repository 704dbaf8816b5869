"""Evaluate a run: base vs tuned on the locked test split (or a chosen file), metrics, perplexity, forgetting.

`evaluate_run` writes into `RUN/eval/`:
  results.json        the summary (what `whetstone eval --json` prints)
  examples.jsonl      one row per example: prompt, reference, both answers, per-example scores
  forgetting.jsonl    the general prompts with both answers and the broken-output flags
  cache/              generated answers and perplexities, re-used while the inputs stay the same

When cancelled, what finished is kept: answers stay in the cache and the examples answered by both models are
written with `"partial": true` in results.json, then `Cancelled` is raised.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.atomic import atomic_write_bytes
from core.errors import Cancelled, UserError
from core.evaluation import metrics as M
from core.evaluation.forgetting import forgetting_report, load_general_prompts
from core.evaluation.generate import (
    DecodingSettings,
    GenerationCache,
    ModelPair,
    PromptItem,
    generate_answers,
    open_cache,
    split_conversation,
)
from core.progress import ProgressFn, StopFn, check_stop, no_progress, sub_progress
from core.runs import RunFolder

PERPLEXITY_MAX_EXAMPLES = 200
JSON_MODES = ("auto", "on", "off")


@dataclass
class EvalOptions:
    split: str = "test"
    data_file: Path | None = None
    limit: int | None = None
    decoding: DecodingSettings = field(default_factory=DecodingSettings)
    json_metrics: str = "auto"  # auto: for JSON references; on: required; off: never
    # The extras beyond the task set: None = automatic, on with a CUDA GPU and off on a CPU (quick mode: on a
    # laptop the task set alone takes minutes; perplexity and 20 general prompts on both models double it).
    forgetting: bool | None = None
    perplexity: bool | None = None
    bootstrap_seed: int = 0

    def with_extras_resolved(self, gpu: bool | None = None) -> EvalOptions:
        """These options with `forgetting` and `perplexity` decided (automatic: on with a GPU only)."""
        from dataclasses import replace

        if self.forgetting is not None and self.perplexity is not None:
            return self
        if gpu is None:
            from core.device import detect_device

            gpu = detect_device().kind == "cuda"
        return replace(
            self,
            forgetting=gpu if self.forgetting is None else self.forgetting,
            perplexity=gpu if self.perplexity is None else self.perplexity,
        )

    @property
    def quick(self) -> bool:
        """Only the task set (no perplexity, no general prompts)."""
        return not self.forgetting and not self.perplexity

    def source(self) -> dict[str, Any]:
        if self.data_file is not None:
            return {"data": str(self.data_file)}
        return {"split": self.split}


def _ids_text(ids: list[str], shown: int = 5) -> str:
    head = ", ".join(ids[:shown])
    return head + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def load_items(run: RunFolder, options: EvalOptions) -> tuple[list[PromptItem], list[str]]:
    """The examples to evaluate and warnings about them. Raises UserError when there is nothing usable."""
    warnings: list[str] = []
    rows: list[tuple[str, list[dict[str, Any]]]] = []
    if options.data_file is not None and Path(options.data_file).suffix == ".wsdb":
        from core.data.workspace import DatasetWorkspace

        with DatasetWorkspace.open(options.data_file) as ws:
            examples = ws.examples()
        tested = [ex for ex in examples if ex.split == "test"]
        if tested:
            examples = tested
        else:
            warnings.append(f"{options.data_file} has no test split: all its examples are evaluated.")
        for example in examples:
            rows.append((str(example.id), [m.to_dict() for m in example.messages]))
        where = f"the workspace {Path(options.data_file).name}"
    elif options.data_file is not None:
        from core.data.formats import read_dataset

        result = read_dataset(options.data_file)
        if result.errors:
            warnings.append(
                f"{len(result.errors)} line(s) of {options.data_file} could not be read and were skipped "
                f"(first: line {result.errors[0].line}: {result.errors[0].message})."
            )
        for example in result.examples:
            original = example.original or {}
            ex_id = str(original.get("id") or f"line{example.line}")
            rows.append((ex_id, [m.to_dict() for m in example.messages]))
        where = str(options.data_file)
    else:
        if not run.dataset_file.exists():
            raise UserError(f"{run.path} has no dataset snapshot ({run.dataset_file.name}); use --data FILE.")
        records = run.dataset_records()
        counts: dict[str, int] = {}
        for i, rec in enumerate(records):
            split = str(rec.get("split") or "none")
            counts[split] = counts.get(split, 0) + 1
            if split == options.split:
                rows.append((str(rec.get("id") or f"row{i + 1}"), list(rec.get("messages") or [])))
        if not rows:
            present = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no rows"
            raise UserError(
                f"The run's dataset has no {options.split} split ({present}). Evaluate on a file with "
                "--data FILE, or split the data with a test share and train again."
            )
        where = f"the {options.split} split"
    items: list[PromptItem] = []
    skipped: list[str] = []
    for ex_id, messages in rows:
        parts = split_conversation(messages)
        if parts is None:
            skipped.append(ex_id)
            continue
        prompt, reference = parts
        items.append(PromptItem(ex_id, prompt, reference))
    if skipped:
        warnings.append(
            f"{len(skipped)} example(s) do not end with an assistant answer and were skipped: {_ids_text(skipped)}."
        )
    if not items:
        raise UserError(f"No example in {where} ends with an assistant answer to compare against.")
    if options.limit is not None:
        if options.limit < 1:
            raise UserError("--limit must be at least 1.")
        items = items[: options.limit]
    if len(items) == 1:
        warnings.append(
            f"Only 1 example in {where}: the figures are one anecdote, and no confidence interval can be "
            "computed. Put more examples in the test split."
        )
    return items, warnings


def _check_json_mode(items: list[PromptItem], mode: str, warnings: list[str]) -> bool:
    if mode not in JSON_MODES:
        raise UserError(f"--json-metrics must be one of {', '.join(JSON_MODES)}.")
    if mode == "off":
        return False
    not_json = [it.id for it in items if not M.is_json(it.reference)]
    if mode == "on":
        if len(not_json) == len(items):
            raise UserError(
                "JSON metrics were asked for, but none of the references is JSON "
                f"(e.g. {items[0].id}: {items[0].reference[:60]!r}). Use --json-metrics auto or off."
            )
        if not_json:
            warnings.append(
                f"{len(not_json)} of {len(items)} references are not JSON, so JSON metrics cover only the "
                f"other {len(items) - len(not_json)}: {_ids_text(not_json)}."
            )
    elif not_json and len(not_json) < len(items):
        warnings.append(
            f"JSON metrics cover the {len(items) - len(not_json)} examples whose reference is JSON "
            f"({len(not_json)} are not)."
        )
    return True


def _example_rows(
    items: list[PromptItem], answers: dict[str, dict[str, Any]], with_json: bool
) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        pair = answers.get(item.id, {})
        if "base" not in pair or "tuned" not in pair:
            continue
        base, tuned = pair["base"], pair["tuned"]
        base_scores = M.score_example(base.text, item.reference, with_json)
        tuned_scores = M.score_example(tuned.text, item.reference, with_json)
        rows.append(
            {
                "id": item.id,
                "prompt": item.prompt_text(),
                "messages": item.messages,
                "reference": item.reference,
                "base": base.text,
                "tuned": tuned.text,
                "base_hit_max_tokens": base.hit_max_tokens,
                "tuned_hit_max_tokens": tuned.hit_max_tokens,
                "base_scores": base_scores,
                "tuned_scores": tuned_scores,
                "delta": {k: tuned_scores[k] - base_scores[k] for k in base_scores if k in tuned_scores},
            }
        )
    return rows


def _perplexity(
    run: RunFolder,
    pair_holder: dict[str, ModelPair | None],
    load_pair: Any,
    cache: GenerationCache,
    progress: ProgressFn,
    should_stop: StopFn | None,
) -> tuple[dict[str, Any] | None, str | None]:
    if not run.dataset_file.exists():
        return None, "No dataset snapshot in the run: validation perplexity skipped."
    convs = [r.get("messages") or [] for r in run.dataset_records() if r.get("split") == "validation"]
    convs = [c for c in convs if split_conversation(c) is not None][:PERPLEXITY_MAX_EXAMPLES]
    if not convs:
        return None, "The run has no validation split: validation perplexity skipped."
    digest = hashlib.sha256(orjson.dumps(convs, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    file = cache.file.parent / f"ppl-{cache.key}-{digest}.json"
    if file.exists():
        try:
            return orjson.loads(file.read_bytes()), None
        except orjson.JSONDecodeError:
            pass
    import math

    if pair_holder["pair"] is None:
        pair_holder["pair"] = load_pair()
    pair = pair_holder["pair"]
    assert pair is not None
    out: dict[str, Any] = {"examples": len(convs)}
    for i, side in enumerate(("base", "tuned")):
        check_stop(should_stop)
        model_name = "base model" if side == "base" else "tuned model"

        def report(k: int, n: int, i: int = i, model_name: str = model_name) -> None:
            progress(
                (i + k / max(n, 1)) / 2,
                f"validation perplexity: example {k + 1} of {n} with the {model_name}",
            )

        total, count = pair.assistant_loss(convs, side, progress=report, should_stop=should_stop)
        out[side] = math.exp(total / count) if count else None
        out["tokens"] = count
    atomic_write_bytes(file, orjson.dumps(out))
    return out, None


def _write_results(run: RunFolder, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    run.eval_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run.eval_dir / "examples.jsonl", b"".join(orjson.dumps(r) + b"\n" for r in rows))
    atomic_write_bytes(run.eval_dir / "results.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2))


def _summary(
    run: RunFolder,
    options: EvalOptions,
    rows: list[dict[str, Any]],
    warnings: list[str],
    cache: GenerationCache,
    base_name: str,
) -> dict[str, Any]:
    base, tuned, diffs = M.aggregate(rows, seed=options.bootstrap_seed)
    hit_base = [r["id"] for r in rows if r["base_hit_max_tokens"]]
    hit_tuned = [r["id"] for r in rows if r["tuned_hit_max_tokens"]]
    return {
        "n": len(rows),
        "base": base,
        "tuned": tuned,
        "delta": {k: d.to_dict() for k, d in diffs.items()},
        "ci_level": 0.95,
        "run_dir": str(run.path),
        "base_model": base_name,
        "source": options.source(),
        "dataset_sha256": run.dataset_sha256(),
        "decoding": asdict(options.decoding),
        "mode": "quick" if options.quick else "full",
        "extras": {"perplexity": bool(options.perplexity), "general_prompts": bool(options.forgetting)},
        "hit_max_tokens": {"base": len(hit_base), "tuned": len(hit_tuned)},
        "warnings": list(warnings),
        "examples_file": str(run.eval_dir / "examples.jsonl"),
        "cache_key": cache.key,
        "partial": False,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


OLD_CUT_OFF_ADVICE = "raise --max-new-tokens if the references are longer."
CUT_OFF_ADVICE = (
    "raise the limit (Max new tokens; --max-new-tokens on the command line) if the references are longer."
)


def current_wording(warning: str) -> str:
    """A warning stored by an older version, in today's words: the cut-off advice of results.json written
    before the page's setting was named ('raise --max-new-tokens', which the Evaluate page has no field for)."""
    return warning.replace(OLD_CUT_OFF_ADVICE, CUT_OFF_ADVICE)


def _max_tokens_warning(rows: list[dict[str, Any]], max_new_tokens: int) -> str | None:
    hit_base = [r["id"] for r in rows if r["base_hit_max_tokens"]]
    hit_tuned = [r["id"] for r in rows if r["tuned_hit_max_tokens"]]
    if not hit_base and not hit_tuned:
        return None
    return (
        f"{len(hit_tuned)} tuned and {len(hit_base)} base answer(s) stopped at the limit of {max_new_tokens} "
        f"new tokens and are cut off ({_ids_text(hit_tuned or hit_base)}); {CUT_OFF_ADVICE}"
    )


def evaluate_run(
    run_dir: str | Path,
    options: EvalOptions | None = None,
    *,
    progress: ProgressFn = no_progress,
    should_stop: StopFn | None = None,
) -> dict[str, Any]:
    """Generate (or re-use) base and tuned answers, score them and write RUN/eval/. Returns the summary."""
    from core.models import resolve_base_model

    options = (options or EvalOptions()).with_extras_resolved()
    run = RunFolder.open(run_dir)
    if options.decoding.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be at least 1.")
    if not (run.adapter_dir / "adapter_config.json").exists():
        raise UserError(f"{run.path} has no trained adapter yet (adapter/); train the run first.")
    items, warnings = load_items(run, options)
    with_json = _check_json_mode(items, options.json_metrics, warnings)
    base_name = run.base_model()
    progress(0.01, "preparing the base model")
    base_dir = resolve_base_model(base_name)
    cache = open_cache(run, base_name, base_dir, options.decoding)
    holder: dict[str, ModelPair | None] = {"pair": None}

    def load_pair() -> ModelPair:
        progress(0.03, "loading the base model and adapter")
        return ModelPair(base_dir, run.adapter_dir)

    what = "test" if options.data_file is None and options.split == "test" else "evaluation"
    if options.data_file is None and options.split == "validation":
        what = "validation"
    task_hi = 0.75 if not options.quick else 0.99

    def answer(prompts: Any, lo: float, hi: float, label: str) -> Any:
        """Both models' answers to `prompts` (cached), loading the pair once for the whole job."""
        answers, holder["pair"] = generate_answers(
            holder["pair"], cache, prompts, options.decoding, load_pair=load_pair,
            progress=sub_progress(progress, lo, hi), should_stop=should_stop, label=label,
        )  # fmt: skip
        return answers

    try:
        answers = answer(items, 0.05, task_hi, f"{what} prompt")
    except Cancelled:
        from core.evaluation.generate import cached_answers

        rows = _example_rows(items, cached_answers(cache, items), with_json)
        summary = _summary(run, options, rows, warnings, cache, base_name)
        summary["partial"] = True
        summary["warnings"].append(
            f"Cancelled: {len(rows)} of {len(items)} examples were answered by both models; run again to finish."
        )
        _write_results(run, summary, rows)
        _close(holder)
        raise
    try:
        rows = _example_rows(items, answers, with_json)
        warn = _max_tokens_warning(rows, options.decoding.max_new_tokens)
        if warn:
            warnings.append(warn)
        summary = _summary(run, options, rows, warnings, cache, base_name)
        _write_results(run, summary, rows)  # keep the task results even if a later stage is cancelled
        if options.perplexity:
            ppl, note = _perplexity(
                run, holder, load_pair, cache, sub_progress(progress, 0.75, 0.85), should_stop
            )
            if note:
                summary["warnings"].append(note)
            if ppl is not None:
                summary["perplexity"] = ppl
                if ppl.get("base") is not None and ppl.get("tuned") is not None:
                    summary["base"]["perplexity"] = ppl["base"]
                    summary["tuned"]["perplexity"] = ppl["tuned"]
        if options.forgetting:
            check_stop(should_stop)
            general = load_general_prompts()
            gen_answers = answer(general, 0.85, 0.99, "general prompt")
            task_refs = [it.reference for it in items]
            if run.dataset_file.exists():
                for rec in run.dataset_records():
                    parts = (
                        split_conversation(rec.get("messages") or []) if rec.get("split") == "train" else None
                    )
                    if parts is not None:
                        task_refs.append(parts[1])
            report = forgetting_report(general, gen_answers, task_refs)
            items_rows = report.pop("items")
            atomic_write_bytes(
                run.eval_dir / "forgetting.jsonl", b"".join(orjson.dumps(r) + b"\n" for r in items_rows)
            )
            summary["forgetting"] = report
            if report["newly_broken"]:
                summary["warnings"].append(
                    f"Forgetting check: {len(report['newly_broken'])} general answer(s) look broken after "
                    f"tuning but not before: {_ids_text(report['newly_broken'])}."
                )
        _write_results(run, summary, rows)
    finally:
        _close(holder)
    progress(1.0, "done")
    return summary


def _close(holder: dict[str, ModelPair | None]) -> None:
    pair = holder.get("pair")
    if pair is not None:
        pair.close()
        holder["pair"] = None


def load_results(run_dir: str | Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The last saved summary and per-example rows of a run (None, [] when never evaluated)."""
    run = RunFolder(Path(run_dir))
    summary_file = run.eval_dir / "results.json"
    if not summary_file.exists():
        return None, []
    try:
        summary = orjson.loads(summary_file.read_bytes())
    except orjson.JSONDecodeError:
        return None, []
    rows = []
    examples = run.eval_dir / "examples.jsonl"
    if examples.exists():
        for line in examples.read_bytes().splitlines():
            if line.strip():
                rows.append(orjson.loads(line))
    return summary, rows


def load_forgetting_items(run_dir: str | Path) -> list[dict[str, Any]]:
    file = RunFolder(Path(run_dir)).eval_dir / "forgetting.jsonl"
    if not file.exists():
        return []
    return [orjson.loads(line) for line in file.read_bytes().splitlines() if line.strip()]
