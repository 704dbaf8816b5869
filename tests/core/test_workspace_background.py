"""BackgroundChange: a workspace change made in a worker thread through a second connection."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.data.workspace import DatasetWorkspace, Operation
from core.errors import UserError


@pytest.fixture
def ws(sample_data: Path, tmp_path: Path):
    workspace = DatasetWorkspace.create_from_file(sample_data, tmp_path / "w.wsdb")
    yield workspace
    workspace.close()


def _in_thread(job) -> dict:
    """Run job.run() in a worker thread, as the desktop does; return its result or error."""
    out: dict = {}

    def work() -> None:
        try:
            out["inverse"] = job.run()
        except Exception as exc:  # reported to the test
            out["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    return out


def test_change_in_a_thread_while_the_workspace_reads_and_refuses_writes(ws: DatasetWorkspace) -> None:
    ids = ws.ids()
    summaries_before = ws._summaries
    entered, release = threading.Event(), threading.Event()

    def change(handle: DatasetWorkspace) -> Operation:
        assert handle is not ws and handle.conn is not ws.conn
        entered.set()
        assert release.wait(30)
        return handle.assign_splits(seed=5)

    job = ws.background_change("Assign splits", change)
    assert ws.busy == "Assign splits"
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(inverse=job.run()))
    thread.start()
    try:
        assert entered.wait(30)
        # Reads go on from this thread, through its own connection.
        assert ws.count() == 120 and ws.get(ids[0]).split is None
        assert ws.summary(ids[0]).split is None
        with pytest.raises(UserError, match="busy"):
            ws.set_split(ids[:1], "train")
        with pytest.raises(UserError, match="busy"):
            ws.set_token_counts({ids[0]: 3})
        with pytest.raises(UserError, match="busy"):
            ws.background_change("again", lambda h: h.delete(ids[:1]))
    finally:
        release.set()
        thread.join(60)
    job.finish()
    assert ws.busy is None
    assert ws._summaries is not summaries_before  # adopted, not reloaded
    counts = ws.split_counts()
    assert counts["none"] == 0 and ws.test_locked
    assert job.aggregates is not None and job.aggregates["splits"] == counts
    with DatasetWorkspace.open(ws.path) as reader:
        assert [reader.summary(i).split for i in ids] == [ws.summary(i).split for i in ids]
    ws.apply(out["inverse"])  # the inverse works on the workspace as usual
    assert ws.split_counts()["none"] == 120 and not ws.test_locked


def test_added_and_removed_rows_reach_the_workspace_and_its_search(ws: DatasetWorkspace) -> None:
    assert ws.filter("refund")  # builds the text index
    victims = ws.filter("refund")[:3]
    copied = ws.ids()[0]
    job = ws.background_change("Bulk", lambda h: h.duplicate([copied]))
    out = _in_thread(job)
    job.finish()
    assert ws.count() == 121
    copy = ws.ids()[1]
    assert ws.get(copy).messages_dicts() == ws.get(copied).messages_dicts()
    needle = ws.get(copied).messages[1].content[:30].lower()
    assert copy in ws.filter(needle)  # the copy's text was handed to the index
    ws.apply(out["inverse"])
    assert ws.count() == 120
    job = ws.background_change("Delete", lambda h: h.delete(victims))
    out = _in_thread(job)
    job.finish()
    assert ws.count() == 117 and not set(victims) & set(ws.filter("refund"))
    job = ws.background_change("Undo delete", lambda h: h.apply(out["inverse"]))
    _in_thread(job)
    job.finish()
    assert set(victims) <= set(ws.filter("refund"))


def test_a_failed_change_leaves_the_workspace_as_it_was(ws: DatasetWorkspace) -> None:
    ws.assign_splits(seed=1)
    before = {i: ws.summary(i).split for i in ws.ids()}
    test_ids = ws.filter(split="test")
    job = ws.background_change("Move", lambda h: h.set_split(test_ids, "train"))
    out = _in_thread(job)
    job.finish()
    assert isinstance(out.get("error"), UserError) and "locked" in str(out["error"])
    assert ws.busy is None and job.aggregates is None
    assert {i: ws.summary(i).split for i in ws.ids()} == before
    ws.set_split(test_ids[:0], "train")  # writable again


def test_finish_without_run_only_ends_the_refusal(ws: DatasetWorkspace) -> None:
    job = ws.background_change("Nothing", lambda h: h.delete([]))
    job.finish()
    assert ws.busy is None and ws.count() == 120
