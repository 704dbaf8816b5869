"""`whetstone eval RUN_DIR`: base vs tuned on the run's locked test split (or a file), metrics as JSON.

--json prints {"n", "base": {metric: value}, "tuned": {metric: value}, "delta": {metric: {value, ci_low,
ci_high, n}}, "perplexity", "forgetting", "hit_max_tokens", "warnings", "partial", "examples_file", "mode"
("quick": the task set only | "full"), "extras": {"perplexity", "general_prompts"}, ...}. On a CPU the default
is quick mode; --perplexity and --general add the extras (on a GPU they are on unless --no-... is given);
per-example results go to RUN_DIR/eval/examples.jsonl. Warnings (cut-off answers, tiny test split, non-JSON
references) also go to stderr, one line each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.clikit import add_json_flag, console_progress, emit_json, existing_file
from core.errors import Cancelled, WhetstoneError


def _format_value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric in ("bleu", "perplexity", "length_ratio"):
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cmd_eval(args: argparse.Namespace) -> int:
    from core.evaluation.evaluate import EvalOptions, evaluate_run
    from core.evaluation.generate import DecodingSettings
    from core.evaluation.metrics import METRIC_LABELS

    data_file: Path | None = existing_file(args.data) if args.data else None
    options = EvalOptions(
        split=args.split or "test",
        data_file=data_file,
        limit=args.limit,
        decoding=DecodingSettings(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size),
        json_metrics=args.json_metrics,
        forgetting=args.general,
        perplexity=args.perplexity,
        bootstrap_seed=args.seed,
    )
    bar = console_progress(args, "eval")
    try:
        summary = evaluate_run(args.run_dir, options, progress=bar)
    except Cancelled as exc:
        raise WhetstoneError(
            "evaluation cancelled; finished answers are kept in the run's eval/ folder"
        ) from exc
    finally:
        bar.close()
    for warning in summary.get("warnings", []):
        sys.stderr.write(f"whetstone: warning: {warning}\n")
    if args.json:
        emit_json(summary)
        return 0
    source = summary["source"]
    where = f"file {source['data']}" if "data" in source else f"the {source['split']} split"
    print(f"{summary['n']} examples from {where}" + (" (partial)" if summary.get("partial") else ""))
    print(f"{'metric':24} {'base':>9} {'tuned':>9} {'delta':>9}  95% CI")
    for metric, base in summary["base"].items():
        tuned = summary["tuned"].get(metric)
        delta = summary["delta"].get(metric)
        ci = ""
        if delta and delta.get("ci_low") is not None:
            ci = f"[{_format_value(metric, delta['ci_low'])}, {_format_value(metric, delta['ci_high'])}]"
        d = delta["value"] if delta else (tuned - base if tuned is not None and base is not None else None)
        print(
            f"{METRIC_LABELS.get(metric, metric):24} {_format_value(metric, base):>9} "
            f"{_format_value(metric, tuned):>9} {_format_value(metric, d):>9}  {ci}"
        )
    forgetting = summary.get("forgetting")
    if forgetting:
        print(
            f"general prompts: {forgetting['changed']} of {forgetting['prompts']} answers changed; broken: "
            f"base {forgetting['broken_base']}, tuned {forgetting['broken_tuned']}"
        )
    if summary.get("mode") == "quick":
        print("quick mode (the task set only): --perplexity and --general add validation perplexity and the")
        print("general-prompt forgetting check")
    print(f"per-example results: {summary['examples_file']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="base vs tuned on the held-out test split")
    p.add_argument("run_dir")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--split", choices=["test", "validation"], default=None)
    src.add_argument("--data", help="evaluate on this data file instead of the run's split")
    p.add_argument("--limit", type=int, help="only the first N examples")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--json-metrics",
        choices=["auto", "on", "off"],
        default="auto",
        help="JSON validity/key metrics: auto = for JSON references, on = require JSON references",
    )
    p.add_argument(
        "--general",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also answer the 20 bundled general prompts with both models (forgetting check); "
        "default: on with a CUDA GPU, off on a CPU (quick mode: the task set only)",
    )
    p.add_argument(
        "--no-forgetting", dest="general", action="store_false", default=None, help="same as --no-general"
    )
    p.add_argument(
        "--perplexity",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also compute validation perplexity of both models; default: on with a CUDA GPU, off on a CPU",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed for the confidence intervals")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(p)
    p.set_defaults(handler=_cmd_eval)
