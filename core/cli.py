"""`whetstone` command line: one subcommand per workflow job (the public CLI contract in ARCHITECTURE.md).

Every subcommand supports `--json`; errors print one line on stderr and exit non-zero (2 = bad input or
usage, 1 = the job failed). Subcommand bodies live beside their code in `core/<area>/cli.py`, each with a
`register(subparsers)` that adds its parser and sets `handler`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

import core
from core.clikit import add_json_flag, emit_json
from core.errors import WhetstoneError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"whetstone: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def _cmd_gui(args: argparse.Namespace) -> int:
    # core never imports Qt: the desktop package is looked up only when the user asks for the window.
    import importlib

    try:
        app_module = importlib.import_module("desktop.app")
    except ImportError as exc:  # PySide6 missing
        raise WhetstoneError(f"The desktop app cannot start: {exc}") from exc
    return int(app_module.run_app(screenshot=args.screenshot, page=args.page))


def _cmd_models_list(args: argparse.Namespace) -> int:
    from core.models import ModelRegistry

    entries = ModelRegistry().list(args.kind)
    if args.json:
        emit_json([e.public() for e in entries])
    else:
        for e in entries:
            print(f"{e.id:28} {e.kind:10} {e.source:9} {e.path}")
    return 0


def _cmd_models_add(args: argparse.Namespace) -> int:
    from core.models import ModelRegistry

    entry = ModelRegistry().add_local(
        args.path,
        kind=args.kind,
        model_id=args.id,
        trust_remote_code=args.trust_remote_code,
        allow_pickle=args.allow_pickle,
    )
    if args.json:
        emit_json(entry.public())
    else:
        print(f"added {entry.id} ({entry.kind}) -> {entry.path}")
    return 0


def _cmd_models_prepare(args: argparse.Namespace) -> int:
    from core.clikit import console_progress
    from core.models import resolve_base_model

    folder = resolve_base_model(args.model, progress=console_progress(args, "convert"))
    if args.json:
        emit_json({"id": args.model, "path": str(folder)})
    else:
        print(folder)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from core.doctor import format_report, run_doctor

    report = run_doctor()
    if args.json:
        emit_json(report)
    else:
        print(format_report(report))
    return 0 if report["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="whetstone", description="Fine-tune open LLMs on your own machine, fully offline.")
    parser.add_argument("--version", action="version", version=f"whetstone {core.__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    gui = sub.add_parser("gui", help="launch the desktop app (default)")
    gui.add_argument("--screenshot", metavar="PNG", help="render the main window, save it as PNG and exit")
    gui.add_argument(
        "--page", choices=["data", "dedup", "train", "evaluate", "export"], help="page to show first"
    )
    gui.set_defaults(handler=_cmd_gui)

    models = sub.add_parser("models", help="list and add base and embedding models")
    models_sub = models.add_subparsers(
        dest="models_command", parser_class=_Parser, metavar="ACTION", required=True
    )
    mlist = models_sub.add_parser("list", help="list known models")
    mlist.add_argument("--kind", choices=["base", "embedding"])
    add_json_flag(mlist)
    mlist.set_defaults(handler=_cmd_models_list)
    madd = models_sub.add_parser("add", help="register a local HF folder (safetensors) or a GGUF file")
    madd.add_argument("path")
    madd.add_argument("--id")
    madd.add_argument("--kind", choices=["base", "embedding"], default="base")
    madd.add_argument("--trust-remote-code", action="store_true", help="allow the model's own Python code")
    madd.add_argument("--allow-pickle", action="store_true", help="allow pickle .bin weights")
    add_json_flag(madd)
    madd.set_defaults(handler=_cmd_models_add)
    mprep = models_sub.add_parser("prepare", help="convert a GGUF base model to the safetensors cache now")
    mprep.add_argument("model", nargs="?", default="smollm2-135m-instruct")
    mprep.add_argument("--quiet", action="store_true")
    add_json_flag(mprep)
    mprep.set_defaults(handler=_cmd_models_prepare)

    doctor = sub.add_parser(
        "doctor",
        help="self-check: Python, torch/CUDA, GPUs, bitsandbytes, llama.cpp, models, folders, offline",
    )
    add_json_flag(doctor)
    doctor.set_defaults(handler=_cmd_doctor)

    from core.data import cli as data_cli
    from core.dedup import cli as dedup_cli
    from core.evaluation import cli as eval_cli
    from core.export import cli as export_cli
    from core.training import cli as training_cli

    data_cli.register(sub)
    dedup_cli.register(sub)
    training_cli.register(sub)
    eval_cli.register(sub)
    export_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("--screenshot") or argv[0] == "--page":
        argv = ["gui", *argv]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help(sys.stderr)
            return 2
        return int(handler(args) or 0)
    except WhetstoneError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        sys.stderr.write(f"whetstone: error: {message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("whetstone: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    except Exception as exc:  # one plain line for the user (a full disk, a folder they may not write...), the
        # traceback in the log the line names; a failure nobody foresaw is called an unexpected error
        from core.failures import exit_code, failure_line

        line = failure_line(exc, "cli-errors.log", f"argv {argv}")
        sys.stderr.write(f"whetstone: error: {line}\n")
        return exit_code(exc)


if __name__ == "__main__":
    raise SystemExit(main())
