"""Fuzz corpus for every importer (JSONL, JSON, CSV, Parquet): files mixing good records with truncated ones,
wrong encodings, huge fields, deep nesting, NUL bytes, BOMs and values of every JSON type. Whatever the file,
the reader either refuses it with one plain line (UserError) or returns every record as an example or as an
error with its line: never a traceback, never a row silently dropped."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data.formats import ReadResult, read_dataset, stream_dataset
from core.data.workspace import DatasetWorkspace
from core.errors import UserError

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
turn = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "robot"]), "content": TEXT | json_values}
)
records = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(turn, max_size=4)}),
    st.fixed_dictionaries({"instruction": TEXT, "input": TEXT, "output": TEXT | json_values}),
    st.fixed_dictionaries(
        {
            "conversations": st.lists(
                st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt", "x"]), "value": TEXT}),
                max_size=4,
            )
        }
    ),
    st.fixed_dictionaries({"prompt": TEXT, "completion": TEXT}),
    st.dictionaries(
        st.sampled_from(["messages", "prompt", "completion", "id", "tags", "split", "x"]), json_values
    ),
    json_values,
)
GOOD = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Reset my password"},
        {"role": "assistant", "content": "Use the link on the sign-in page."},
    ]
}


def _deep(n: int) -> bytes:
    return b'{"messages": ' + b"[" * n + b"]" * n + b"}"


@st.composite
def jsonl_line(draw: Any) -> bytes:
    """One physical line of a JSONL file (without its newline)."""
    kind = draw(st.integers(0, 11))
    rec = json.dumps(draw(records), ensure_ascii=False).encode()
    if kind == 0:
        return orjson.dumps(GOOD)
    if kind == 1:  # truncated
        return rec[: draw(st.integers(0, max(0, len(rec) - 1)))]
    if kind == 2:  # latin-1 / cp1252 text
        return '{"prompt": "café résumé", "completion": "naïve"}'.encode("latin-1")
    if kind == 3:  # a NUL byte inside a string, raw or escaped
        return draw(
            st.sampled_from(
                [b'{"prompt": "a\x00b", "completion": "c"}', b'{"prompt": "a\\u0000b", "completion": "c"}']
            )
        )
    if kind == 4:  # a huge field
        return orjson.dumps({"prompt": "word " * draw(st.integers(20_000, 60_000)), "completion": "ok"})
    if kind == 5:  # deep nesting
        return _deep(draw(st.sampled_from([100, 2_000, 50_000])))
    if kind == 6:  # a BOM where a line starts, or UTF-16
        return draw(
            st.sampled_from([b"\xef\xbb\xbf" + orjson.dumps(GOOD), '{"prompt": "x"}'.encode("utf-16-le")])
        )
    if kind == 7:
        return draw(st.sampled_from([b"", b"   ", b"\t"]))  # blank lines are not records
    if kind == 8:
        return draw(st.binary(max_size=30)).replace(b"\n", b" ")
    return rec


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _check_errors(result: ReadResult, lines: int) -> None:
    assert len(result.examples) + len(result.errors) == result.records
    for err in result.errors:
        assert 1 <= err.line <= max(1, lines), err
        assert err.message and "\n" not in err.message and "Traceback" not in err.message
    for ex in result.examples:
        assert ex.messages and any(m.role == "assistant" for m in ex.messages)


def _read(path: Path) -> ReadResult | None:
    """read_dataset; None when it refused the file with one plain line."""
    try:
        return read_dataset(path)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None


def _stream(path: Path) -> ReadResult | None:
    try:
        result, examples = stream_dataset(path)
        result.examples = list(examples)
        return result
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None


@FUZZ
@given(lines=st.lists(jsonl_line(), min_size=1, max_size=12), bom=st.booleans(), crlf=st.booleans())
def test_jsonl_every_line_is_an_example_or_an_error(
    tmp_path: Path, lines: list[bytes], bom: bool, crlf: bool
) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + (b"\r\n" if crlf else b"\n").join(lines)
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(data)
    result = _read(path)
    streamed = _stream(path)
    assert (result is None) == (streamed is None)
    if result is None or streamed is None:
        return
    _check_errors(result, _line_count(data))
    # Every line holding anything is accounted for, once: as an example or as an error.
    seen = sorted([e.line for e in result.examples] + [e.line for e in result.errors])
    physical = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")  # only the file's own BOM is not content
    wanted = [i for i, raw in enumerate(physical, 1) if raw.strip()]
    assert seen == wanted
    # The streaming import (what the workspace uses) agrees with the whole-file reader.
    assert [(e.line, e.messages_dicts()) for e in streamed.examples] == [
        (e.line, e.messages_dicts()) for e in result.examples
    ]
    assert [(e.line, e.message) for e in streamed.errors] == [(e.line, e.message) for e in result.errors]


@FUZZ
@given(
    items=st.lists(records | st.just(GOOD), min_size=0, max_size=8),
    cut=st.integers(0, 10_000),
    deep=st.booleans(),
)
def test_json_array_truncated_or_deep(tmp_path: Path, items: list[Any], cut: int, deep: bool) -> None:
    parts = [json.dumps(i, indent=1).encode() for i in items]
    if deep:
        parts.insert(len(parts) // 2, b"[" * 30_000 + b"]" * 30_000)
    data = b"[\n" + b",\n".join(parts) + b"\n]"
    if cut < len(data):
        data = data[: max(1, cut)]
    path = tmp_path / "fuzz.json"
    path.write_bytes(data)
    result = _read(path)
    if result is None:
        return
    _check_errors(result, _line_count(data))
    complete = not deep and cut >= len(b"[\n" + b",\n".join(parts) + b"\n]")
    if complete:
        assert result.records == len(items)
    else:  # cut short or unreadable: the reader says where it stopped
        assert result.records <= len(items) + 1
        if result.records < len(items):
            assert any("cannot be read" in e.message or "cut off" in e.message for e in result.errors)


cells = st.one_of(
    TEXT.map(
        lambda t: t.replace("\r", "")
    ),  # a lone CR ends a line for the reader but not for this test's count
    st.sampled_from(
        ['a "quoted" word', "two\nlines", "comma, inside", "h\x00i", "", "   ", '"', "[1, 2", "{}"]
    ),
    st.builds(lambda n: "x" * n, st.integers(50_000, 120_000)),
)


@FUZZ
@given(
    columns=st.sampled_from(
        [
            ["prompt", "completion"],
            ["instruction", "input", "output"],
            ["messages", "tags"],
            ["prompt", "completion", "notes", "tags"],
        ]
    ),
    rows=st.lists(st.lists(cells, min_size=1, max_size=5), min_size=1, max_size=8),
    broken=st.integers(-1, 8),
)
def test_csv_every_row_is_an_example_or_an_error(
    tmp_path: Path, columns: list[str], rows: list[list[str]], broken: int
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for i, row in enumerate(rows):
        if i == broken:
            plain = "".join(c for c in row[0] if c not in '"\r\n,')
            out.write(f'{plain},"an unclosed quote\n')  # malformed: runs to the end
        else:
            writer.writerow(row)
    text = out.getvalue()
    path = tmp_path / "fuzz.csv"
    path.write_bytes(text.encode("utf-8"))
    result = _read(path)
    if result is None:
        return
    _check_errors(result, text.count("\n") + 1)
    # Every physical row start is accounted for: as an example, as an error, or inside the text of an error
    # whose broken quote ran on over the following lines (an unclosed one runs to the end of the file).
    reader_lines = {e.line for e in result.examples} | {e.line for e in result.errors}
    for e in result.errors:
        taken = re.search(r"lines (\d+)-(\d+) read as one row", e.message)
        if taken:
            reader_lines |= set(range(int(taken[1]), int(taken[2]) + 1))
    unclosed = [e.line for e in result.errors if "never closed" in e.message]
    line = 2
    for i, row in enumerate(rows):
        raw = io.StringIO()
        csv.writer(raw, lineterminator="\n").writerow(row)
        physical = raw.getvalue().count("\n") if i != broken else 1
        blank = i != broken and all(not c.strip() for c in row)
        if not blank and not (unclosed and unclosed[0] < line):
            assert line in reader_lines, (line, row, result.errors)
        line += physical


opt_text = st.none() | TEXT | st.sampled_from(["h\x00i", "x" * 70_000, '[{"role": "user"'])
parquet_rows = st.lists(
    st.fixed_dictionaries(
        {
            "prompt": opt_text,
            "completion": opt_text,
            "messages": st.none()
            | st.lists(
                st.fixed_dictionaries(
                    {"role": st.none() | st.sampled_from(["user", "assistant", "x"]), "content": opt_text}
                ),
                max_size=3,
            ),
            "tags": st.none() | st.lists(st.none() | TEXT, max_size=3),
            "blob": st.none() | st.binary(max_size=20),
            "n": st.none() | st.integers(-(2**63), 2**63 - 1),
        }
    ),
    min_size=1,
    max_size=8,
)


@FUZZ
@given(
    rows=parquet_rows,
    keep=st.sets(st.sampled_from(["prompt", "completion", "messages", "tags", "blob", "n"]), min_size=1),
)
def test_parquet_every_row_is_an_example_or_an_error(
    tmp_path: Path, rows: list[dict[str, Any]], keep: set[str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "prompt": pa.string(),
        "completion": pa.string(),
        "messages": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
        "tags": pa.list_(pa.string()),
        "blob": pa.binary(),
        "n": pa.int64(),
    }
    schema = pa.schema([(k, t) for k, t in types.items() if k in keep])
    table = pa.Table.from_pylist([{k: r[k] for k in keep} for r in rows], schema=schema)
    path = tmp_path / "fuzz.parquet"
    pq.write_table(table, path)
    result = _read(path)
    assert result is not None
    _check_errors(result, len(rows))
    assert sorted([e.line for e in result.examples] + [e.line for e in result.errors]) == list(
        range(1, len(rows) + 1)
    )
    # The same file cut short is refused in one line.
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert _read(path) is None


def test_named_corpus(tmp_path: Path) -> None:
    """The cases the fuzzers found or that users bring, each with the sentence it gets."""
    good = orjson.dumps(GOOD)
    cases: dict[str, tuple[bytes, list[tuple[int, str]] | str]] = {
        "deep.json": (b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]", [(1, "nested too deeply")]),
        "stray-nul.csv": (
            b"prompt,completion\nhi,yo\nh\x00i,yo\nok,fine\n",
            [(3, "a NUL byte in column 'prompt'")],
        ),
        "nul.jsonl": (
            good + b'\n{"prompt": "a\x00", "completion": "b"}\n' + good,
            [(2, "a NUL byte at column")],
        ),
        "unclosed.csv": (b'prompt,completion\nhi,"yo\nok,fine\n', [(2, "quoted cell is never closed")]),
        "bad-quote.csv": (b'prompt,completion\nhi,"yo"x\nok,fine\n', [(2, "not valid CSV")]),
        "latin1.jsonl": (good + b'\n{"prompt": "caf\xe9", "completion": "x"}\n', [(2, "not UTF-8 text")]),
        "bom-mid.jsonl": (good + b"\n\xef\xbb\xbf" + good + b"\n", [(2, "byte order mark")]),
        "utf16.jsonl": ("x".encode("utf-16"), "UTF-16"),
        "latin1.csv": (b"prompt,completion\ncaf\xe9,x\n", "line 2 is not UTF-8"),
        "binary.jsonl": (bytes(range(256)) * 40, "binary data"),
        "empty.csv": (b"", "empty"),
    }
    for name, (data, want) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        if isinstance(want, str):
            with pytest.raises(UserError, match=want):
                read_dataset(path)
            continue
        result = read_dataset(path)
        _check_errors(result, _line_count(data))
        got = [(e.line, e.message) for e in result.errors]
        assert len(got) == len(want), (name, got)
        for (line, message), (want_line, want_text) in zip(got, want, strict=True):
            assert line == want_line and want_text in message, (name, got)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(jsonl_line(), min_size=1, max_size=8))
def test_workspace_import_keeps_every_example_and_bad_line(tmp_path: Path, lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    source = tmp_path / "fuzz.jsonl"
    source.write_bytes(data)
    result = _read(source)
    target = tmp_path / "fuzz.wsdb"
    try:
        ws = DatasetWorkspace.create_from_file(source, target)
    except UserError as exc:
        assert result is None and "\n" not in str(exc)
        assert not target.exists() and not list(tmp_path.glob(".fuzz.wsdb.*"))  # no partial workspace
        return
    assert result is not None
    with ws:
        assert ws.count() == len(result.examples)
        assert [b.line for b in ws.bad_lines()] == [e.line for e in result.errors]
        assert [ws.get(i).messages_dicts() for i in ws.ids()] == [e.messages_dicts() for e in result.examples]
    target.unlink()
    for extra in ("-wal", "-shm"):
        Path(str(target) + extra).unlink(missing_ok=True)
