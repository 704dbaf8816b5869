"""Column mapping: a helpdesk spreadsheet with its own column names, multi-turn rows grouped by a conversation
id with a system column, the proposed mapping, and `whetstone data check|convert|stats --map`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from core.data.formats import RecordError, read_dataset
from core.data.mapping import ColumnMapping, propose_mapping, read_mapped, sample_file
from core.data.workspace import DatasetWorkspace
from core.errors import UserError
from tests.conftest import run_cli

HELPDESK_MAP = "prompt=Customer question,completion=Agent answer,id=Ticket ID"
SYSTEM = "You are Acme's support agent. Answer briefly and politely."


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def helpdesk(tmp_path: Path) -> Path:
    rows = [
        [
            f"T-{1000 + i}",
            f"Hello, this is customer {i}: how do I reset my password?",
            f"Hi {i}, use Settings.",
        ]
        for i in range(20)
    ]
    rows[7] = ["T-1007", "Can I get a refund, please? I paid twice.", 'Yes: open "Billing", then "Refund".']
    rows.append(["T-2000", "", "An answer without a question"])
    return write_csv(tmp_path / "helpdesk.csv", ["Ticket ID", "Customer question", "Agent answer"], rows)


@pytest.fixture
def conversations(tmp_path: Path) -> Path:
    header = ["Conversation", "System prompt", "Customer said", "Agent replied", "Category"]
    rows = [
        ["c1", SYSTEM, "Hi, my order is late", "Sorry! What is your order number?", "shipping"],
        ["c2", SYSTEM, "Do you ship to Canada?", "Yes, in 5-7 days.", "shipping"],
        ["c1", "", "It is 4411", "Thanks, it ships tomorrow.", "shipping"],
        ["c3", SYSTEM, "Cancel my plan", "Done, you will not be charged again.", "billing"],
        ["c1", "", "Great, thanks", "You are welcome!", "shipping"],
    ]
    return write_csv(tmp_path / "chats.csv", header, rows)


def test_helpdesk_csv_without_mapping_is_not_readable_but_mapping_reads_it(helpdesk: Path) -> None:
    assert read_dataset(helpdesk).examples == []  # the reported case: 0 examples, every line "missing field"
    result = read_mapped(helpdesk, ColumnMapping.parse(HELPDESK_MAP))
    assert len(result.examples) == 20
    assert result.format == "prompt-completion"
    first = result.examples[0]
    assert first.id == "T-1000"
    assert [m.role for m in first.messages] == ["user", "assistant"]
    assert first.messages[0].content.startswith("Hello, this is customer 0")
    refund = next(e for e in result.examples if e.id == "T-1007")
    assert refund.messages[1].content == 'Yes: open "Billing", then "Refund".'
    assert [(e.line, e.message) for e in result.errors] == [
        (22, "the 'Customer question' cell is empty on this row")
    ]


def test_multi_turn_grouped_by_conversation_in_file_order_with_system(conversations: Path) -> None:
    mapping = ColumnMapping.parse(
        "prompt=Customer said,completion=Agent replied,system=System prompt,"
        "conversation=Conversation,tags=Category"
    )
    result = read_mapped(conversations, mapping)
    assert result.errors == []
    assert result.format == "messages"
    by_id = {e.id: e for e in result.examples}
    assert list(by_id) == ["c1", "c2", "c3"]
    c1 = by_id["c1"]
    assert [(m.role, m.content) for m in c1.messages] == [
        ("system", SYSTEM),
        ("user", "Hi, my order is late"),
        ("assistant", "Sorry! What is your order number?"),
        ("user", "It is 4411"),
        ("assistant", "Thanks, it ships tomorrow."),
        ("user", "Great, thanks"),
        ("assistant", "You are welcome!"),
    ]
    assert c1.tags == ["shipping"] and by_id["c3"].tags == ["billing"]
    assert c1.line == 2


def test_proposed_mapping_from_column_names(helpdesk: Path, conversations: Path) -> None:
    assert propose_mapping(sample_file(helpdesk)) == ColumnMapping.parse(HELPDESK_MAP)
    proposed = propose_mapping(sample_file(conversations))
    assert proposed == ColumnMapping(
        prompt="Customer said",
        completion="Agent replied",
        system="System prompt",
        tags="Category",
        conversation="Conversation",
    )


def test_proposal_falls_back_to_the_longest_text_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "odd.csv",
        ["n", "col A", "col B"],
        [[str(i), f"a long question text number {i} here", f"the long reply number {i}"] for i in range(5)],
    )
    assert propose_mapping(sample_file(path)) == ColumnMapping(prompt="col A", completion="col B")


def test_mapping_text_round_trips_and_bad_mappings_are_plain(tmp_path: Path) -> None:
    mapping = ColumnMapping(prompt="Q, asked", completion="A", tags="Tags")
    assert ColumnMapping.parse(mapping.to_text()) == mapping
    with pytest.raises(UserError, match="missing: completion"):
        ColumnMapping.parse("prompt=Q")
    with pytest.raises(UserError, match="unknown field 'answer'"):
        ColumnMapping.parse("prompt=Q,answer=A")
    with pytest.raises(UserError, match="FIELD=COLUMN"):
        ColumnMapping.parse("prompt=Q,completion")


def test_mapped_jsonl_and_parquet(tmp_path: Path) -> None:
    records = [{"q": f"question {i}?", "a": f"answer {i}", "n": i} for i in range(3)]
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    mapping = ColumnMapping(prompt="q", completion="a", id="n")
    assert [e.id for e in read_mapped(jsonl, mapping).examples] == ["0", "1", "2"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), tmp_path / "x.parquet")
    got = read_mapped(tmp_path / "x.parquet", mapping).examples
    assert [e.messages[1].content for e in got] == ["answer 0", "answer 1", "answer 2"]


def test_workspace_import_with_mapping_keeps_ids_and_exports(helpdesk: Path, tmp_path: Path) -> None:
    mapping = ColumnMapping.parse(HELPDESK_MAP)
    with DatasetWorkspace.create_from_file(helpdesk, tmp_path / "h.wsdb", mapping=mapping) as ws:
        assert ws.count() == 20
        assert ws.meta("mapping") == mapping.to_text()
        assert [b.line for b in ws.bad_lines()] == [22]
        ws.export(tmp_path / "out.jsonl", "prompt-completion")
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {
        "prompt": "Hello, this is customer 0: how do I reset my password?",
        "completion": "Hi 0, use Settings.",
        "id": "T-1000",
    }


# --- CLI ---------------------------------------------------------------------------------------------------
def test_cli_check_with_map(helpdesk: Path) -> None:
    plain = run_cli("data", "check", str(helpdesk))
    assert plain.returncode == 0
    assert "--map 'prompt=Customer question,completion=Agent answer,id=Ticket ID'" in plain.stderr
    proc = run_cli("data", "check", str(helpdesk), "--map", HELPDESK_MAP, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {"format", "examples", "errors"} <= set(doc)
    assert doc["format"] == "prompt-completion"
    assert doc["examples"] == 20
    assert doc["errors"] == [{"line": 22, "message": "the 'Customer question' cell is empty on this row"}]


def test_cli_unknown_column_is_one_line_exit_2_listing_columns(helpdesk: Path) -> None:
    for command in (["check", str(helpdesk)], ["stats", str(helpdesk)]):
        proc = run_cli("data", *command, "--map", "prompt=Question,completion=Agent answer", "--json")
        assert proc.returncode == 2
        assert proc.stdout == ""
        err = proc.stderr.strip()
        assert len(err.splitlines()) == 1
        assert "no such column" in err
        assert "'Ticket ID', 'Customer question', 'Agent answer'" in err
    proc = run_cli("data", "check", str(helpdesk), "--map", "prompt=Customer question")
    assert proc.returncode == 2 and "missing: completion" in proc.stderr


def test_cli_convert_multi_turn_with_map(conversations: Path, tmp_path: Path) -> None:
    out = tmp_path / "chats.jsonl"
    proc = run_cli(
        "data",
        "convert",
        str(conversations),
        str(out),
        "--to",
        "messages",
        "--map",
        "prompt=Customer said,completion=Agent replied,system=System prompt,conversation=Conversation",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["written"] == 3 and doc["errors"] == [] and doc["skipped"] == []
    records = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == ["c1", "c2", "c3"]
    assert [m["role"] for m in records[0]["messages"]] == ["system", *["user", "assistant"] * 3]
    assert records[0]["Category"] == "shipping"  # an unmapped column travels as an extra field


def test_cli_stats_with_map(helpdesk: Path, smollm2_dir: Path) -> None:
    proc = run_cli(
        "data", "stats", str(helpdesk), "--map", HELPDESK_MAP, "--model", str(smollm2_dir), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["examples"] == 20
    assert doc["tokens"]["n"] == 20 and doc["tokens"]["min"] > 5
    assert [e["line"] for e in doc["errors"]] == [22]


def test_a_bad_row_of_a_mapped_file_is_fixed_with_its_own_columns(helpdesk: Path, tmp_path: Path) -> None:
    import orjson

    with DatasetWorkspace.create_from_file(
        helpdesk, tmp_path / "h.wsdb", mapping=ColumnMapping.parse(HELPDESK_MAP)
    ) as ws:
        bad = ws.bad_lines()[0]
        record = orjson.loads(bad.raw)
        assert record["Ticket ID"] == "T-2000" and record["Customer question"] == ""
        with pytest.raises(RecordError, match="'Customer question' cell is empty"):
            ws.fix_bad_line(bad.rowid, bad.raw)
        record["Customer question"] = "Is there an answer?"
        ws.fix_bad_line(bad.rowid, orjson.dumps(record).decode())
        fixed = ws.get("T-2000")
        assert [m.content for m in fixed.messages] == ["Is there an answer?", "An answer without a question"]
        assert fixed.line == 22 and ws.bad_lines() == []
