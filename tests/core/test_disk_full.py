"""A full disk during import and edits: one line naming the folder and the space needed, nothing already saved
lost, no partial output. On a real size-limited file system (a small tmpfs) where this machine lets the tests
mount one, else with SQLite's writes failing as they do on a full disk."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.bench_data import make_dataset
from core.data.workspace import DatasetWorkspace
from core.diskspace import DiskFullError
from tests.core.workspace_fixtures import table_dump


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture(params=["tmpfs", "patched"])
def small_disk(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A folder on a 2 MB file system. 'patched' (and 'tmpfs' where mounting is not allowed): a folder whose
    workspace writes fail with SQLite's disk-full error once 2 MB of rows were inserted."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = request.param == "tmpfs" and _mount_tmpfs(folder, "2m")
    if not mounted:
        written = [0]
        original = DatasetWorkspace._insert_rows

        def insert(self: DatasetWorkspace, rows: list) -> None:
            if str(self.path).startswith(str(folder)):
                written[0] += sum(len(r[3]) for r in rows)
                if written[0] > 2 << 20:
                    raise sqlite3.OperationalError("database or disk is full")
            original(self, rows)

        monkeypatch.setattr(DatasetWorkspace, "_insert_rows", insert)
    try:
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("precheck", [True, False], ids=["refused-before-writing", "full-while-writing"])
def test_import_on_a_full_disk(
    small_disk: Path, tmp_path: Path, sample_data: Path, precheck: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.data.workspace

    if not precheck:  # let the import start, so the disk fills in the middle of writing rows
        monkeypatch.setattr(core.data.workspace, "check_space", lambda *a, **k: None)
    # a workspace already saved there, with an edit
    with DatasetWorkspace.create_from_file(sample_data, small_disk / "tickets.wsdb") as ws:
        ex = ws.get(ws.ids()[0])
        ex.notes = "checked"
        ws.update_example(ex)
    before = table_dump(small_disk / "tickets.wsdb")
    big = tmp_path / "big.jsonl"
    make_dataset(big, 3000)  # ~4.7 MB: does not fit
    source_bytes = big.read_bytes()
    for target in (small_disk / "big.wsdb", small_disk / "tickets.wsdb"):  # new, and replacing the saved one
        with pytest.raises(DiskFullError) as err:
            DatasetWorkspace.create_from_file(big, target)
        message = str(err.value)
        assert "\n" not in message and message.startswith("The disk is full: importing big.jsonl needs about")
        assert "MB in " + str(small_disk) in message
    # nothing partial left, nothing lost
    left = sorted(p.name for p in small_disk.iterdir() if not p.name.endswith(("-wal", "-shm")))
    assert left == ["tickets.wsdb"]
    assert table_dump(small_disk / "tickets.wsdb") == before
    assert big.read_bytes() == source_bytes
    with DatasetWorkspace.open(small_disk / "tickets.wsdb") as ws:
        assert ws.get(ws.ids()[0]).notes == "checked" and ws.count() == 120


def test_edit_on_a_full_disk_is_refused_and_earlier_edits_stay(
    tmp_path: Path, sample_data: Path, monkeypatch
) -> None:
    ws = DatasetWorkspace.create_from_file(sample_data, tmp_path / "w.wsdb")
    first, second = ws.ids()[:2]
    ex = ws.get(first)
    ex.notes = "saved before the disk filled"
    ws.update_example(ex)

    def full(*args: object, **kw: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(DatasetWorkspace, "_record_history", full)
    ex2 = ws.get(second)
    ex2.notes = "this one does not fit"
    with pytest.raises(DiskFullError, match=r"^The disk is full: saving this change needs more space in "):
        ws.update_example(ex2)
    monkeypatch.undo()
    assert ws.get(second).notes == "" and ws.get(first).notes == "saved before the disk filled"
    ws.close()
    with DatasetWorkspace.open(tmp_path / "w.wsdb") as again:
        assert again.get(first).notes == "saved before the disk filled" and again.get(second).notes == ""
