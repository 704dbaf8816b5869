"""`whetstone estimate` and `whetstone train` (the Train issue fills the bodies)."""

from __future__ import annotations

import argparse

from core.clikit import add_json_flag
from core.errors import WhetstoneError


def _todo(args: argparse.Namespace) -> int:
    raise WhetstoneError(f"'{args.command}' is not available yet")


def add_training_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config; flags given here override it")
    p.add_argument("--model", help="model id or local path")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--epochs", type=float)
    p.add_argument("--lr", type=float)
    p.add_argument("--lora-r", type=int)
    p.add_argument("--quant", choices=["4bit", "8bit", "none"])
    p.add_argument("--max-length", type=int)
    p.add_argument("--seed", type=int)


def register(sub: argparse._SubParsersAction) -> None:
    est = sub.add_parser("estimate", help="predict peak VRAM and time before training")
    add_training_flags(est)
    add_json_flag(est)
    est.set_defaults(handler=_todo)
    train = sub.add_parser("train", help="QLoRA/LoRA training into a run folder")
    train.add_argument("--data", required=True, help="data file or workspace")
    train.add_argument("--run-dir", required=True)
    add_training_flags(train)
    add_json_flag(train)
    train.set_defaults(handler=_todo)
