"""DatasetWorkspace: import, invertible edits, history, bin, splits and lock, search, snapshot, kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from core.data.example import Example
from core.data.formats import RecordError
from core.data.workspace import DatasetWorkspace, open_for_path, workspace_path_for
from core.errors import UserError
from core.paths import workspaces_dir


@pytest.fixture
def ws(sample_data: Path, tmp_path: Path):
    workspace = DatasetWorkspace.create_from_file(sample_data, tmp_path / "w.wsdb")
    yield workspace
    workspace.close()


def test_import_keeps_file_order_tags_and_format(ws: DatasetWorkspace, sample_data: Path) -> None:
    assert ws.count() == 120
    assert ws.source_format == "messages"
    first = orjson.loads(sample_data.read_bytes().splitlines()[0])
    ex = ws.get(ws.ids()[0])
    assert ex.messages_dicts() == first["messages"]
    assert ex.tags == first["tags"] and ex.line == 1
    assert [e.line for e in ws.examples()] == list(range(1, 121))
    assert ws.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_open_for_path_creates_then_reopens(sample_data: Path) -> None:
    first = open_for_path(sample_data)
    assert first.path.parent == workspaces_dir() and first.path.suffix == ".wsdb"
    ex = first.get(first.ids()[3])
    ex.notes = "kept"
    first.update_example(ex)
    first.close()
    again = open_for_path(sample_data)
    assert again.path == workspace_path_for(sample_data)
    assert again.get(ex.id).notes == "kept"
    again.close()
    direct = open_for_path(again.path)
    assert direct.count() == 120 and not direct.source_changed
    direct.close()


def test_source_change_is_noticed(tmp_path: Path, sample_data: Path) -> None:
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(sample_data.read_bytes())
    with open_for_path(copy) as ws:
        assert not ws.source_changed
    copy.write_bytes(sample_data.read_bytes()[:-200])
    with open_for_path(copy) as ws:
        assert ws.source_changed and ws.count() == 120  # the workspace keeps its copy


def test_edit_history_and_undo_through_inverse(ws: DatasetWorkspace) -> None:
    id_ = ws.ids()[0]
    before = ws.get(id_)
    edited = ws.get(id_)
    edited.messages[1].content = "A brand new question"
    inverse = ws.update_example(edited)
    assert ws.get(id_).messages[1].content == "A brand new question"
    assert ws.summary(id_).user == "A brand new question"
    history = ws.history(id_)
    assert history[-1]["after"]["messages"][1]["content"] == "A brand new question"
    assert history[-1]["before"]["messages"] == before.messages_dicts()
    redo = ws.apply(inverse)
    assert ws.get(id_).messages_dicts() == before.messages_dicts()
    ws.apply(redo)
    assert ws.get(id_).messages[1].content == "A brand new question"
    assert len(ws.history(id_)) == 3


def test_last_edit_and_what_was_edited_since(ws: DatasetWorkspace) -> None:
    assert ws.last_edit() == 0 and ws.edited_since(0) == set()
    first, second, third = ws.ids()[:3]
    edited = ws.get(first)
    edited.notes = "checked"
    ws.update_example(edited)
    mark = ws.last_edit()
    assert mark > 0 and ws.edited_since(0) == {first}
    ws.delete([second, third])
    assert ws.last_edit() > mark and ws.edited_since(mark) == {second, third}
    assert ws.edited_since(ws.last_edit()) == set()
    # only a changed conversation changes a token count: a note, split or delete does not
    assert ws.edited_since(0, messages_only=True) == set()
    mark = ws.last_edit()
    fourth = ws.get(ws.ids()[0])
    fourth.messages[-1].content += " More."
    ws.update_example(fourth)
    assert ws.edited_since(mark, messages_only=True) == {fourth.id}


def test_delete_goes_to_bin_and_restores(ws: DatasetWorkspace) -> None:
    ids = ws.ids()[:5]
    inverse = ws.delete(ids)
    assert ws.count() == 115 and ws.deleted_ids() == ids
    with pytest.raises(KeyError):
        ws.get(ids[0])
    assert ws.get(ids[0], include_deleted=True).id == ids[0]
    ws.apply(inverse)
    assert ws.count() == 120 and ws.ids()[:5] == ids
    ws.delete(ids[:1])
    ws.restore(ids[:1])
    assert ws.deleted_ids() == []


def test_duplicate_add_and_tags_are_undoable(ws: DatasetWorkspace) -> None:
    a, b = ws.ids()[:2]
    inverse = ws.duplicate([a])
    ids = ws.ids()
    assert len(ids) == 121 and ids[0] == a and ids[2] == b
    assert ws.get(ids[1]).messages_dicts() == ws.get(a).messages_dicts()
    ws.apply(inverse)
    assert ws.ids() == [i for i in ids if i != ids[1]]
    inverse = ws.add_tag([a, b], "urgent")
    assert "urgent" in ws.get(a).tags and ws.tags()["urgent"] == 2
    ws.apply(inverse)
    assert "urgent" not in ws.tags()
    inverse = ws.add_example(after=a)
    new_id = ws.ids()[1]
    assert ws.summary(new_id).issues  # an empty example is flagged
    ws.apply(inverse)
    assert new_id not in ws.ids()


def test_splits_seeded_stratified_and_test_locked(ws: DatasetWorkspace) -> None:
    inverse = ws.assign_splits((0.8, 0.1, 0.1), seed=7, stratify_by="tag")
    counts = ws.split_counts()
    assert counts["none"] == 0 and 94 <= counts["train"] <= 98 and 10 <= counts["test"] <= 14
    assert ws.test_locked
    balance = ws.balance()
    assert all(row["test"] >= 3 for row in balance.values())
    test_ids = set(ws.filter(split="test"))
    with pytest.raises(UserError, match="locked"):
        ws.set_split(list(test_ids)[:1], "train")
    with pytest.raises(UserError, match="locked"):
        ws.set_split(ws.filter(split="train")[:1], "test")
    edited = ws.get(list(test_ids)[0])
    edited.split = "train"
    with pytest.raises(UserError, match="locked"):
        ws.update_example(edited)
    ws.assign_splits(seed=99)  # reshuffles train/validation only
    assert set(ws.filter(split="test")) == test_ids
    ws.apply(inverse)  # undo of the first assignment still restores its own rows' splits


def test_same_seed_same_split(sample_data: Path, tmp_path: Path) -> None:
    splits = []
    for name in ("a", "b"):
        with DatasetWorkspace.create_from_file(sample_data, tmp_path / f"{name}.wsdb") as w:
            w.assign_splits(seed=3)
            splits.append([w.summary(i).split for i in w.ids()])
    assert splits[0] == splits[1]


def test_undo_of_assign_unlocks(ws: DatasetWorkspace) -> None:
    inverse = ws.assign_splits()
    ws.apply(inverse)
    assert not ws.test_locked and ws.split_counts()["none"] == 120


def test_filter_substring_regex_and_fields(ws: DatasetWorkspace) -> None:
    refund = ws.filter("REFUND")
    assert refund and all("refund" in ws.get(i).text().lower() for i in refund)
    assert ws.filter(r"crash\w*", regex=True) == ws.filter("crash")
    with pytest.raises(UserError, match="regular expression"):
        ws.filter("(", regex=True)
    assert len(ws.filter(tag="billing")) == ws.tags()["billing"]
    edited = ws.get(refund[0])
    edited.messages[1].content = "zebra crossing"
    ws.update_example(edited)
    assert ws.filter("zebra") == [refund[0]]
    assert refund[0] not in ws.filter("refund")
    ws.delete([refund[1]])
    assert refund[1] not in ws.filter("refund")
    ws.set_token_counts({ws.ids()[0]: 5000, ws.ids()[1]: 10})
    assert ws.filter(min_tokens=100) == [ws.ids()[0]]
    assert ws.filter(has_issues=True, max_length=2048) == [ws.ids()[0]]


def test_fix_bad_line_adds_it_in_place(tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path = tmp_path / "d.jsonl"
    path.write_text(
        "\n".join([json.dumps(good), '{"messages": [{"role": "user", "content": "broken"', json.dumps(good)]),
        encoding="utf-8",
    )
    with DatasetWorkspace.create_from_file(path, tmp_path / "d.wsdb") as w:
        bad = w.bad_lines()
        assert [(b.line, b.raw[:12]) for b in bad] == [(2, '{"messages":')]
        with pytest.raises(RecordError):
            w.fix_bad_line(bad[0].rowid, '{"messages": []}')
        assert "empty" in w.bad_lines()[0].message
        fixed = bad[0].raw + '}, {"role": "assistant", "content": "fixed"}]}'
        inverse = w.fix_bad_line(bad[0].rowid, fixed)
        assert [e.line for e in w.examples()] == [1, 2, 3]
        assert w.bad_lines() == []
        w.apply(inverse)
        assert len(w.bad_lines()) == 1 and w.count() == 2


def test_snapshot_is_content_hashed_jsonl(ws: DatasetWorkspace, tmp_path: Path) -> None:
    ws.assign_splits()
    out = tmp_path / "snap.jsonl"
    digest = ws.write_snapshot(out)
    assert digest == hashlib.sha256(out.read_bytes()).hexdigest()
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 120 and set(rows[0]) == {"id", "messages", "split", "tags"}
    assert rows[0]["split"] in ("train", "validation", "test")
    assert ws.write_snapshot(tmp_path / "again.jsonl") == digest


def test_export_keeps_unmodified_rows_exact(ws: DatasetWorkspace, sample_data: Path, tmp_path: Path) -> None:
    edited = ws.get(ws.ids()[0])
    edited.messages[-1].content = '{"category": "other", "priority": "low"}'
    ws.update_example(edited)
    out = tmp_path / "out.jsonl"
    result = ws.export(out, "messages")
    assert result.written == 120
    original = [orjson.loads(line) for line in sample_data.read_bytes().splitlines()]
    written = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert written[1:] == original[1:]
    assert written[0]["messages"][-1]["content"].startswith('{"category": "other"')
    csv = ws.export(tmp_path / "out.csv", "alpaca")
    assert csv.written == 120 and not csv.skipped


def test_not_a_workspace(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wsdb"
    junk.write_bytes(b"hello")
    with pytest.raises(UserError):
        DatasetWorkspace.open(junk)
    with pytest.raises(UserError):
        DatasetWorkspace.open(tmp_path / "missing.wsdb")


_EDITOR = textwrap.dedent(
    """
    import sys
    from core.data.workspace import DatasetWorkspace
    ws = DatasetWorkspace.open(sys.argv[1])
    ids = ws.ids()
    n = 0
    while True:
        ex = ws.get(ids[n % len(ids)])
        ex.notes = f"edit {n}"
        ws.update_example(ex)
        print(n, ex.id, flush=True)  # printed only after the edit committed
        n += 1
    """
)


def test_kill_9_loses_no_committed_edit(ws: DatasetWorkspace, tmp_path: Path) -> None:
    path = ws.path
    ws.close()
    proc = subprocess.Popen(
        [sys.executable, "-c", _EDITOR, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    committed: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        reported = 0
        while reported < 300 and time.monotonic() < deadline:  # kill it mid-way through its edits
            line = proc.stdout.readline()
            if not line:
                break
            n, id_ = line.split()
            committed[id_] = f"edit {n}"
            reported += 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for line in proc.stdout:  # edits reported between our last read and the kill
            n, id_ = line.split()
            committed[id_] = f"edit {n}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert reported >= 300 and len(committed) == 120
    with DatasetWorkspace.open(path) as again:
        for id_, note in committed.items():
            actual = again.get(id_).notes
            # The child may have committed one more edit of this row after its last report.
            assert actual == note or int(actual.split()[1]) > int(note.split()[1])
        assert again.count() == 120


def test_example_round_trip_through_store(ws: DatasetWorkspace) -> None:
    ex = Example.chat(("user", "hi"), ("assistant", "hello"), tags=["t"])
    ex.messages[1].extra = {"weight": 0}
    ws.add_example(ex)
    back = ws.get(ex.id)
    assert back.messages_dicts() == ex.messages_dicts() and back.tags == ["t"]
