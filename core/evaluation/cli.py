"""`whetstone eval RUN_DIR` (the Evaluate issue fills the body)."""

from __future__ import annotations

import argparse

from core.clikit import add_json_flag
from core.errors import WhetstoneError


def _todo(args: argparse.Namespace) -> int:
    raise WhetstoneError("'eval' is not available yet")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="base vs tuned on the held-out test split")
    p.add_argument("run_dir")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--split", choices=["test", "validation"], default=None)
    src.add_argument("--data")
    p.add_argument("--limit", type=int)
    p.add_argument("--max-new-tokens", type=int, default=128)
    add_json_flag(p)
    p.set_defaults(handler=_todo)
