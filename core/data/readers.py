"""Reading dataset files into canonical Examples.

File types: .jsonl (one record a line), .json (an array of records, or JSONL saved as .json), .csv (a header
row; structured cells such as `messages` hold JSON), .parquet (native nested columns). The record format is
detected by votes over the records unless given.

Every bad record is reported with its 1-based line number (the record's row for CSV/Parquet, the line where
the element starts for a JSON array) and a reason; nothing is dropped silently. A file that cannot be read at
all (missing, empty, binary, an unreadable container) raises `UserError`.

Reading takes a `should_stop()` (core/progress.py): it is asked every `STOP_EVERY` records, so a big file
stops within a fraction of a second of Cancel (`Cancelled`), not only after it has been read whole.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.data.example import Example
from core.data.plain import plain_json_error
from core.data.records import FORMATS, RecordError, _known_keys, detect_record_format, record_to_example
from core.errors import UserError
from core.progress import StopFn, check_stop

FILE_TYPES = ("jsonl", "json", "csv", "parquet")
_JSON_COLUMNS = ("messages", "conversations", "tags")
_FORMAT_FIELDS = {"instruction", "input", "output", "system", "prompt", "completion"}
_RAW_KEEP = 100_000  # characters of a bad line kept for the Issues list
_MAX_REPORTED_RAW = 200
# records between two should_stop() checks: a few ms of parsing, so Cancel is felt at once on a big file
STOP_EVERY = 1000


def _poll(should_stop: StopFn | None, count: int) -> None:
    """Raise Cancelled when `should_stop()` says so, checked once every STOP_EVERY records."""
    if should_stop is not None and count % STOP_EVERY == 0:
        check_stop(should_stop)


@dataclass
class LineError:
    line: int
    message: str
    raw: str = ""

    def __post_init__(self) -> None:
        # One line, always: messages quote the record's own keys and values, which may hold line breaks.
        if any(c in self.message for c in "\r\n\t\x00"):
            self.message = (
                self.message.replace("\r", "\\r")
                .replace("\n", "\\n")
                .replace("\t", " ")
                .replace("\x00", "\\0")
            )

    def public(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


@dataclass
class ReadResult:
    format: str
    examples: list[Example] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    confidence: float = 1.0
    file_type: str = "jsonl"
    records: int = 0  # records found (valid + bad lines)
    detected: dict[str, int] = field(default_factory=dict)  # votes per format


# --- reading ---------------------------------------------------------------------------------------------
def _file_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".json",):
        return "json"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    return "jsonl"


def _looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head:
        # NULs among control bytes: binary. A stray NUL in text is one bad record, reported with its line.
        text_like = sum(1 for b in head if b >= 32 or b in (9, 10, 13))
        if text_like < 0.9 * len(head):
            return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multibyte character cut at the 8 KB boundary is fine; real garbage is not.
        if exc.start < len(head) - 4:
            bad = sum(1 for b in head if b >= 0x80)
            return bad > len(head) * 0.3
    return False


def _not_utf8(raw: bytes) -> str | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8"
        )
    return None


def _raw_text(raw: bytes) -> str:
    return raw[:_RAW_KEEP].decode("utf-8", "replace")


def _json_error(exc: Exception, raw: bytes) -> str:
    text = str(exc)
    nul = raw.find(b"\x00")
    if nul >= 0:
        return f"not valid JSON (a NUL byte at column {nul + 1}: binary data in a text line)"
    if len(raw) > 10_000 and ("unexpected end" in text.lower() or "eof" in text.lower()):
        return f"not valid JSON (the record is cut off after {len(raw):,} bytes)"
    first = raw.lstrip()[:1].decode("utf-8", "replace")
    return plain_json_error(text, getattr(exc, "colno", None), first)


def _read_jsonl(
    data: bytes, should_stop: StopFn | None = None
) -> tuple[list[tuple[int, Any]], list[LineError]]:
    records: list[tuple[int, Any]] = []
    errors: list[LineError] = []
    loads = orjson.loads
    for number, raw in enumerate(data.split(b"\n"), 1):
        _poll(should_stop, number)
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw or raw.isspace():
            continue
        try:
            records.append((number, loads(raw)))
        except orjson.JSONDecodeError as exc:
            message = _not_utf8(raw) or _json_error(exc, raw)
            errors.append(LineError(number, message, _raw_text(raw)))
    return records, errors


def _line_starts(text: str) -> list[int]:
    starts = [0]
    pos = text.find("\n")
    while pos != -1:
        starts.append(pos + 1)
        pos = text.find("\n", pos + 1)
    return starts


def _read_json_array(
    data: bytes, file: Path, should_stop: StopFn | None = None
) -> tuple[list[tuple[int, Any]], list[LineError]]:
    bad = _not_utf8(data)
    if bad:
        # Find the line for a precise message, then give up on the container (it cannot be resynchronised).
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise UserError(f"{file} cannot be read: line {line} is {bad}") from None
    text = data.decode("utf-8")
    stripped = text.lstrip()
    if not stripped.startswith("["):
        # A .json file holding JSONL (or a single object): read it line by line.
        try:
            whole = orjson.loads(data)
        except orjson.JSONDecodeError:
            return _read_jsonl(data, should_stop)
        return [(1, whole)], []
    starts = _line_starts(text)
    check_stop(should_stop)
    decoder = json.JSONDecoder()
    records: list[tuple[int, Any]] = []
    errors: list[LineError] = []
    pos = text.index("[") + 1
    n = len(text)

    def skip_ws(p: int) -> int:
        while p < n and text[p] in " \t\r\n":
            p += 1
        return p

    pos = skip_ws(pos)
    if pos < n and text[pos] == "]":
        return records, errors
    while pos < n:
        _poll(should_stop, len(records) + 1)
        line = bisect.bisect_right(starts, pos)
        try:
            value, end = decoder.raw_decode(text, pos)
        except RecursionError:
            errors.append(
                LineError(
                    line,
                    "not valid JSON (the record is nested too deeply to read); the records after it cannot be read",
                    text[pos : pos + _MAX_REPORTED_RAW],
                )
            )
            return records, errors
        except json.JSONDecodeError as exc:
            err_line = bisect.bisect_right(starts, exc.pos)
            errors.append(
                LineError(
                    line,
                    f"{plain_json_error(exc.msg, exc.colno, '{')} on line {err_line}; the records after it "
                    "cannot be read",
                    text[pos : pos + _RAW_KEEP],
                )
            )
            return records, errors
        records.append((line, value))
        pos = skip_ws(end)
        if pos < n and text[pos] == ",":
            pos = skip_ws(pos + 1)
            continue
        if pos < n and text[pos] == "]":
            return records, errors
        errors.append(
            LineError(
                bisect.bisect_right(starts, min(pos, n - 1) if n else 0),
                "not valid JSON (a comma or the closing ] is missing after a record); the records after it "
                "cannot be read"
                if pos < n
                else "not valid JSON (the list of records is cut off: no closing ])",
                text[pos : pos + _MAX_REPORTED_RAW],
            )
        )
        return records, errors
    last_line = text.rstrip().count("\n") + 1  # the last line with anything on it
    errors.append(LineError(last_line, "not valid JSON (the list of records is cut off: no closing ])", ""))
    return records, errors


def _decode_cell(key: str, value: Any) -> Any:
    if key in _JSON_COLUMNS and isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith(("[", "{")):
            return orjson.loads(stripped)
    return value


def _read_csv(
    data: bytes, file: Path, should_stop: StopFn | None = None
) -> tuple[list[tuple[int, Any]], list[LineError]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{file} cannot be read: line {line} is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    check_stop(should_stop)
    csv.field_size_limit(1 << 30)
    dialect: Any = "excel-tab" if file.suffix.lower() == ".tsv" else "excel"
    # strict: a malformed quote is that row's error (not a cell silently swallowing the rows after it)
    reader = csv.reader(io.StringIO(text, newline=""), dialect=dialect, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"{file} is empty.") from None
    except csv.Error as exc:
        raise UserError(f"{file} cannot be read: the header row is not valid CSV ({exc})") from None
    header = [h.strip() for h in header]
    if not any(header) or len(set(header)) != len(header):
        raise UserError(f"{file} cannot be read: the header row must name each column once")
    records: list[tuple[int, Any]] = []
    errors: list[LineError] = []
    starts = [*_line_starts(text), len(text)]
    check_stop(should_stop)
    start_line = reader.line_num + 1
    read = 0
    while True:
        read += 1
        _poll(should_stop, read)
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            at_end = str(exc) == "unexpected end of data"
            first = starts[min(start_line - 1, len(starts) - 1)]
            raw = text[first : starts[min(reader.line_num, len(starts) - 1)]]
            if at_end:
                message = "not valid CSV (a quoted cell is never closed: the rest of the file is inside it)"
            elif reader.line_num > start_line:  # a quote ran on over line breaks: say which lines it took
                message = f"not valid CSV ({exc}; lines {start_line}-{reader.line_num} read as one row)"
            else:
                message = f"not valid CSV ({exc})"
            errors.append(LineError(start_line, message, raw[:_RAW_KEEP]))
            if at_end:
                break
            start_line = reader.line_num + 1  # the reader starts again at the next line
            continue
        line = start_line
        start_line = reader.line_num + 1
        if not row or all(not c.strip() for c in row):
            continue
        # a row that took several lines (a quoted cell with line breaks, or a stray quote that ran on): an
        # error about it names the lines it took, so the user sees where the next row went
        span = f" (lines {line}-{reader.line_num} read as one row)" if reader.line_num > line else ""
        nul = next((h for h, c in zip(header, row, strict=False) if "\x00" in c), None)
        if nul is not None:
            errors.append(
                LineError(
                    line, f"a NUL byte in column '{nul}' (binary data in a text cell){span}", ",".join(row)
                )
            )
            continue
        if len(row) != len(header):
            errors.append(
                LineError(
                    line,
                    f"wrong number of cells: {len(row)} (the header has {len(header)}){span}",
                    ",".join(row),
                )
            )
            continue
        record: dict[str, Any] = {}
        try:
            for key, cell in zip(header, row, strict=True):
                if cell == "" and key not in _FORMAT_FIELDS:
                    continue  # an empty cell of an optional column: the record did not have it
                record[key] = _decode_cell(key, cell)
        except orjson.JSONDecodeError as exc:
            errors.append(
                LineError(
                    line,
                    f"column '{key}' should hold JSON but is {plain_json_error(str(exc), exc.colno)}{span}",
                    ",".join(row),
                )
            )
            continue
        records.append((line, record))
    return records, errors


def _strip_nulls(value: Any) -> Any:
    """Parquet fills keys a row lacks with null; drop them so records read back as they were written."""
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _read_parquet(
    file: Path, should_stop: StopFn | None = None
) -> tuple[list[tuple[int, Any]], list[LineError]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{file} cannot be read as Parquet: {str(exc).splitlines()[0]}") from None
    meta = table.schema.metadata or {}
    json_columns = set(orjson.loads(meta.get(b"whetstone_json_columns", b"[]")))
    records: list[tuple[int, Any]] = []
    errors: list[LineError] = []
    rows = (row for batch in table.to_batches(max_chunksize=STOP_EVERY) for row in batch.to_pylist())
    for index, row in enumerate(rows, 1):
        _poll(should_stop, index)
        record: dict[str, Any] = {}
        try:
            for key, value in row.items():
                if value is None:
                    continue
                if key in json_columns and isinstance(value, str):
                    record[key] = orjson.loads(value)
                elif isinstance(value, str) and key in _JSON_COLUMNS:
                    record[key] = _decode_cell(key, value)
                else:
                    record[key] = _strip_nulls(value)
        except orjson.JSONDecodeError as exc:
            errors.append(
                LineError(
                    index,
                    f"column '{key}' should hold JSON but is {plain_json_error(str(exc), exc.colno)}",
                    "",
                )
            )
            continue
        records.append((index, record))
    return records, errors


def read_records(
    path: str | Path, should_stop: StopFn | None = None
) -> tuple[str, list[tuple[int, Any]], list[LineError]]:
    """Raw records of a data file as (file type, [(line, record)], errors). UserError if unreadable;
    Cancelled once `should_stop()` is true."""
    file = Path(path)
    if not file.exists():
        raise UserError(f"File not found: {file}")
    if file.is_dir():
        raise UserError(f"Expected a file, got a folder: {file}")
    kind = _file_type(file)
    if kind == "parquet":
        records, errors = _read_parquet(file, should_stop)
        return kind, records, errors
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UserError(f"Cannot read {file}: {exc.strerror}") from exc
    check_stop(should_stop)  # (between the whole-file steps too: each takes a while on a file of 100+ MB)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"{file} is UTF-16 text; save it as UTF-8 and open it again.")
    if not data.strip():
        raise UserError(f"{file} is empty.")
    if data.startswith(b"PAR1"):
        records, errors = _read_parquet(file, should_stop)
        return "parquet", records, errors
    if _looks_binary(data):
        raise UserError(f"{file} cannot be read: it holds binary data, not JSON/CSV text.")
    if kind == "json":
        records, errors = _read_json_array(data, file, should_stop)
    elif kind == "csv":
        records, errors = _read_csv(data, file, should_stop)
    else:
        records, errors = _read_jsonl(data, should_stop)
    return kind, records, errors


def _examples_from(
    records: Iterable[tuple[int, Any]],
    fmt: str,
    kind: str,
    result: ReadResult,
    should_stop: StopFn | None = None,
) -> Iterator[Example]:
    """Convert parsed records to Examples; bad ones go to `result.errors` with the reason."""
    seen_ids: set[str] = set()
    for count, (number, rec) in enumerate(records, 1):
        _poll(should_stop, count)
        try:
            example = record_to_example(rec, fmt)
        except RecordError as exc:
            message = str(exc)
            rec_fmt = detect_record_format(rec)
            if rec_fmt is not None and rec_fmt != fmt:
                article = "an" if rec_fmt[0] in "aeiou" else "a"
                message = f"mixed formats: this line is {article} {rec_fmt} record in a {fmt} file; it can be added as it is"
            elif rec_fmt is None and isinstance(rec, dict) and not (set(rec) & _known_keys(fmt)):
                keys = ", ".join(f"'{k}'" for k in sorted(map(str, rec))[:6]) or "none"
                message = f"this line is not a {fmt} record: {message}; its fields are {keys}"
            result.errors.append(LineError(number, message, _dump_raw(rec)))
            continue
        example.line = number
        if example.id in seen_ids:
            example.id = f"{example.id}-{number}"
        seen_ids.add(example.id)
        yield example


def _confidence(votes: dict[str, int], fmt: str, total: int) -> float:
    return round(votes.get(fmt, 0) / max(1, total), 4)


def _pick_format(votes: dict[str, int]) -> str | None:
    if not votes:
        return None
    return max(FORMATS, key=lambda k: votes.get(k, 0))


def read_dataset(path: str | Path, fmt: str | None = None, should_stop: StopFn | None = None) -> ReadResult:
    """Read a data file (.jsonl/.json/.csv/.parquet). Raises UserError when the file cannot be read at all,
    Cancelled once `should_stop()` is true."""
    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"Unknown format '{fmt}' (choose from {', '.join(FORMATS)}).")
    kind, records, errors = read_records(path, should_stop)
    votes: dict[str, int] = {}
    for _, rec in records:
        f = detect_record_format(rec)
        if f:
            votes[f] = votes.get(f, 0) + 1
    total = len(records) + len(errors)
    chosen = fmt or _pick_format(votes) or "messages"
    result = ReadResult(chosen, errors=errors, confidence=_confidence(votes, chosen, total), file_type=kind)
    result.records = total
    result.detected = votes
    result.examples = list(_examples_from(records, chosen, kind, result, should_stop))
    result.errors.sort(key=lambda e: e.line)
    return result


def _iter_jsonl(file: Path, block: int = 8 << 20) -> Iterator[tuple[int, Any] | LineError]:
    """Parsed lines of a JSONL file, read in large blocks (fast, and little memory for big files)."""
    loads = orjson.loads
    number = 0
    rest = b""
    with open(file, "rb") as handle:
        first = True
        while True:
            chunk = handle.read(block)
            if first:
                first = False
                chunk += handle.read(3)  # a BOM is never split from the rest of the first line
                if chunk.startswith(b"\xef\xbb\xbf"):
                    chunk = chunk[3:] or handle.read(block)
            if not chunk:
                lines = [rest] if rest else []
            else:
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
            for raw in lines:
                number += 1
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                if not raw or raw.isspace():
                    continue
                try:
                    yield number, loads(raw)
                except orjson.JSONDecodeError as exc:
                    yield LineError(number, _not_utf8(raw) or _json_error(exc, raw), _raw_text(raw))
            if not chunk:
                return


def stream_dataset(
    path: str | Path, fmt: str | None = None, sniff: int = 2000, should_stop: StopFn | None = None
) -> tuple[ReadResult, Iterator[Example]]:
    """Like read_dataset, but a JSONL file is read line by line (little memory for big files).

    The format is detected from the first `sniff` records; `result.errors`, `confidence` and `records` are
    complete once the iterator is exhausted. Other file types are read whole. Reading (here for other file
    types, while iterating for JSONL) raises Cancelled once `should_stop()` is true."""
    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"Unknown format '{fmt}' (choose from {', '.join(FORMATS)}).")
    file = Path(path)
    if _file_type(file) != "jsonl" or not file.is_file():
        result = read_dataset(path, fmt, should_stop)
        examples, result.examples = result.examples, []
        return result, iter(examples)
    try:
        with open(file, "rb") as handle:
            head = handle.read(65536)
    except OSError as exc:
        raise UserError(f"Cannot read {file}: {exc.strerror}") from exc
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"{file} is UTF-16 text; save it as UTF-8 and open it again.")
    if head.startswith(b"PAR1") or _looks_binary(head) or not head.strip():
        # raises the right message (or reads the odd small file)
        result = read_dataset(path, fmt, should_stop)
        examples, result.examples = result.examples, []
        return result, iter(examples)
    if fmt is None:
        votes: dict[str, int] = {}
        seen = 0
        for item in _iter_jsonl(file):
            if isinstance(item, LineError):
                continue
            f = detect_record_format(item[1])
            if f:
                votes[f] = votes.get(f, 0) + 1
            seen += 1
            if seen >= sniff:
                break
        fmt = _pick_format(votes) or "messages"
    result = ReadResult(fmt, file_type="jsonl")
    chosen = fmt

    def generate() -> Iterator[Example]:
        votes: dict[str, int] = {}
        total = 0

        def records() -> Iterator[tuple[int, Any]]:
            nonlocal total
            for item in _iter_jsonl(file):
                total += 1
                if isinstance(item, LineError):
                    result.errors.append(item)
                    continue
                f = detect_record_format(item[1])
                if f:
                    votes[f] = votes.get(f, 0) + 1
                yield item

        yield from _examples_from(records(), chosen, "jsonl", result, should_stop)
        result.records = total
        result.detected = votes
        result.confidence = _confidence(votes, chosen, total)
        result.errors.sort(key=lambda e: e.line)
        if total == 0:
            raise UserError(f"{file} is empty.")

    return result, generate()


def _dump_raw(record: Any) -> str:
    try:
        return orjson.dumps(record).decode()[:_RAW_KEEP]
    except TypeError:
        return repr(record)[:_RAW_KEEP]


def parse_fixed_line(text: str, fmt: str) -> Example:
    """Validate one record the user typed in (the Issues list's fix): RecordError says what is still wrong."""
    try:
        record = orjson.loads(text.encode("utf-8", "replace"))
    except orjson.JSONDecodeError as exc:
        raise RecordError(_json_error(exc, text.encode("utf-8", "replace"))) from None
    rec_fmt = detect_record_format(record)
    return record_to_example(record, rec_fmt or fmt)


def load_examples(path: str | Path, fmt: str | None = None) -> list[Example]:
    """The valid examples of a data file, in file order."""
    return read_dataset(path, fmt).examples


def describe_errors(errors: Sequence[LineError], limit: int = 5) -> str:
    parts = [f"line {e.line}: {e.message}" for e in errors[:limit]]
    more = len(errors) - limit
    if more > 0:
        parts.append(f"… {more} more")
    return "; ".join(parts)
