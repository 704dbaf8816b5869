"""Writing canonical Examples as dataset files (.jsonl, .json, .csv, .parquet), atomically.

Writing is lossless where the target format can express the example; rows it cannot express are returned in
`WriteResult.skipped` with the reason, never mangled. A row whose content still equals what was read is
written back as its original record (same keys, same values).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.atomic import atomic_open
from core.data.example import Example
from core.data.readers import _JSON_COLUMNS, ReadResult, _file_type, read_dataset
from core.data.records import FORMATS, RecordError, example_to_record
from core.errors import UserError


@dataclass
class WriteResult:
    path: Path
    format: str
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (example id, reason)


def _csv_cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _write_records(records: list[dict[str, Any]], path: Path, kind: str) -> None:
    if kind == "jsonl":
        with atomic_open(path, "wb", encoding=None) as handle:
            for rec in records:
                handle.write(orjson.dumps(rec))
                handle.write(b"\n")
    elif kind == "json":
        with atomic_open(path, "wb", encoding=None) as handle:
            handle.write(orjson.dumps(records, option=orjson.OPT_INDENT_2))
            handle.write(b"\n")
    elif kind == "csv":
        columns: list[str] = []
        for rec in records:
            for key in rec:
                if key not in columns:
                    columns.append(key)
        for key in columns:
            values = [rec[key] for rec in records if key in rec]
            if key not in _JSON_COLUMNS and not all(isinstance(v, str) for v in values):
                raise RecordError(f"CSV holds text cells only; column '{key}' has other values")
            if key in _JSON_COLUMNS and any(
                isinstance(v, str) and v.strip().startswith(("[", "{")) for v in values
            ):
                raise RecordError(f"column '{key}' has text that would read back as JSON")
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)  # excel dialect: \r\n row ends, so a lone \r in a cell gets quoted
        writer.writerow(columns)
        for rec in records:
            writer.writerow([_csv_cell(rec[k]) if k in rec else "" for k in columns])
        with atomic_open(path, "wb", encoding=None) as handle:
            handle.write(buffer.getvalue().encode("utf-8"))
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = []
        for rec in records:
            for key in rec:
                if key not in columns:
                    columns.append(key)
        json_columns: list[str] = []
        try:
            # Column by column over every row (from_pylist would take the schema from the first row only).
            table = pa.table({k: [r.get(k) for r in records] for k in columns})
        except (pa.ArrowException, TypeError, ValueError):
            json_columns = [k for k in columns if any(not isinstance(r.get(k), str | None) for r in records)]
            table = pa.table(
                {
                    k: [
                        orjson.dumps(r[k]).decode() if k in json_columns and k in r else r.get(k)
                        for r in records
                    ]
                    for k in columns
                }
            )
        table = table.replace_schema_metadata({"whetstone_json_columns": orjson.dumps(json_columns)})
        with atomic_open(path, "wb", encoding=None) as handle:
            pq.write_table(table, handle)
    else:
        raise UserError(f"Unknown file type '{kind}' (use .jsonl, .json, .csv or .parquet).")


def write_dataset(
    examples: Iterable[Example], path: str | Path, fmt: str, file_type: str | None = None
) -> WriteResult:
    """Write examples as `fmt` records; the file type follows the extension unless given.

    Examples the format cannot express are skipped and listed in the result (with the reason)."""
    if fmt not in FORMATS:
        raise UserError(f"Unknown format '{fmt}' (choose from {', '.join(FORMATS)}).")
    target = Path(path)
    kind = file_type or _file_type(target)
    result = WriteResult(target, fmt)
    records: list[dict[str, Any]] = []
    for example in examples:
        try:
            records.append(example_to_record(example, fmt))
        except RecordError as exc:
            result.skipped.append((example.id, str(exc)))
    try:
        _write_records(records, target, kind)
    except RecordError as exc:
        raise UserError(f"{target.name}: {exc}; write JSONL or Parquet instead") from None
    result.written = len(records)
    return result


def convert_file(
    src: str | Path, dst: str | Path, to: str, fmt: str | None = None
) -> tuple[ReadResult, WriteResult]:
    read = read_dataset(src, fmt)
    return read, write_dataset(read.examples, dst, to)
