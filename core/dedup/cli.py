"""`whetstone dedup FILE` (the Duplicates issue fills the body)."""

from __future__ import annotations

import argparse

from core.clikit import add_json_flag
from core.errors import WhetstoneError


def _todo(args: argparse.Namespace) -> int:
    raise WhetstoneError("'dedup' is not available yet")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dedup", help="exact and near-duplicate examples")
    p.add_argument("file")
    p.add_argument("--threshold", type=float, default=0.95)
    p.add_argument("--model", default="all-minilm-l6-v2")
    add_json_flag(p)
    p.set_defaults(handler=_todo)
