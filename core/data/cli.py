"""`whetstone data check|convert|split|stats`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.clikit import add_json_flag, console_progress, emit_json, existing_file
from core.data.example import Example
from core.errors import UserError

FORMAT_CHOICES = ["alpaca", "sharegpt", "messages", "prompt-completion"]


def _read(path: Path, fmt: str | None, map_text: str | None) -> Any:
    """The ReadResult of a data file, read through `--map` when given."""
    from core.data.formats import read_dataset

    if not map_text:
        return read_dataset(path, fmt)
    from core.data.mapping import ColumnMapping, read_mapped

    if fmt:
        raise UserError("Give either --format or --map, not both (--map reads the file's own columns).")
    return read_mapped(path, ColumnMapping.parse(map_text))


def _unmapped_hint(path: Path, result: Any) -> str:
    """When no row fits a known format, a `--map` to try (from the file's own column names)."""
    if result.examples or path.suffix == ".wsdb":
        return ""
    from core.data.mapping import propose_mapping, sample_file

    try:
        sample = sample_file(path)
    except UserError:
        return ""
    if sample.known_format or not sample.columns:
        return ""
    columns = ", ".join(f"'{c}'" for c in sample.columns[:12])
    guess = propose_mapping(sample)
    hint = f"its columns are {columns}; read them with --map"
    if guess is not None:
        hint += f" '{guess.to_text()}'"
    else:
        hint += " 'prompt=COLUMN,completion=COLUMN'"
    return hint


def _load(
    path: Path, fmt: str | None = None, map_text: str | None = None
) -> tuple[str, list[Example], list[dict[str, Any]]]:
    """Examples of a data file or a workspace (.wsdb), with the file's bad lines."""
    if path.suffix == ".wsdb":
        if map_text:
            raise UserError("--map reads a data file's columns; a workspace has its examples already.")
        from core.data.workspace import DatasetWorkspace

        with DatasetWorkspace.open(path) as ws:
            return ws.source_format, ws.examples(), [e.public() for e in ws.import_errors()]
    result = _read(path, fmt, map_text)
    return result.format, result.examples, [e.public() for e in result.errors]


def _check(args: argparse.Namespace) -> int:
    path = existing_file(args.file)
    hint = ""
    if path.suffix == ".wsdb":
        fmt, examples, errors = _load(path, map_text=args.map)
        doc: dict[str, Any] = {"format": fmt, "examples": len(examples), "errors": errors}
        confidence = 1.0
    else:
        result = _read(path, args.format, args.map)
        confidence = result.confidence
        hint = "" if args.map else _unmapped_hint(path, result)
        doc = {
            "format": result.format,
            "examples": len(result.examples),
            "errors": [e.public() for e in result.errors],
            "confidence": result.confidence,
            "file_type": result.file_type,
            "detected": result.detected,
        }
    if args.json:
        emit_json(doc)
    else:
        print(
            f"{args.file}: {doc['format']} (confidence {confidence:.0%}), {doc['examples']} examples, "
            f"{len(doc['errors'])} bad lines"
        )
        from core.data.plain import line_sentence

        for e in doc["errors"][:50]:
            print(f"  {line_sentence(e['line'], e['message'])}")
        if len(doc["errors"]) > 50:
            print(f"  … {len(doc['errors']) - 50} more (use --json for all)")
    if hint:
        print(f"note: no row is alpaca, sharegpt, messages or prompt-completion; {hint}", file=sys.stderr)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from core.data.formats import write_dataset

    src = existing_file(args.input)
    out = Path(args.output).expanduser()
    if out.resolve() == src.resolve():
        raise UserError("The output file must differ from the input file.")
    fmt, examples, errors = _load(src, args.format, args.map)
    result = write_dataset(examples, out, args.to)
    doc = {
        "input": str(src),
        "output": str(out),
        "from": fmt,
        "to": args.to,
        "written": result.written,
        "skipped": [{"id": i, "message": m} for i, m in result.skipped],
        "errors": errors,
    }
    if args.json:
        emit_json(doc)
    else:
        print(f"wrote {result.written} {args.to} records to {out}")
        if result.skipped:
            print(f"{len(result.skipped)} examples cannot be expressed as {args.to}:")
            for i, m in result.skipped[:20]:
                print(f"  {i}: {m}")
        if errors:
            print(f"{len(errors)} bad lines in the input were not converted (see 'whetstone data check')")
    return 0


def _split(args: argparse.Namespace) -> int:
    from core.data.formats import write_dataset
    from core.data.splits import assign_splits, parse_ratios

    src = existing_file(args.file)
    ratios = parse_ratios(args.ratios)
    fmt, examples, errors = _load(src)
    if not examples:
        raise UserError(f"{src} has no valid examples to split.")
    mapping = assign_splits(examples, ratios, args.seed, args.stratify_by)
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    suffix = src.suffix if src.suffix in (".jsonl", ".json", ".csv", ".parquet") else ".jsonl"
    files: dict[str, Any] = {}
    for split in ("train", "validation", "test"):
        part = [e for e in examples if mapping[e.id] == split]
        for e in part:
            e.split = split
        target = out / f"{split}{suffix}"
        result = write_dataset(part, target, fmt)
        files[split] = {"path": str(target), "examples": result.written}
    doc = {"out": str(out), "seed": args.seed, "ratios": list(ratios), "splits": files, "errors": errors}
    if args.json:
        emit_json(doc)
    else:
        for split, info in files.items():
            print(f"{split:10} {info['examples']:7} -> {info['path']}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from core.data.tokens import TokenCounter, length_stats

    src = existing_file(args.file)
    if args.max_length <= 0:
        raise UserError("--max-length must be a positive number of tokens.")
    fmt, examples, errors = _load(src, map_text=args.map)
    progress = console_progress(args, "tokens")
    counter = TokenCounter.for_model(args.model, progress=lambda f, m: None)
    counts = counter.count([e.messages_dicts() for e in examples], progress=progress)
    over = [
        {"line": e.line, "id": e.id, "tokens": n}
        for e, n in zip(examples, counts, strict=True)
        if n > args.max_length
    ]
    stats = length_stats(counts, args.max_length)
    probe = _template_probe(counter.tokenizer, examples, args.max_length)
    splits: dict[str, int] = {}
    tags: dict[str, int] = {}
    for e in examples:
        splits[e.split or "none"] = splits.get(e.split or "none", 0) + 1
        for t in e.tags:
            tags[t] = tags.get(t, 0) + 1
    doc = {
        "file": str(src),
        "format": fmt,
        "model": args.model,
        "max_length": args.max_length,
        "examples": len(examples),
        "tokens": stats,
        "over_length": over,
        "splits": splits,
        "tags": tags,
        "errors": errors,
        "template": probe,
    }
    if args.json:
        emit_json(doc)
    else:
        print(
            f"{len(examples)} examples, {stats['total']:,} tokens (mean {stats['mean']}, median {stats['median']},"
            f" p95 {stats['p95']}, max {stats['max']}); {len(over)} longer than {args.max_length}"
        )
        for o in over[:20]:
            print(f"  line {o['line']}: {o['tokens']} tokens")
        if probe["note"]:
            print(probe["note"])
        zero = probe["zero_trained"]
        n = len(zero)
        print(
            f"{n} row{'' if n == 1 else 's'} train{'s' if n == 1 else ''} no token" + (":" if zero else ".")
        )
        for z in zero[:20]:
            print(f"  line {z['line']}: {z['reason']}")
    return 0


def _template_probe(tokenizer: Any, examples: list[Any], max_length: int) -> dict[str, Any]:
    """Each row through the training tokenization: the rows that would train no token, and why."""
    from core.data.chat_template import fold_note, probe_row

    zero: list[dict[str, Any]] = []
    trained = folded = 0
    for n, e in enumerate(examples):
        row = probe_row(tokenizer, e.messages_dicts(), max_length, n, e.id or "")
        trained += row.trained
        folded += int(row.folded)
        if not row.trained:
            zero.append({"line": e.line, "id": e.id, "reason": row.reason})
    return {
        "trained_tokens": trained,
        "zero_trained": zero,
        "folded_system_prompts": folded,
        "note": fold_note(tokenizer) if folded else None,
    }


MAP_HELP = (
    "read a spreadsheet's own columns: 'prompt=COLUMN,completion=COLUMN[,system=COLUMN,id=COLUMN,"
    "tags=COLUMN,conversation=COLUMN]' (quote it; rows sharing a conversation id become one multi-turn "
    "example, in file order)"
)


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="check, convert, split and count datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = dsub.add_parser("check", help="validate a data file; bad lines are listed, never dropped")
    check.add_argument("file")
    check.add_argument("--format", choices=FORMAT_CHOICES, help="override the detected format")
    check.add_argument("--map", metavar="FIELD=COLUMN,...", help=MAP_HELP)
    add_json_flag(check)
    check.set_defaults(handler=_check)
    convert = dsub.add_parser("convert", help="convert between formats (.jsonl/.json/.csv/.parquet)")
    convert.add_argument("input")
    convert.add_argument("output")
    convert.add_argument("--to", required=True, choices=FORMAT_CHOICES)
    convert.add_argument("--format", choices=FORMAT_CHOICES, help="the input's format (default: detect)")
    convert.add_argument("--map", metavar="FIELD=COLUMN,...", help=MAP_HELP)
    add_json_flag(convert)
    convert.set_defaults(handler=_convert)
    split = dsub.add_parser("split", help="seeded train/validation/test split")
    split.add_argument("file")
    split.add_argument("--out", required=True)
    split.add_argument("--ratios", default="0.8,0.1,0.1")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--stratify-by", help="'tag' (first tag) or an extra field name")
    add_json_flag(split)
    split.set_defaults(handler=_split)
    stats = dsub.add_parser("stats", help="token counts and over-length rows")
    stats.add_argument("file")
    stats.add_argument("--model", default="smollm2-135m-instruct")
    stats.add_argument("--max-length", type=int, default=2048)
    stats.add_argument("--map", metavar="FIELD=COLUMN,...", help=MAP_HELP)
    stats.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(stats)
    stats.set_defaults(handler=_stats)
