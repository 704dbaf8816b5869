"""`whetstone export RUN_DIR` (the Export issue fills the body)."""

from __future__ import annotations

import argparse

from core.clikit import add_json_flag
from core.errors import WhetstoneError


def _todo(args: argparse.Namespace) -> int:
    raise WhetstoneError("'export' is not available yet")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="adapter, merged safetensors or verified GGUF")
    p.add_argument("run_dir")
    p.add_argument("--format", required=True, choices=["adapter", "merged", "gguf"])
    p.add_argument("--out", required=True)
    p.add_argument("--quant", choices=["f16", "bf16", "q8_0", "q4_0", "q5_0", "q4_k_m", "q5_k_m", "q6_k"])
    p.add_argument("--verify", action="store_true", default=None)
    p.add_argument("--no-verify", dest="verify", action="store_false")
    add_json_flag(p)
    p.set_defaults(handler=_todo)
