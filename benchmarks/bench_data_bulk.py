"""Bulk changes on the Data page at 100k rows: how long the UI thread is blocked (the longest gap between
ticks of a 5 ms QTimer while the change runs) and how long the change takes until it has landed. Prints
figures; asserts nothing.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_data_bulk.py [--rows 100000] [--keep DIR]

Also times the pieces of `DatasetWorkspace.assign_splits` (in a child process, on a fresh copy).
BENCH_GAPS=1 also prints each step's four longest gaps and when they began (ms after the call).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def fresh_copy(workspace: Path, name: str) -> Path:
    target = workspace.with_name(name)
    shutil.copyfile(workspace, target)
    for extra in ("-wal", "-shm"):
        Path(str(target) + extra).unlink(missing_ok=True)
    return target


def pieces(workspace: str) -> None:
    """The parts of ws.assign_splits, each timed alone (JSON on stdout)."""
    from typing import cast

    from core.data.example import Example
    from core.data.splits import assign_splits
    from core.data.workspace import Batch, DatasetWorkspace, SetFields, SetTestLock, _SplitRow

    out: dict[str, float] = {}
    path = fresh_copy(Path(workspace), "pieces.wsdb")
    ws = DatasetWorkspace.open(path)
    t = time.perf_counter()
    ws.ids()
    out["load_row_summaries_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    rows = cast(list[Example], [_SplitRow(s.id, s.tags, s.split) for s in map(ws.summary, ws.ids())])
    out["split_rows_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    mapping = assign_splits(rows, (0.8, 0.1, 0.1), 1, None, keep_locked_test=False)
    out["seeded_assignment_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    values = {e.id: {"split": mapping[e.id]} for e in rows if mapping.get(e.id) != e.split}
    out["change_set_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    inverse = ws.apply(Batch("Assign splits", [SetFields("Split", values), SetTestLock("", True)]))
    out["apply_transaction_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    ws.apply(inverse)
    out["apply_inverse_ms"] = (time.perf_counter() - t) * 1000
    ws.close()
    path = fresh_copy(Path(workspace), "pieces.wsdb")
    ws = DatasetWorkspace.open(path)
    ws.ids()
    t = time.perf_counter()
    ws.assign_splits(seed=1)
    out["assign_splits_total_ms"] = (time.perf_counter() - t) * 1000
    ws.close()
    print(json.dumps(out))


def gui(workspace: str) -> None:
    """The Data page over a fresh copy of the workspace (offscreen): bulk changes, undo, redo."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QItemSelection, QItemSelectionModel, QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from desktop.context import AppContext
    from desktop.pages.data import DataPage

    def refuse(_parent: object, _title: str, text: str, *args: object, **kwargs: object) -> None:
        raise SystemExit(f"message box: {text}")

    QMessageBox.warning = refuse  # type: ignore[method-assign,assignment]

    app = QApplication.instance() or QApplication([])
    page = DataPage(AppContext())
    page.resize(1300, 800)
    page.show()
    page.open_path(str(fresh_copy(Path(workspace), "gui.wsdb")))
    while page.workspace is None or page._jobs:
        app.processEvents()
        time.sleep(0.002)
    ws = page.workspace
    page.tabs.setCurrentWidget(page.splits)  # the balance table is redrawn after each change

    def idle() -> bool:  # the change has landed (also before the background path existed)
        return not getattr(page, "bulk_running", lambda: False)() and not any(
            r.is_running() for r in page._jobs
        )

    def settle(seconds: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    def measure(name: str, action: object) -> dict[str, float]:
        ticks: list[float] = []
        tick = QTimer()
        tick.setInterval(5)
        tick.timeout.connect(lambda: ticks.append(time.perf_counter()))
        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(5)
        poll.timeout.connect(lambda: loop.quit() if idle() else None)
        settle(0.5)  # repaints still due from the selection or the previous step are not this step's
        tick.start()
        poll.start()
        start = time.perf_counter()
        ticks.append(start)
        action()  # type: ignore[operator]
        returned = time.perf_counter()
        if not idle():
            loop.exec()
        end = time.perf_counter()
        poll.stop()
        settle(0.5)  # the repaint after the change has landed is part of it
        ticks.append(time.perf_counter())
        tick.stop()
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        if os.environ.get("BENCH_GAPS"):
            top = sorted(((g, a - start) for g, a in zip(gaps, ticks, strict=False)), reverse=True)[:4]
            print("   gaps (ms, at ms):", [(round(g * 1000), round(a * 1000)) for g, a in top])
        figures = {
            "call_ms": (returned - start) * 1000,
            "longest_stall_ms": max(gaps) * 1000,
            "done_s": end - start,
        }
        print(
            f"{name:34s} UI blocked at most {figures['longest_stall_ms']:7.0f} ms "
            f"(the call itself {figures['call_ms']:6.0f} ms); landed after {figures['done_s']:5.2f} s",
            flush=True,
        )
        return figures

    n = ws.count()
    half = n // 2

    def select_first_half() -> None:
        page.model.row_of(page.model.id_at(half - 1))  # fetch far enough to select them
        last = page.model.index(half - 1, page.model.columnCount() - 1)
        selection = QItemSelection(page.model.index(0, 0), last)
        page.table.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        assert len(page.selected_ids()) == half

    select_first_half()
    measure(f"move {half:,} rows to validation", lambda: page.move_selected("validation"))
    assert ws.split_counts()["validation"] == half
    measure("  undo", page.undo_stack.undo)
    assert ws.split_counts()["validation"] == 0
    measure(f"assign splits ({n:,} rows)", lambda: page.assign_splits((0.8, 0.1, 0.1), 1, False))
    assert ws.split_counts()["none"] == 0
    measure("  undo", page.undo_stack.undo)
    assert ws.split_counts()["none"] == n
    measure("  redo", page.undo_stack.redo)
    assert ws.split_counts()["none"] == 0
    select_first_half()
    measure(f"delete {half:,} rows", page.delete_selected)
    assert ws.count() == n - half
    measure("  undo", page.undo_stack.undo)
    assert ws.count() == n
    page.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", help="folder to keep the generated files in")
    parser.add_argument("--pieces", help=argparse.SUPPRESS)
    parser.add_argument("--gui", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pieces:
        pieces(args.pieces)
        return
    if args.gui:
        gui(args.gui)
        return
    os.environ.setdefault("WHETSTONE_HOME", tempfile.mkdtemp(prefix="bench-bulk-home-"))
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench-bulk-"))
    folder.mkdir(parents=True, exist_ok=True)
    workspace = folder / f"bulk-{args.rows}.wsdb"
    if not workspace.exists():
        from benchmarks.bench_data import make_dataset
        from core.data.workspace import DatasetWorkspace

        data = folder / f"bench-{args.rows}.jsonl"
        if not data.exists():
            make_dataset(data, args.rows)
        DatasetWorkspace.create_from_file(data, workspace).close()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.rows:,} rows")
    proc = subprocess.run(
        [sys.executable, __file__, "--pieces", str(workspace)], capture_output=True, text=True, cwd=REPO
    )
    if proc.returncode != 0:
        print(proc.stderr)
        raise SystemExit(1)
    for key, value in json.loads(proc.stdout.strip().splitlines()[-1]).items():
        print(f"ws.assign_splits piece {key:28s} {value:8.0f}")
    proc = subprocess.run(
        [sys.executable, __file__, "--gui", str(workspace)],
        text=True,
        cwd=REPO,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    if proc.returncode != 0:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
