"""Column mapping: read a spreadsheet (CSV/JSON/JSONL/Parquet) whose columns are the user's own.

A file whose records are none of the four formats (alpaca, sharegpt, messages, prompt-completion), such as a
helpdesk export with "Ticket ID / Customer question / Agent answer", is read through a `ColumnMapping`:
which column is the question (prompt), the answer (completion), and optionally the system prompt, the id,
the tags and a conversation id. Rows sharing a conversation id become one multi-turn example, their turns in
file order. `propose_mapping` guesses a mapping from the column names and cells; the CLI takes one as
`--map prompt=COLUMN,completion=COLUMN[,...]` and the desktop shows it in a dialog with a preview.

Every row that cannot become a turn is reported with its line and a plain reason; nothing is dropped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from core.data.example import Example, Message
from core.data.readers import LineError, ReadResult, _iter_jsonl, _poll, read_records
from core.data.records import FORMATS, RecordError, detect_record_format, record_to_example, validate_example
from core.errors import UserError
from core.progress import StopFn

MAP_FIELDS = ("prompt", "completion", "system", "id", "tags", "conversation")
# What each field is called in the desktop dialog and in messages.
FIELD_LABELS = {
    "prompt": "Question (prompt)",
    "completion": "Answer (completion)",
    "system": "System prompt",
    "id": "ID",
    "tags": "Tags",
    "conversation": "Conversation ID",
}
_SNIFF_ROWS = 200
_SNIFF_BYTES = 1 << 20

# Words in a column name that suggest each field (whole words of the lower-cased name).
_HINTS: dict[str, tuple[str, ...]] = {
    "conversation": ("conversation", "thread", "session", "dialog", "dialogue", "chat", "convo"),
    "prompt": (
        "question",
        "prompt",
        "query",
        "instruction",
        "input",
        "request",
        "customer",
        "user",
        "ask",
        "problem",
        "issue",
        "message",
    ),
    "completion": (
        "answer",
        "response",
        "reply",
        "completion",
        "output",
        "agent",
        "assistant",
        "solution",
        "resolution",
        "bot",
    ),
    "system": ("system", "persona", "context", "guideline", "guidelines"),
    "tags": ("tags", "tag", "category", "categories", "label", "labels", "topic", "type", "intent"),
    "id": ("id", "ticket", "number", "key", "ref", "reference", "uuid"),
}
_WORDS = re.compile(r"[a-z]+|[0-9]+")


@dataclass(frozen=True)
class ColumnMapping:
    """Which of the file's columns holds each part of an example (None: not in the file)."""

    prompt: str
    completion: str
    system: str | None = None
    id: str | None = None
    tags: str | None = None
    conversation: str | None = None

    @classmethod
    def parse(cls, text: str) -> ColumnMapping:
        """`"prompt=Customer question,completion=Agent answer"` -> a mapping (UserError if malformed).

        Column names may contain spaces; a name that contains a comma is written with a doubled comma."""
        values: dict[str, str] = {}
        for part in _split_pairs(text):
            if not part.strip():
                continue
            key, sep, column = part.partition("=")
            key = key.strip().lower()
            column = column.strip()
            if not sep or not column:
                raise UserError(
                    f"--map expects FIELD=COLUMN pairs separated by commas, got '{part.strip()}' "
                    "(e.g. --map 'prompt=Customer question,completion=Agent answer')."
                )
            if key not in MAP_FIELDS:
                raise UserError(f"--map: unknown field '{key}' (use {', '.join(MAP_FIELDS)}).")
            if key in values:
                raise UserError(f"--map: '{key}' is given twice.")
            values[key] = column
        missing = [k for k in ("prompt", "completion") if k not in values]
        if missing:
            raise UserError(
                f"--map needs at least prompt=COLUMN and completion=COLUMN (missing: {', '.join(missing)})."
            )
        return cls(**values)

    def to_text(self) -> str:
        """The `--map` argument for this mapping (parse(to_text()) gives it back)."""
        return ",".join(f"{k}={v.replace(',', ',,')}" for k, v in self.items())

    def items(self) -> list[tuple[str, str]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name)]

    def check(self, columns: Sequence[str], file: str | Path = "") -> None:
        """UserError naming the file's columns when a mapped column is not among them."""
        unknown = [(k, v) for k, v in self.items() if v not in columns]
        if unknown:
            key, value = unknown[0]
            where = f" in {Path(file).name}" if file else ""
            raise UserError(
                f"--map {key}='{value}': no such column{where}; its columns are: "
                + ", ".join(f"'{c}'" for c in columns)
            )
        used = [v for _, v in self.items()]
        twice = sorted({v for v in used if used.count(v) > 1})
        if twice:
            raise UserError(f"--map uses the column '{twice[0]}' for two fields; give each its own column.")


def _split_pairs(text: str) -> list[str]:
    """Split on single commas; a doubled comma is a comma inside a column name."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == ",":
            if i + 1 < len(text) and text[i + 1] == ",":
                current.append(",")
                i += 2
                continue
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


# --- looking at a file -----------------------------------------------------------------------------------
@dataclass
class FileSample:
    """The first rows of a file: its columns in order, a few records, and whether a known format fits."""

    columns: list[str]
    records: list[tuple[int, dict[str, Any]]]
    known_format: str | None  # the format most sampled records are, if any


def columns_of(records: Iterable[tuple[int, Any]]) -> list[str]:
    columns: list[str] = []
    seen: set[str] = set()
    for _, rec in records:
        if isinstance(rec, dict):
            for key in rec:
                if key not in seen:
                    seen.add(key)
                    columns.append(str(key))
    return columns


def sample_file(path: str | Path, rows: int = _SNIFF_ROWS) -> FileSample:
    """The head of a data file (cheap for large JSONL/CSV). UserError when it cannot be read at all."""
    file = Path(path)
    records: list[tuple[int, Any]] = []
    suffix = file.suffix.lower()
    if suffix in (".jsonl", ".ndjson") and file.is_file():
        for item in _iter_jsonl(file):
            if isinstance(item, LineError):
                continue
            records.append(item)
            if len(records) >= rows:
                break
    elif suffix in (".csv", ".tsv") and file.is_file() and file.stat().st_size > _SNIFF_BYTES:
        records = _csv_head(file, rows)
    else:
        _, all_records, _ = read_records(file)
        records = all_records[:rows]
    dicts = [(n, r) for n, r in records if isinstance(r, dict)]
    votes: dict[str, int] = {}
    for _, rec in dicts:
        fmt = detect_record_format(rec)
        if fmt:
            votes[fmt] = votes.get(fmt, 0) + 1
    known = max(FORMATS, key=lambda k: votes.get(k, 0)) if votes else None
    if known is not None and votes[known] * 2 < len(dicts):
        known = None  # most rows are something else: a mapping reads them better
    return FileSample(columns_of(dicts), dicts, known)


def _csv_head(file: Path, rows: int) -> list[tuple[int, Any]]:
    with open(file, "rb") as handle:
        data = handle.read(_SNIFF_BYTES)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    text = data.decode("utf-8", "ignore")
    text = text[: text.rfind("\n") + 1] or text  # drop a row cut at the end of the sample
    dialect = "excel-tab" if file.suffix.lower() == ".tsv" else "excel"
    reader = csv.reader(io.StringIO(text, newline=""), dialect=dialect)
    out: list[tuple[int, Any]] = []
    try:
        header = [h.strip() for h in next(reader)]
        line = reader.line_num + 1
        for row in reader:
            if len(row) == len(header):
                out.append((line, {k: v for k, v in zip(header, row, strict=True) if v != ""}))
            line = reader.line_num + 1
            if len(out) >= rows:
                break
    except (StopIteration, csv.Error):
        pass
    return out


def _words(name: str) -> list[str]:
    return _WORDS.findall(name.lower())


def _cell_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return str(value)


def propose_mapping(sample: FileSample) -> ColumnMapping | None:
    """A best guess from the column names (and, failing that, the longest text columns); None when the file
    has fewer than two columns."""
    columns = sample.columns
    if len(columns) < 2:
        return None
    values: dict[str, list[str]] = {c: [] for c in columns}
    for _, rec in sample.records:
        for c in columns:
            if c in rec:
                values[c].append(_cell_text(rec[c]))
    mean_len = {c: sum(map(len, v)) / max(1, len(v)) for c, v in values.items()}
    repeats = {c: len(set(v)) < len(v) for c, v in values.items()}
    chosen: dict[str, str] = {}
    taken: set[str] = set()

    def pick(field_name: str, candidates: list[str]) -> None:
        for c in candidates:
            if c not in taken:
                chosen[field_name] = c
                taken.add(c)
                return

    def named(field_name: str) -> list[str]:
        hints = _HINTS[field_name]
        short = {"prompt": "q", "completion": "a"}.get(field_name)
        hits = [c for c in columns if any(w in hints for w in _words(c)) or c.strip().lower() == short]
        return sorted(hits, key=lambda c: (-mean_len[c], columns.index(c)))

    # A conversation id: a conversation-like name, or an id-like column whose values repeat.
    conv = [c for c in named("conversation") if repeats[c]]
    conv += [c for c in named("id") if repeats[c] and mean_len[c] < 40 and c not in conv]
    pick("conversation", conv)
    pick("system", named("system"))  # first: "System prompt" names a system prompt, not the prompt
    for key in ("prompt", "completion"):
        pick(key, [c for c in named(key) if mean_len[c] > 0])
    pick("tags", [c for c in named("tags") if mean_len[c] < 60])
    pick("id", [c for c in named("id") if not repeats[c] and mean_len[c] < 60])
    if "prompt" not in chosen or "completion" not in chosen:
        texts = sorted(
            (c for c in columns if c not in taken and mean_len[c] > 0), key=lambda c: -mean_len[c]
        )[: 2 - len({"prompt", "completion"} & set(chosen))]
        texts.sort(key=columns.index)  # the question usually comes before the answer
        for key in ("prompt", "completion"):
            if key not in chosen and texts:
                chosen[key] = texts.pop(0)
                taken.add(chosen[key])
    if "prompt" not in chosen or "completion" not in chosen:
        return None
    return ColumnMapping(**chosen)


# --- reading through a mapping -----------------------------------------------------------------------------
def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    text = _cell_text(value).strip()
    if text.startswith("["):
        try:
            parsed = orjson.loads(text)
            if isinstance(parsed, list):
                return [str(t).strip() for t in parsed if str(t).strip()]
        except ValueError:
            pass
    return [t.strip() for t in re.split(r"[,;|]", text) if t.strip()]


def _text_cell(rec: dict[str, Any], column: str | None) -> str:
    if column is None:
        return ""
    value = rec.get(column)
    if isinstance(value, dict | list):
        raise ValueError(f"the '{column}' cell holds a list or an object, not text")
    return _cell_text(value)


def mapped_examples(
    records: Iterable[tuple[int, Any]], mapping: ColumnMapping, should_stop: StopFn | None = None
) -> tuple[list[Example], list[LineError]]:
    """Examples built from (line, record) rows through `mapping`, with a plain reason for each bad row
    (Cancelled once `should_stop()` is true)."""
    errors: list[LineError] = []
    # (first line, rows) per conversation, in order of first appearance; a row without a conversation id
    # (or without a conversation column) is its own example.
    groups: list[tuple[int, list[tuple[int, dict[str, Any]]]]] = []
    by_key: dict[str, int] = {}
    for count, (line, rec) in enumerate(records, 1):
        _poll(should_stop, count)
        if not isinstance(rec, dict):
            errors.append(
                LineError(line, "this line is not a row with named columns", _raw_row(rec, mapping))
            )
            continue
        key = _cell_text(rec.get(mapping.conversation)).strip() if mapping.conversation else ""
        if key and key in by_key:
            groups[by_key[key]][1].append((line, rec))
            continue
        if key:
            by_key[key] = len(groups)
        groups.append((line, [(line, rec)]))
    examples: list[Example] = []
    seen_ids: set[str] = set()
    for count, (first_line, rows) in enumerate(groups, 1):
        _poll(should_stop, count)
        messages: list[Message] = []
        system = ""
        tags: list[str] = []
        id_value = ""
        bad = False
        for line, rec in rows:
            try:
                prompt = _text_cell(rec, mapping.prompt)
                answer = _text_cell(rec, mapping.completion)
                row_system = _text_cell(rec, mapping.system)
            except ValueError as exc:
                errors.append(LineError(line, str(exc), _raw_row(rec, mapping)))
                bad = True
                break
            if len(rows) == 1:
                empty = [
                    f"'{c}'"
                    for c, v in ((mapping.prompt, prompt), (mapping.completion, answer))
                    if not v.strip()
                ]
                if empty:
                    errors.append(
                        LineError(
                            line,
                            f"the {' and '.join(empty)} cell is empty on this row",
                            _raw_row(rec, mapping),
                        )
                    )
                    bad = True
                    break
            system = system or row_system.strip()
            if prompt.strip():
                messages.append(Message("user", prompt))
            if answer.strip():
                messages.append(Message("assistant", answer))
            if mapping.tags and rec.get(mapping.tags) not in (None, ""):
                tags += [t for t in _tags(rec[mapping.tags]) if t not in tags]
            if mapping.id and not id_value:
                id_value = _cell_text(rec.get(mapping.id)).strip()
        if bad:
            continue
        if system:
            messages.insert(0, Message("system", system))
        example = Example(messages=messages, source_format="messages", tags=tags)
        problems = validate_example(example)
        if problems:
            lines = ", ".join(str(n) for n, _ in rows[:8])
            where = f"the conversation on lines {lines}" if len(rows) > 1 else "this row"
            errors.append(
                LineError(first_line, f"{where}: {'; '.join(problems)}", _raw_row(rows[0][1], mapping))
            )
            continue
        if not id_value and mapping.conversation:
            id_value = _cell_text(rows[0][1].get(mapping.conversation)).strip()
        if id_value:
            example.id = id_value if id_value not in seen_ids else f"{id_value}-{first_line}"
        seen_ids.add(example.id)
        used = {v for _, v in mapping.items()}
        extra = {k: v for k, v in rows[0][1].items() if k not in used}
        example.extra = extra
        example.line = first_line
        examples.append(example)
    errors.sort(key=lambda e: e.line)
    return examples, errors


def _raw_row(rec: Any, mapping: ColumnMapping) -> str:
    """A bad row as the Issues tab shows it for fixing: the question and answer columns always present."""
    if isinstance(rec, dict):
        rec = {**rec, **{c: "" for c in (mapping.prompt, mapping.completion) if c not in rec}}
    return _raw(rec)


def _raw(rec: Any) -> str:
    try:
        return orjson.dumps(rec).decode()[:100_000]
    except TypeError:
        return repr(rec)[:100_000]


def read_mapped(path: str | Path, mapping: ColumnMapping, should_stop: StopFn | None = None) -> ReadResult:
    """Read a data file through a column mapping (UserError naming the columns when one is not there;
    Cancelled once `should_stop()` is true)."""
    kind, records, errors = read_records(path, should_stop)
    mapping.check(columns_of(records), path)
    examples, bad = mapped_examples(records, mapping, should_stop)
    single = all(len(e.messages) == 2 and e.messages[0].role == "user" for e in examples)
    result = ReadResult("prompt-completion" if single else "messages", file_type=kind)
    result.examples = examples
    result.errors = sorted([*errors, *bad], key=lambda e: e.line)
    result.records = len(records) + len(errors)
    result.confidence = round(len(examples) / max(1, len(examples) + len(bad)), 4)
    with_id = bool(mapping.id or mapping.conversation)
    for e in examples:
        _keep_as_record(e, result.format, with_id)
    return result


def _keep_as_record(example: Example, fmt: str, with_id: bool) -> None:
    """Give a mapped example the record it is in `fmt` (id, tags and the other columns included) as its
    original, so writing it keeps the ticket id and the unmapped columns."""
    example.source_format = fmt
    if fmt == "prompt-completion":
        record: dict[str, Any] = {
            "prompt": example.messages[0].content,
            "completion": example.messages[1].content,
        }
    else:
        record = {"messages": example.messages_dicts()}
    if set(example.extra) & {*record, "id", "tags", "split", "notes"}:
        return  # an unmapped column named like a format field: written without it being the original
    record.update(example.extra)
    if with_id:
        record["id"] = example.id
    if example.tags:
        record["tags"] = list(example.tags)
    try:
        again = record_to_example(record, fmt)
    except RecordError:
        return
    if again.messages_dicts() == example.messages_dicts() and (again.id == example.id or not with_id):
        example.original = record


def parse_mapped_line(text: str, mapping: ColumnMapping, fmt: str) -> Example:
    """A bad row of a mapped file as the user fixed it on the Issues tab (its JSON, with the file's own
    column names); a record of one of the four formats is taken as it is. RecordError says what is wrong."""
    from core.data.readers import _json_error, parse_fixed_line

    try:
        record = orjson.loads(text.encode("utf-8", "replace"))
    except orjson.JSONDecodeError as exc:
        raise RecordError(_json_error(exc, text.encode("utf-8", "replace"))) from None
    if not isinstance(record, dict):
        raise RecordError("this line is not a row with named columns")
    if mapping.prompt not in record and mapping.completion not in record and detect_record_format(record):
        return parse_fixed_line(text, fmt)
    try:
        examples, errors = mapped_examples([(0, record)], mapping)
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    if errors:
        raise RecordError(errors[0].message)
    example = examples[0]
    _keep_as_record(example, fmt, bool(mapping.id or mapping.conversation))
    return example
