"""`whetstone export RUN_DIR --format adapter|merged|gguf --out PATH [--quant Q] [--verify/--no-verify] --json`."""

from __future__ import annotations

import argparse
import sys

from core.clikit import add_json_flag, console_progress, emit_json
from core.errors import WhetstoneError
from core.export.formats import ALL_QUANTS, FORMATS, verification_summary


def _cmd_export(args: argparse.Namespace) -> int:
    import os

    from core.export.api import export_run

    os.environ.setdefault("TQDM_DISABLE", "1")  # library progress bars (GGUF loading) would garble ours
    progress = console_progress(args, "export")
    try:
        result = export_run(
            args.run_dir,
            args.format,
            args.out,
            quant=args.quant,
            verify=True if args.verify is None else args.verify,
            overwrite=args.overwrite,
            device=args.device,
            keep_merged=args.keep_merged,
            progress=progress,
        )
    finally:
        progress.close()
    doc = result.as_dict()
    if args.json:
        emit_json(doc)
    else:
        print(
            f"Exported {args.format} to {doc['out']} ({doc['total_bytes'] / 1e6:.1f} MB, {doc['seconds']} s)"
        )
        if doc["verification"]:
            print(f"  {verification_summary(doc['verification'])}")
        for file in doc["files"]:
            print(f"  {file['path']}  {file['bytes'] / 1e6:.1f} MB")
        for name, figures in (doc["verification"] or {}).items():
            if isinstance(figures, dict):
                shown = {
                    k: v
                    for k, v in figures.items()
                    if k not in ("prompts",) and not isinstance(v, list | dict)
                }
                print(f"  verify {name}: {shown}")
        for note in doc["notes"]:
            print(f"  note: {note}")
        if doc.get("commands"):
            print("Run it:")
            for entry in doc["commands"]:
                print(f"  {entry['command']}")
            sentence = (doc.get("system_prompt") or {}).get("sentence")
            if sentence:
                print(f"System prompt: {sentence}")
    verification = doc["verification"] or {}
    if verification and not verification.get("passed", True):
        failed = [k for k, v in verification.items() if isinstance(v, dict) and not v.get("passed", True)]
        sys.stderr.write(f"error: verification failed ({', '.join(failed)}); see the figures above\n")
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="adapter, merged safetensors or verified GGUF")
    p.add_argument("run_dir")
    p.add_argument("--format", required=True, choices=list(FORMATS))
    p.add_argument(
        "--out",
        required=True,
        help="gguf: NAME.gguf writes exactly that file, with NAME.Modelfile and NAME.README.md beside it; "
        "any other --out is a folder (created) holding the export. Written beside --out first and renamed "
        "into place at the end: a stopped, killed or failed export leaves nothing at --out",
    )
    p.add_argument("--quant", choices=list(ALL_QUANTS), help="GGUF type (default q8_0)")
    p.add_argument("--verify", action="store_true", default=None, help="verify the export (default)")
    p.add_argument("--no-verify", dest="verify", action="store_false")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export at --out")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--keep-merged", action="store_true", help="gguf: keep the merged safetensors too")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(p)
    p.set_defaults(handler=_cmd_export)


__all__ = ["register", "WhetstoneError"]
