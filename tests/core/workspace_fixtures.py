"""Workspace files of past schema versions, built from their schema as it was (tests/data/workspace_schema_v*.sql,
verbatim from git history), filled the way that version's code wrote them, plus the tables other areas keep in
the same file (dedup decisions, review sessions and votes)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass
class Expected:
    """What a fixture holds, to compare after the upgrade."""

    examples: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> fields as the app reads them
    order: list[str] = field(default_factory=list)  # live ids in file order
    deleted: list[str] = field(default_factory=list)
    history: dict[str, list[tuple[str, Any, Any]]] = field(
        default_factory=dict
    )  # id -> [(op, before, after)]
    bad_lines: list[tuple[int, str, str, str | None]] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    decisions: set[tuple[str, str, str]] = field(default_factory=set)
    votes: list[tuple[int, str, str, str]] = field(default_factory=list)  # (position, reviewer, vote, note)


def _example(i: int) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": f"You triage support tickets (row {i})."},
        {"role": "user", "content": f"Ticket {i}: the printer on floor {i % 7} is jammed again. ünïcödé ✓"},
        {"role": "assistant", "content": f'{{"queue": "hardware", "priority": {i % 3}}}'},
    ]
    if i % 4 == 0:  # multi-turn
        messages += [
            {"role": "user", "content": "And the second one?"},
            {"role": "assistant", "content": "Also hardware.", "weight": 0},
        ]
    return {
        "id": f"ex-{i:04d}",
        "messages": messages,
        "tags": [
            t for t, on in (("printer", True), ("urgent", i % 5 == 0), (f"floor-{i % 7}", i % 2 == 0)) if on
        ],
        "split": (None, "train", "validation", "test")[i % 4],
        "notes": f"checked by Ana {i}" if i % 3 == 0 else "",
        "source_format": "messages",
        "extra": {"ticket": i, "customer": {"name": f"C{i}"}} if i % 2 else {},
        "original": {"messages": messages, "ticket": i} if i % 2 else None,
        "line": i + 1,
        "tokens": 40 + i if i % 3 else None,
    }


def build_v1(path: Path, rows: int = 60) -> Expected:
    """A schema-1 workspace with `rows` examples (some deleted, edited, tagged, split), edit history, bad lines,
    dedup decisions and review votes."""
    schema = (DATA / "workspace_schema_v1.sql").read_text(encoding="utf-8")
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA page_size=16384")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(schema)
    exp = Expected()
    exp.meta = {"schema": "1", "format": "messages", "source": "/data/tickets.jsonl", "test_locked": "1"}
    conn.executemany("INSERT INTO meta VALUES (?,?)", list(exp.meta.items()))
    conn.execute("BEGIN")
    for i in range(rows):
        ex = _example(i)
        deleted = i % 10 == 9
        conn.execute(
            "INSERT INTO examples (id, pos, messages, tags, split, notes, source_format, extra, original, line,"
            " user_preview, assistant_preview, issues, tokens, deleted, modified) VALUES"
            " (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                ex["id"],
                float(rows + 10 - i if i in (3, 4) else i),  # two rows moved to the end: order is pos
                orjson.dumps(ex["messages"]),
                orjson.dumps(ex["tags"]).decode(),
                ex["split"],
                ex["notes"],
                ex["source_format"],
                orjson.dumps(ex["extra"]) if ex["extra"] else None,
                orjson.dumps(ex["original"]) if ex["original"] is not None else None,
                ex["line"],
                ex["messages"][1]["content"][:160],
                ex["messages"][-1]["content"][:160],
                "",
                ex["tokens"],
                int(deleted),
                int(i % 3 == 0),
            ),
        )
        exp.examples[ex["id"]] = ex
        (exp.deleted if deleted else exp.order).append(ex["id"])
        if i % 3 == 0:
            before = {"split": None, "tags": []}
            after = {"split": ex["split"], "tags": ex["tags"]}
            conn.execute(
                "INSERT INTO history (example_id, op, before, after, at) VALUES (?,?,?,?,?)",
                (ex["id"], "Tag 'printer'", orjson.dumps(before), orjson.dumps(after), 1_700_000_000.0 + i),
            )
            exp.history.setdefault(ex["id"], []).append(("Tag 'printer'", before, after))
        if deleted:
            conn.execute(
                "INSERT INTO history (example_id, op, before, after, at) VALUES (?,?,?,?,?)",
                (ex["id"], "delete", None, None, 1_700_000_100.0 + i),
            )
            exp.history.setdefault(ex["id"], []).append(("delete", None, None))
    exp.order = [i for i in exp.order if i not in ("ex-0003", "ex-0004")] + ["ex-0004", "ex-0003"]
    conn.executemany(
        "INSERT INTO bad_lines (line, message, raw, fixed_id) VALUES (?,?,?,?)",
        [
            (7, "Line 7: not valid JSON", '{"messages": [', None),
            (9, "Line 9: no assistant turn", "{}", "ex-0001"),
        ],
    )
    exp.bad_lines = [
        (7, "Line 7: not valid JSON", '{"messages": [', None),
        (9, "Line 9: no assistant turn", "{}", "ex-0001"),
    ]
    conn.execute("COMMIT")

    from core.dedup.review import KEEP_ALL, NOT_DUPLICATE, DecisionStore
    from core.evaluation.review import ReviewStore

    decisions = DecisionStore(conn)
    decisions.record(["h1", "h2"], NOT_DUPLICATE)
    decisions.record(["h3", "h4", "h5"], KEEP_ALL)
    exp.decisions = {
        (a, b, d) for a, b, d in conn.execute("SELECT a_hash, b_hash, decision FROM dedup_decisions")
    }
    assert len(exp.decisions) == 4
    store = ReviewStore(conn)
    rows_eval = [
        {"id": f"ex-{i:04d}", "prompt": f"p{i}", "reference": "r", "base": "b", "tuned": "t"}
        for i in range(4)
    ]
    session = store.open_session(path.parent / "run", "eval-1", rows_eval)
    for position, (reviewer, vote, note) in enumerate(
        [("ana", "A", "clearer"), ("ana", "tie", ""), ("ben", "both_bad", "both wrong"), ("ben", "B", "")]
    ):
        session.vote(position, reviewer, vote, note)
        exp.votes.append((position, reviewer, vote, note))
    conn.close()
    return exp


def table_dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for comparing a file before and after (opened read-only)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()
