"""`whetstone data check|convert|split|stats` (the Data issue fills the bodies)."""

from __future__ import annotations

import argparse

from core.clikit import add_json_flag, emit_json, existing_file
from core.errors import WhetstoneError


def _check(args: argparse.Namespace) -> int:
    from core.data.formats import read_dataset

    result = read_dataset(existing_file(args.file), args.format)
    doc = {
        "format": result.format,
        "examples": len(result.examples),
        "errors": [e.public() for e in result.errors],
    }
    if args.json:
        emit_json(doc)
    else:
        print(
            f"{args.file}: {result.format}, {len(result.examples)} examples, {len(result.errors)} bad lines"
        )
        for e in result.errors:
            print(f"  line {e.line}: {e.message}")
    return 0


def _todo(args: argparse.Namespace) -> int:
    raise WhetstoneError(f"'data {args.data_command}' is not available yet")


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="check, convert, split and count datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    fmts = ["alpaca", "sharegpt", "messages", "prompt-completion"]
    check = dsub.add_parser("check", help="validate a data file; bad lines are listed, never dropped")
    check.add_argument("file")
    check.add_argument("--format", choices=fmts)
    add_json_flag(check)
    check.set_defaults(handler=_check)
    convert = dsub.add_parser("convert", help="convert between formats")
    convert.add_argument("input")
    convert.add_argument("output")
    convert.add_argument("--to", required=True, choices=fmts)
    add_json_flag(convert)
    convert.set_defaults(handler=_todo)
    split = dsub.add_parser("split", help="seeded train/validation/test split")
    split.add_argument("file")
    split.add_argument("--out", required=True)
    split.add_argument("--ratios", default="0.8,0.1,0.1")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--stratify-by")
    add_json_flag(split)
    split.set_defaults(handler=_todo)
    stats = dsub.add_parser("stats", help="token counts and over-length rows")
    stats.add_argument("file")
    stats.add_argument("--model", default="smollm2-135m-instruct")
    stats.add_argument("--max-length", type=int, default=2048)
    add_json_flag(stats)
    stats.set_defaults(handler=_todo)
