"""Workspace schema migrations: every past schema upgrades in place with everything intact, after a backup copy;
a kill -9 inside the upgrade leaves the original as it was; a newer workspace opens read-only."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.data import migrations
from core.data.workspace import SCHEMA_VERSION, DatasetWorkspace, open_for_path, workspace_path_for
from core.dedup.review import DecisionStore
from core.errors import UserError, WhetstoneError
from core.evaluation.review import ReviewStore
from core.testhooks import PAUSE_AT, PAUSE_FLAG
from tests.core.workspace_fixtures import Expected, build_v1, table_dump

ROOT = Path(__file__).resolve().parents[2]
# Every schema this version can upgrade from, with the builder of its fixture.
PAST = {1: build_v1}


def test_every_past_schema_has_a_fixture_and_a_migration() -> None:
    assert set(PAST) == set(range(1, SCHEMA_VERSION)) == set(migrations.MIGRATIONS)
    assert migrations.LATEST == SCHEMA_VERSION


def _schema_of(path: Path) -> str:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
    finally:
        conn.close()


def _assert_intact(ws: DatasetWorkspace, exp: Expected, tmp_path: Path) -> None:
    assert ws.ids() == exp.order
    assert ws.deleted_ids() == sorted(exp.deleted)
    for id_, want in exp.examples.items():
        got = ws.get(id_, include_deleted=True)
        assert got.messages_dicts() == want["messages"], id_
        assert (got.tags, got.split, got.notes) == (want["tags"], want["split"], want["notes"]), id_
        assert (got.extra, got.original, got.line) == (want["extra"], want["original"], want["line"]), id_
        if id_ not in exp.deleted:
            assert ws.summary(id_).tokens == want["tokens"], id_
        history = [(h["op"], h["before"], h["after"]) for h in ws.history(id_)]
        assert history == exp.history.get(id_, []), id_
    assert [(b.line, b.message, b.raw, b.fixed_id) for b in ws.bad_lines(include_fixed=True)] == exp.bad_lines
    for key, value in exp.meta.items():
        if key != "schema":
            assert ws.meta(key) == value
    assert ws.test_locked
    decided = {
        (a, b, d) for a, b, d in ws.conn.execute("SELECT a_hash, b_hash, decision FROM dedup_decisions")
    }
    assert decided == exp.decisions
    assert DecisionStore(ws.conn).decision_for(["h3", "h4", "h5"]) == "keep_all"
    session = ReviewStore(ws.conn).find_session(tmp_path / "run", "eval-1")
    assert session is not None
    votes = [(p, r, v.vote, v.note) for r in session.reviewers() for p, v in sorted(session.votes(r).items())]
    assert sorted(votes) == sorted(exp.votes)


def _view(exp: Expected, id_: str, notes: str | None = None) -> dict[str, object]:
    want = exp.examples[id_]
    return {
        "messages": want["messages"],
        "tags": want["tags"],
        "split": want["split"],
        "notes": want["notes"] if notes is None else notes,
        "extra": want["extra"],
    }


@pytest.mark.parametrize("version", sorted(PAST))
def test_past_schema_upgrades_in_place_with_everything_intact(version: int, tmp_path: Path) -> None:
    path = tmp_path / "tickets.wsdb"
    exp = PAST[version](path)
    before = table_dump(path)

    ws = DatasetWorkspace.open(path)
    try:
        assert ws.upgraded_from == version and ws.read_only is None
        assert ws.backup_path == tmp_path / f"tickets.wsdb.v{version}-backup"
        assert ws.meta("schema") == str(SCHEMA_VERSION)
        _assert_intact(ws, exp, tmp_path)
        assert ws.count() == len(exp.order) == 54
        # and it is a working workspace of today's schema: edits, undo, snapshot
        ex = ws.get("ex-0001")
        ex.notes = "checked after the upgrade"
        inverse = ws.update_example(ex)
        assert ws.get("ex-0001").notes == "checked after the upgrade"
        ws.apply(inverse)
        assert ws.get("ex-0001").notes == ""
        edited = _view(exp, "ex-0001", "checked after the upgrade")
        exp.history["ex-0001"] = [
            ("Edit example", _view(exp, "ex-0001"), edited),
            ("Edit example", edited, _view(exp, "ex-0001")),
        ]
        assert ws.snapshot_bytes().count(b"\n") == 54
    finally:
        ws.close()

    # The backup is the file as it was, untouched, and it stays.
    assert table_dump(ws.backup_path) == before
    assert _schema_of(ws.backup_path) == str(version)
    # Opening again neither upgrades nor backs up again.
    with DatasetWorkspace.open(path) as again:
        assert again.upgraded_from is None and again.backup_path is None
        _assert_intact(again, exp, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("tickets.wsdb.v*")) == [f"tickets.wsdb.v{version}-backup"]


def test_data_file_reopens_its_old_workspace_instead_of_importing_again(
    sample_data: Path, tmp_path: Path
) -> None:
    """open_for_path used to throw away a workspace it could not open and import the file again (losing every
    edit); an old one is upgraded now."""
    target = workspace_path_for(sample_data)
    target.parent.mkdir(parents=True, exist_ok=True)
    exp = build_v1(target)
    with open_for_path(sample_data) as ws:
        assert ws.upgraded_from == 1 and ws.ids() == exp.order


def test_damaged_workspace_is_kept_aside_when_imported_again(sample_data: Path) -> None:
    target = workspace_path_for(sample_data)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"not a database at all")
    with open_for_path(sample_data) as ws:
        assert ws.count() == 120
    assert target.with_name(target.name + ".damaged").read_bytes() == b"not a database at all"


_OPEN = "import sys; from core.data.workspace import DatasetWorkspace; DatasetWorkspace.open(sys.argv[1])"


def test_kill_9_inside_the_upgrade_leaves_the_original_intact(tmp_path: Path) -> None:
    path = tmp_path / "tickets.wsdb"
    exp = build_v1(path)
    before = table_dump(path)
    flag = tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-c", _OPEN, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), PAUSE_AT: "migration", PAUSE_FLAG: str(flag)},
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):  # the child creates the flag once every table is rewritten, before COMMIT
            if flag.exists() or proc.poll() is not None:
                break
            try:
                proc.wait(0.1)
            except subprocess.TimeoutExpired:
                pass
        assert flag.exists(), proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # The original: same schema, same rows, in every table (the half-done upgrade was rolled back).
    assert _schema_of(path) == "1"
    assert table_dump(path) == before
    # The backup was complete before the upgrade started.
    assert table_dump(tmp_path / "tickets.wsdb.v1-backup") == before
    # Opening it again upgrades it, with everything there.
    with DatasetWorkspace.open(path) as ws:
        assert ws.upgraded_from == 1
        _assert_intact(ws, exp, tmp_path)


def test_disk_full_during_the_backup_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tickets.wsdb"
    build_v1(path)
    before = table_dump(path)

    def full(self: sqlite3.Connection, target: sqlite3.Connection, **kw: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(migrations, "_copy", full)
    with pytest.raises(WhetstoneError) as err:
        DatasetWorkspace.open(path)
    message = str(err.value)
    assert "\n" not in message and "disk is full" in message and str(tmp_path) in message
    assert "MB" in message or "KB" in message
    assert table_dump(path) == before and _schema_of(path) == "1"
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm")))
    assert left == ["tickets.wsdb"]  # no partial backup left


def _write_future(path: Path, exp: Expected) -> None:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION + 1),))
    conn.execute("CREATE TABLE IF NOT EXISTS something_new (x)")
    conn.close()


def test_newer_workspace_opens_read_only_and_refuses_changes(tmp_path: Path) -> None:
    path = tmp_path / "future.wsdb"
    with DatasetWorkspace.create(path) as ws:
        ws.add_example()
        ws.add_example()
    _write_future(path, Expected())
    before = table_dump(path)
    with DatasetWorkspace.open(path) as ws:
        assert ws.read_only is not None
        assert "newer Whetstone" in ws.read_only and "read-only" in ws.read_only and "\n" not in ws.read_only
        assert ws.count() == 2  # readable
        first = ws.get(ws.ids()[0])
        for change in (
            lambda: ws.update_example(first),
            lambda: ws.delete(ws.ids()[:1]),
            lambda: ws.add_tag(ws.ids(), "x"),
            lambda: ws.set_meta("k", "v"),
            lambda: ws.set_token_counts({first.id: 3}),
        ):
            with pytest.raises(UserError, match="read-only"):
                change()
        # other areas writing into the same file get the same sentence
        with pytest.raises(UserError, match="newer Whetstone"):
            DecisionStore(ws.conn).record(["h1", "h2"], "not_duplicate")
        assert DecisionStore(ws.conn).pairs() == set()  # reading still works
        reviews = ReviewStore(ws.conn)
        assert reviews.find_session(tmp_path / "run", "eval-1") is None
        with pytest.raises(UserError, match="newer Whetstone"):
            reviews.open_session(tmp_path / "run", "eval-1", [{"id": "a", "base": "b", "tuned": "t"}])
    assert table_dump(path) == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        "future.wsdb"
    ]
