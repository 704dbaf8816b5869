"""Importing a data file stops on `should_stop()` part-way through and leaves nothing behind."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from core.data.workspace import (
    DatasetWorkspace,
    ReplaceExamples,
    open_for_path,
    replace_workspace,
    staging_path_for,
    workspace_path_for,
)
from core.errors import Cancelled

ROWS = 3_000  # several read chunks (1,000 records) and import chunks (500 rows)


def _support_chats(path: Path, rows: int = ROWS) -> Path:
    """Multi-turn support conversations with a system prompt, one a line."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            messages = [
                {"role": "system", "content": "You are the help desk of Acme Routers. Answer briefly."},
                {"role": "user", "content": f"Ticket {i}: my router drops Wi-Fi every {i % 17 + 2} minutes."},
                {"role": "assistant", "content": "Which firmware version does the status page show?"},
                {"role": "user", "content": f"It says 2.{i % 9}.{i % 5}."},
                {"role": "assistant", "content": f"Update to 2.{i % 9 + 1}.0, then restart it (ticket {i})."},
            ]
            out.write(json.dumps({"messages": messages}) + "\n")
    return path


class StopAfter:
    """A should_stop that turns true on its `n`-th call and counts its calls."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_import_stops_part_way_and_leaves_no_file(tmp_path: Path) -> None:
    data = _support_chats(tmp_path / "support.jsonl")
    target = tmp_path / "ws" / "support.wsdb"
    never = StopAfter(10**9)
    DatasetWorkspace.create_from_file(data, tmp_path / "full.wsdb", should_stop=never).close()
    assert never.calls >= 6  # asked again and again while reading and writing, not once per phase

    stop = StopAfter(2)  # true after the first chunk
    with pytest.raises(Cancelled):
        DatasetWorkspace.create_from_file(data, target, should_stop=stop)
    assert stop.calls == 2  # stopped at the first true answer, long before the end of the file
    assert _files(target.parent) == []  # no workspace, no half-written temporary file, no -wal/-shm


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_files_read_whole_stop_while_reading(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CSV and JSON arrays are parsed before any row is written: Cancel must reach into that phase too."""
    if kind == "csv":
        data = tmp_path / "tickets.csv"
        with data.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["system", "prompt", "completion"])
            for i in range(ROWS):
                writer.writerow(["Answer briefly.", f"Ticket {i}:\nthe router\nreboots", f"Reset it ({i})."])
    else:
        data = tmp_path / "tickets.json"
        data.write_text(
            json.dumps(
                [{"instruction": f"Ticket {i}", "input": "", "output": f"Reset ({i})"} for i in range(ROWS)]
            ),
            encoding="utf-8",
        )
    created: list[Path] = []
    create = DatasetWorkspace.create
    monkeypatch.setattr(
        DatasetWorkspace, "create", classmethod(lambda cls, p: created.append(p) or create(p))
    )
    stop = StopAfter(4)  # after the whole-file steps (read, decode, line starts), among the rows
    with pytest.raises(Cancelled):
        open_for_path(data, should_stop=stop)
    assert stop.calls == 4
    assert created == []  # stopped while the file was parsed, before a workspace was begun
    assert not workspace_path_for(data).exists()
    assert _files(workspace_path_for(data).parent) == []


def test_reimport_cancelled_at_the_last_moment_keeps_the_workspace(tmp_path: Path) -> None:
    data = _support_chats(tmp_path / "support.jsonl", rows=1_200)
    target = tmp_path / "support.wsdb"
    ws = DatasetWorkspace.create_from_file(data, target)
    first = ws.get(ws.ids()[0])
    first.tags = ["checked"]
    ws.apply(ReplaceExamples(examples={first.id: first}))
    ws.delete(ws.ids()[1:4])
    ws.close()
    before = target.read_bytes()

    staging = staging_path_for(target)
    never = StopAfter(10**9)
    DatasetWorkspace.create_from_file(data, tmp_path / "count.wsdb", should_stop=never).close()
    last = StopAfter(never.calls)  # true only at the very last check, when the new file is complete
    with pytest.raises(Cancelled):
        DatasetWorkspace.create_from_file(data, staging, fmt="messages", should_stop=last)
    assert last.calls == never.calls
    assert not staging.exists() and not list(tmp_path.glob(".*importing*"))
    assert target.read_bytes() == before
    with DatasetWorkspace.open(target) as again:
        assert again.count() == 1_197
        assert again.get(again.ids()[0]).tags == ["checked"]


def test_replace_workspace_moves_the_built_one_into_place(tmp_path: Path) -> None:
    data = _support_chats(tmp_path / "support.jsonl", rows=600)
    target = tmp_path / "support.wsdb"
    old = DatasetWorkspace.create_from_file(data, target)
    old.delete(old.ids()[:100])
    old.close()
    built = DatasetWorkspace.create_from_file(data, staging_path_for(target))
    assert built.count() == 600
    opened = replace_workspace(built, target)
    try:
        assert opened.path == target and opened.count() == 600
        assert opened.search_ready  # the index built while importing came along
        assert not staging_path_for(target).exists()
    finally:
        opened.close()
