"""Formats: reading, detection, bad-line reports, malformed files, lossless writing (with property tests)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data.example import Example, Message
from core.data.formats import (
    FORMATS,
    read_dataset,
    stream_dataset,
    write_dataset,
)
from core.errors import UserError

FILE_TYPES = ("jsonl", "json", "csv", "parquet")


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


RECORDS = {
    "alpaca": {"instruction": "Sum", "input": "2 and 3", "output": "5", "system": "Be terse."},
    "sharegpt": {
        "conversations": [
            {"from": "system", "value": "Be kind."},
            {"from": "human", "value": "hi"},
            {"from": "gpt", "value": "hello"},
        ]
    },
    "messages": {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    "prompt-completion": {"prompt": "2+2=", "completion": "4"},
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_detected_and_read(tmp_path: Path, fmt: str) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [RECORDS[fmt]] * 3)
    result = read_dataset(path)
    assert result.format == fmt
    assert result.confidence == 1.0
    assert len(result.examples) == 3 and not result.errors
    assert result.examples[0].messages[-1].role == "assistant"


def test_alpaca_fields_become_turns(tmp_path: Path) -> None:
    ex = read_dataset(_jsonl(tmp_path / "a.jsonl", [RECORDS["alpaca"]])).examples[0]
    assert [(m.role, m.content) for m in ex.messages] == [
        ("system", "Be terse."),
        ("user", "Sum\n\n2 and 3"),
        ("assistant", "5"),
    ]


def test_sample_dataset_tags_map_to_example_tags(sample_data: Path) -> None:
    result = read_dataset(sample_data)
    assert result.format == "messages" and len(result.examples) == 120 and not result.errors
    assert result.examples[0].tags == ["technical"]
    assert result.examples[0].extra == {}


def test_tool_calls_are_kept(tmp_path: Path) -> None:
    call = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    record = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": call},
            {"role": "tool", "content": "sunny", "tool_call_id": "c1", "name": "f"},
            {"role": "assistant", "content": "It is sunny."},
        ]
    }
    path = _jsonl(tmp_path / "t.jsonl", [record])
    ex = read_dataset(path).examples[0]
    assert ex.messages[1].extra["tool_calls"] == call
    assert ex.messages[2].extra == {"tool_call_id": "c1", "name": "f"}
    out = tmp_path / "out.jsonl"
    write_dataset([ex], out, "messages")
    assert orjson.loads(out.read_bytes()) == record
    skipped = write_dataset([ex], tmp_path / "s.jsonl", "sharegpt").skipped
    assert skipped and "tool calls" in skipped[0][1]


def test_every_bad_line_is_reported_with_its_reason(tmp_path: Path) -> None:
    good = RECORDS["messages"]
    lines = [
        json.dumps(good),  # 1
        '{"messages": [{"role": "user", "content": "hi"}',  # 2 truncated
        json.dumps({"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]}),
        json.dumps({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]}),
        json.dumps({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]}),
        "",  # 6 blank: skipped, not an error
        json.dumps({"messages": "hello"}),  # 7
        json.dumps({"messages": [{"content": "x"}]}),  # 8
        json.dumps([1, 2]),  # 9
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),  # 10
        json.dumps(good),  # 11
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_dataset(path)
    assert len(result.examples) == 2
    assert [e.line for e in result.examples] == [1, 11]
    reasons = {e.line: e.message for e in result.errors}
    assert sorted(reasons) == [2, 3, 4, 5, 7, 8, 9, 10]
    assert reasons[2].startswith("not valid JSON")
    assert "unknown role 'wizard'" in reasons[3]
    assert "empty turn" in reasons[4]
    assert "wrong type" in reasons[5]
    assert "wrong type" in reasons[7]
    assert "missing field" in reasons[8]
    assert "wrong type" in reasons[9]
    assert "no assistant turn" in reasons[10]
    assert all(e.raw for e in result.errors)


def test_mixed_formats_name_the_stray_rows(tmp_path: Path) -> None:
    rows = [RECORDS["messages"]] * 3 + [RECORDS["alpaca"]]
    result = read_dataset(_jsonl(tmp_path / "m.jsonl", rows))
    assert result.format == "messages"
    assert result.confidence == 0.75
    assert [e.line for e in result.errors] == [4]
    assert "mixed formats" in result.errors[0].message and "alpaca" in result.errors[0].message
    forced = read_dataset(tmp_path / "m.jsonl", "alpaca")
    assert len(forced.examples) == 1 and forced.confidence == 0.25


def test_bom_crlf_and_non_utf8(tmp_path: Path) -> None:
    good = json.dumps(RECORDS["prompt-completion"]).encode()
    path = tmp_path / "bom.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + good + b"\r\n" + b'{"prompt": "caf\xe9", "completion": "x"}\r\n' + good
    )
    result = read_dataset(path)
    assert len(result.examples) == 2
    assert [e.line for e in result.errors] == [2]
    assert "not UTF-8" in result.errors[0].message
    assert result.examples[0].messages[0].content == "2+2="


def test_utf16_empty_binary_and_folder_cannot_be_read(tmp_path: Path) -> None:
    cases = {
        "empty.jsonl": b"",
        "blank.jsonl": b"\n\n  \n",
        "utf16.jsonl": "﻿{}".encode("utf-16"),
        "garbage.jsonl": bytes(range(256)) * 40,
        "garbage.parquet": b"PAR1 not really",
        "garbage.csv": b"\x00\x01\x02",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UserError):
            read_dataset(tmp_path / name)
    with pytest.raises(UserError, match="not found"):
        read_dataset(tmp_path / "missing.jsonl")
    with pytest.raises(UserError, match="folder"):
        read_dataset(tmp_path)


def test_ten_megabyte_single_line(tmp_path: Path) -> None:
    big = "x " * 5_000_000
    record = {"prompt": "summarise", "completion": big}
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps(record)[:-1000] + "\n", encoding="utf-8")
    result = read_dataset(path)
    assert len(result.examples) == 1 and len(result.examples[0].messages[1].content) == len(big)
    assert [e.line for e in result.errors] == [2]
    assert "cut off" in result.errors[0].message or "not valid JSON" in result.errors[0].message
    assert len(result.errors[0].raw) <= 100_000


def test_json_array_lines_and_truncation(tmp_path: Path) -> None:
    rows = [RECORDS["messages"], {"messages": []}, RECORDS["messages"]]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    result = read_dataset(path)
    assert len(result.examples) == 2
    assert result.errors[0].line > 1 and "empty conversation" in result.errors[0].message
    text = path.read_text()
    path.write_text(text[: len(text) // 2 + 40], encoding="utf-8")
    cut = read_dataset(path)
    assert cut.errors and "not valid JSON" in cut.errors[-1].message
    assert len(cut.examples) >= 1
    jsonl_as_json = tmp_path / "lines.json"
    jsonl_as_json.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert len(read_dataset(jsonl_as_json).examples) == 2


def test_csv_rows_and_bad_cells(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        'instruction,input,output\nAdd,"1, 2",3\n"multi\nline",,ok\nbroken,row\n,,\nEmpty,,\n',
        encoding="utf-8",
    )
    result = read_dataset(path)
    assert result.format == "alpaca"
    assert [e.messages[1].content for e in result.examples] == ["3", "ok"]
    assert result.examples[1].messages[0].content == "multi\nline"
    lines = {e.line: e.message for e in result.errors}
    assert "wrong number of cells" in lines[5]
    assert "empty turn" in lines[7]


def test_csv_stray_quote_that_swallows_the_next_line_says_which_lines(tmp_path: Path) -> None:
    """A stray quote on line 2 closes on line 3 (hypothesis found it): the row that took both lines has 3
    cells; its error names both lines, so the user knows where line 3's example went."""
    path = tmp_path / "d.csv"
    path.write_text('prompt,completion\n,"an unclosed quote\n",0"\nHi,Hello\n', encoding="utf-8")
    result = read_dataset(path)
    assert [(e.line, e.message) for e in result.errors] == [
        (2, "wrong number of cells: 3 (the header has 2) (lines 2-3 read as one row)")
    ]
    assert [(e.line, e.messages[1].content) for e in result.examples] == [(4, "Hello")]


def test_unmodified_rows_export_exactly_and_edits_are_rebuilt(tmp_path: Path, sample_data: Path) -> None:
    original = [orjson.loads(line) for line in sample_data.read_bytes().splitlines()]
    examples = read_dataset(sample_data).examples
    examples[0].messages[1].content = "edited"
    out = tmp_path / "out.jsonl"
    write_dataset(examples, out, "messages")
    written = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert written[1:] == original[1:]
    assert written[0]["messages"][1]["content"] == "edited"
    assert written[0]["tags"] == original[0]["tags"]


def test_lossy_conversions_are_reported_not_mangled(tmp_path: Path) -> None:
    multi = Example.chat(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"))
    system = Example.chat(("system", "s"), ("user", "a"), ("assistant", "b"))
    simple = Example.chat(("user", "a"), ("assistant", "b"))
    result = write_dataset([multi, system, simple], tmp_path / "o.jsonl", "prompt-completion")
    assert result.written == 1
    assert {i for i, _ in result.skipped} == {multi.id, system.id}
    alpaca = write_dataset([multi, system, simple], tmp_path / "a.jsonl", "alpaca")
    assert alpaca.written == 2 and alpaca.skipped[0][0] == multi.id


def test_stream_reads_like_read_dataset(tmp_path: Path) -> None:
    rows = [RECORDS["messages"], "oops", RECORDS["alpaca"], RECORDS["messages"]]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows), encoding="utf-8")
    whole = read_dataset(path)
    result, examples = stream_dataset(path)
    streamed = list(examples)
    assert [e.messages_dicts() for e in streamed] == [e.messages_dicts() for e in whole.examples]
    assert [(e.line, e.message) for e in result.errors] == [(e.line, e.message) for e in whole.errors]
    assert result.confidence == whole.confidence


# --- property tests ---------------------------------------------------------------------------------------
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1).filter(
    lambda s: s.strip() != ""
)
tags = st.lists(st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=8), max_size=3)


@st.composite
def conversations(draw: st.DrawFn) -> Example:
    turns: list[Message] = []
    if draw(st.booleans()):
        turns.append(Message("system", draw(text)))
    for _ in range(draw(st.integers(1, 3))):
        turns.append(Message("user", draw(text)))
        turns.append(Message("assistant", draw(text)))
    return Example(messages=turns, tags=draw(tags))


def _expressible(example: Example, fmt: str) -> bool:
    roles = [m.role for m in example.messages]
    if fmt == "alpaca":
        return roles in (["user", "assistant"], ["system", "user", "assistant"])
    if fmt == "prompt-completion":
        return roles == ["user", "assistant"]
    return True


@pytest.mark.parametrize("file_type", FILE_TYPES)
@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(examples=st.lists(conversations(), min_size=1, max_size=4))
def test_canonical_survives_write_read(
    tmp_path: Path, fmt: str, file_type: str, examples: list[Example]
) -> None:
    path = tmp_path / f"p.{file_type}"
    result = write_dataset(examples, path, fmt)
    kept = [e for e in examples if _expressible(e, fmt)]
    assert result.written == len(kept)
    assert len(result.skipped) == len(examples) - len(kept)
    if not kept:
        return
    back = read_dataset(path)
    assert back.format == fmt and not back.errors
    assert [e.messages_dicts() for e in back.examples] == [e.messages_dicts() for e in kept]
    assert [e.tags for e in back.examples] == [e.tags for e in kept]
    # And the records read back write out exactly as they came in.
    again = tmp_path / f"again.{file_type}"
    write_dataset(back.examples, again, fmt)
    assert [e.original for e in read_dataset(again).examples] == [e.original for e in back.examples]


@st.composite
def records(draw: st.DrawFn, fmt: str) -> dict:
    if fmt == "alpaca":
        rec = {
            "instruction": draw(text),
            "input": draw(st.sampled_from(["", "context"])),
            "output": draw(text),
        }
    elif fmt == "sharegpt":
        rec = {
            "conversations": [{"from": "human", "value": draw(text)}, {"from": "gpt", "value": draw(text)}]
        }
    elif fmt == "messages":
        rec = {
            "messages": [
                {"role": "user", "content": draw(text)},
                {"role": "assistant", "content": draw(text)},
            ]
        }
    else:
        rec = {"prompt": draw(text), "completion": draw(text)}
    if draw(st.booleans()):
        rec["source"] = draw(text)
    return rec


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_record_round_trips_unchanged(tmp_path: Path, fmt: str, data: st.DataObject) -> None:
    rows = data.draw(st.lists(records(fmt), min_size=1, max_size=5))
    src = _jsonl(tmp_path / "r.jsonl", rows)
    out = tmp_path / "w.jsonl"
    write_dataset(read_dataset(src).examples, out, fmt)
    assert [orjson.loads(line) for line in out.read_bytes().splitlines()] == rows
