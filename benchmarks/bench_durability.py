"""Edit latency of the workspace at 100k rows with synchronous=FULL (what the app uses: an edit the UI shows
is on the disk, power cut included) against NORMAL (safe against a killed process only). Prints figures;
asserts nothing.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_durability.py [--rows 100000] [--edits 200] [--dir DIR]

Each edit is one `update_example` (a turn's text changed: its row, contents and a history entry in one
committed transaction), then one `set_split` of a single row (the narrow SetFields path). Also times opening a
schema-1 workspace of as many rows (the backup copy and the upgrade). `--dir` picks the
file system to measure on (the figures depend on its fsync cost: put it on the disk users keep workspaces on).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_data import make_dataset  # noqa: E402
from core.data.workspace import DatasetWorkspace  # noqa: E402


def measure(path: Path, mode: str, edits: int) -> dict[str, float]:
    ws = DatasetWorkspace.open(path)
    ws.conn.execute(f"PRAGMA synchronous={mode}")
    assert ws.conn.execute("PRAGMA synchronous").fetchone()[0] == {"NORMAL": 1, "FULL": 2}[mode]
    ids = ws.ids()
    edit_ms, split_ms = [], []
    for n in range(edits):
        ex = ws.get(ids[(n * 7919) % len(ids)])
        ex.messages[-1].content += f" ({mode} {n})"
        t0 = time.perf_counter()
        ws.update_example(ex)
        edit_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        ws.set_split([ids[(n * 104729) % len(ids)]], ("train", "validation")[n % 2])
        split_ms.append((time.perf_counter() - t0) * 1000)
    ws.close()
    q = statistics.quantiles
    return {
        "edit_median": statistics.median(edit_ms),
        "edit_p95": q(edit_ms, n=20)[-1],
        "split_median": statistics.median(split_ms),
        "split_p95": q(split_ms, n=20)[-1],
    }


def measure_upgrade(folder: Path, rows: int) -> None:
    """Open a schema-1 workspace of `rows` examples: backup copy + upgrade in one transaction."""
    from tests.core.workspace_fixtures import build_v1

    path = folder / "old.wsdb"
    build_v1(path, rows)
    size = path.stat().st_size
    t0 = time.perf_counter()
    ws = DatasetWorkspace.open(path)
    seconds = time.perf_counter() - t0
    assert ws.upgraded_from == 1 and ws.backup_path is not None
    print(
        f"upgrade v1 -> v2 of {rows:,} rows ({size / 2**20:.0f} MB): {seconds:.2f} s including the backup copy;"
        f" {ws.count():,} live rows after"
    )
    ws.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        data = Path(tmp) / "data.jsonl"
        make_dataset(data, args.rows)
        path = Path(tmp) / "bench.wsdb"
        DatasetWorkspace.create_from_file(data, path).close()
        print(f"{args.rows:,} rows, {args.edits} edits each, on {Path(tmp).resolve()}")
        results = {}
        for mode in ("NORMAL", "FULL", "NORMAL", "FULL"):  # interleaved: the page cache warms for both
            results[mode] = measure(path, mode, args.edits)
        measure_upgrade(Path(tmp), args.rows)
        for mode, r in results.items():
            print(
                f"synchronous={mode:6s}  edit: median {r['edit_median']:.2f} ms, p95 {r['edit_p95']:.2f} ms;"
                f"  one-row split: median {r['split_median']:.2f} ms, p95 {r['split_p95']:.2f} ms"
            )


if __name__ == "__main__":
    main()
