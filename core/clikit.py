"""Small helpers shared by every CLI subcommand module (`core/*/cli.py`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from core.errors import UserError
from core.progress import ConsoleProgress

Handler = Callable[[argparse.Namespace], int]


def emit_json(document: Any) -> None:
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
    sys.stdout.write("\n")
    sys.stdout.flush()


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def existing_file(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.exists():
        raise UserError(f"File not found: {value}")
    if path.is_dir():
        raise UserError(f"Expected a file, got a folder: {value}")
    return path


def existing_dir(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UserError(f"Folder not found: {value}")
    return path


def console_progress(args: argparse.Namespace, label: str) -> ConsoleProgress:
    """A stderr progress bar (quiet with --quiet)."""
    return ConsoleProgress(label, enabled=not getattr(args, "quiet", False))
