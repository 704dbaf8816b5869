"""Counting a whole workspace's tokens, in two processes when it is big enough.

This process counts from the front while a helper process (`python -m core.data.count_helper JOB`) counts
from the back, through its own read-only connection; they stop where they meet. The helper gets the
counter's state (the fast tokenizer and the conversation shapes planned so far), not transformers or the
chat template, so it starts in a fraction of a second and counts only shapes it was given.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.gcpause import cyclic_gc_paused
from core.progress import ProgressFn, StopFn, check_stop, no_progress

if TYPE_CHECKING:
    from core.data.tokens import Messages, TokenCounter

PARALLEL_MIN_EXAMPLES = 20_000  # below this a second process costs more than it saves
_SLICE = 2048  # examples per slice: the two processes meet within one slice


def count_workspace(
    workspace: Any,
    counter: TokenCounter,
    progress: ProgressFn = no_progress,
    should_stop: StopFn | None = None,
    store: bool = True,
    chunk: int = 8192,
    processes: int | None = None,
) -> dict[str, int]:
    """Count every live example of a DatasetWorkspace (reading messages in chunks); store the counts.

    With two or more CPUs and at least PARALLEL_MIN_EXAMPLES examples, a helper process (`python -m
    core.data.count_helper`) counts from the end of the workspace backwards, through its own read-only
    connection, while this process counts from the front; they stop where they meet, so a helper slowed by
    a busy machine (or one that fails) costs little: this process simply counts more. Counting is pure
    Python, so a thread would not run in parallel. Examples the helper cannot count (a conversation shape it
    was not given) are counted here. `processes=1` keeps it to this process."""
    import orjson

    ids = list(workspace.ids())
    counts: dict[str, int] = {}
    if processes is None:
        processes = 2 if (os.cpu_count() or 1) >= 2 and len(ids) >= PARALLEL_MIN_EXAMPLES else 1
    total = max(1, len(ids))
    with cyclic_gc_paused():  # the parsed conversations are many small containers
        if processes < 2 or len(ids) < 2 * _SLICE:
            _count_chunks(workspace, counter, ids, counts, progress, should_stop, chunk, orjson.loads)
        else:
            # A first slice here teaches the counter the conversation shapes the helper will need.
            front = _SLICE
            _count_chunks(
                workspace, counter, ids[:front], counts, no_progress, should_stop, chunk, orjson.loads
            )
            state = counter.helper_state()
            helper = _CountHelper(state, Path(workspace.path), ids) if state is not None else None
            try:
                low = len(ids)  # the helper has counted ids[low:]
                while True:
                    if helper is not None:
                        low = helper.collect(counts)
                    if front >= low:
                        break
                    check_stop(should_stop)
                    end = min(front + _SLICE, low)
                    part = ids[front:end]
                    _count_chunks(
                        workspace, counter, part, counts, no_progress, should_stop, chunk, orjson.loads
                    )
                    front = end
                    done = front + len(ids) - low
                    progress(min(0.99, done / total), f"{done:,} of {len(ids):,}")
            finally:
                if helper is not None:
                    helper.stop()
            left = [i for i in ids if i not in counts]  # shapes the helper was not given
            _count_chunks(workspace, counter, left, counts, no_progress, should_stop, chunk, orjson.loads)
    progress(1.0, f"{len(ids):,} of {len(ids):,}")
    if store:
        workspace.set_token_counts(counts, counter.name)
    return counts


def _count_chunks(
    workspace: Any,
    counter: TokenCounter,
    ids: list[str],
    counts: dict[str, int],
    progress: ProgressFn,
    should_stop: StopFn | None,
    chunk: int,
    loads: Any,
) -> None:
    for start in range(0, len(ids), chunk):
        check_stop(should_stop)
        part = ids[start : start + chunk]
        rows = _read_messages(workspace.conn, part)
        convs = [loads(rows[i]) for i in part if i in rows]
        present = [i for i in part if i in rows]
        for id_, n in zip(present, counter.count(convs, should_stop=should_stop), strict=True):
            counts[id_] = n
        progress(min(1.0, (start + len(part)) / max(1, len(ids))), f"{start + len(part):,} of {len(ids):,}")


def _read_messages(conn: Any, ids: list[str]) -> dict[str, bytes]:
    marks = ",".join("?" * len(ids))
    return dict(
        conn.execute(
            "SELECT e.id, c.messages FROM examples e JOIN contents c ON c.rowid = e.rowid"
            f" WHERE e.id IN ({marks})",
            ids,
        ).fetchall()
    )


class _CountHelper:
    """A `python -m core.data.count_helper` process counting a workspace's examples from the last slice
    backwards; a reader thread collects each slice's counts as the helper prints them (one JSON line a slice)."""

    def __init__(self, state: dict[str, Any], workspace: Path, ids: list[str]) -> None:
        import orjson

        self.ids = ids
        self.low = len(ids)  # ids[low:] are counted by the helper
        self._lines: list[bytes] = []
        self._lock = threading.Lock()
        self._job = tempfile.NamedTemporaryFile(prefix="whetstone-count-", suffix=".json", delete=False)
        with self._job:
            job = {"state": state, "workspace": str(workspace), "ids": ids, "slice": _SLICE}
            self._job.write(orjson.dumps(job))
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", "core.data.count_helper", self._job.name],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        self._reader = threading.Thread(target=self._read, args=(self._proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._lock:
                self._lines.append(line)

    def collect(self, counts: dict[str, int]) -> int:
        """Add the slices counted so far to `counts` (not the examples the helper could not count); return
        the index from which on everything has been counted by the helper."""
        import orjson

        with self._lock:
            lines, self._lines = self._lines, []
        for line in lines:
            try:
                message = orjson.loads(line)
                start, values = int(message["start"]), message["counts"]
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # not ours (a stray print): ignore
            if start != self.low - len(values) or start < 0:
                continue  # out of order: never produced by _helper_main; ignore rather than trust it
            for id_, n in zip(self.ids[start : self.low], values, strict=True):
                if n is not None:
                    counts[id_] = n
            self.low = start
        return self.low

    def stop(self) -> None:
        """End the helper (it may be counting a slice this process has already done) and reap it."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        self._reader.join(5)
        Path(self._job.name).unlink(missing_ok=True)


def _helper_main(job_file: str) -> None:
    """Count the examples a parent process handed over, slice by slice from the end: one JSON line per slice,
    `{"start": index, "counts": [n or null, ...]}` (null where the conversation shape is not known here)."""
    import sqlite3

    import orjson

    from core.data.tokens import TokenCounter

    job = orjson.loads(Path(job_file).read_bytes())
    counter = TokenCounter.from_helper_state(job["state"])
    conn = sqlite3.connect(f"file:{job['workspace']}?mode=ro", uri=True)
    ids: list[str] = job["ids"]
    size = int(job.get("slice", _SLICE))
    out = sys.stdout.buffer
    with cyclic_gc_paused():
        end = len(ids)
        while end > 0:
            start = max(0, end - size)
            part = ids[start:end]
            rows = _read_messages(conn, part)
            convs: list[Messages] = [orjson.loads(rows[i]) if i in rows else [] for i in part]
            ok = [k for k, m in enumerate(convs) if m and counter.has_plan(m)]
            counted = counter.count([convs[k] for k in ok])
            values: list[int | None] = [None] * len(part)
            for k, n in zip(ok, counted, strict=True):
                values[k] = n
            out.write(orjson.dumps({"start": start, "counts": values}) + b"\n")
            out.flush()
            end = start
    conn.close()


if __name__ == "__main__":
    _helper_main(sys.argv[1])
