"""Opening a big data file, and Cancel while it opens: how often the import asks `should_stop()`, the longest
time between two asks (what Cancel can wait at most), how soon a real cancel half-way through ends the import,
and whether anything is left behind. Prints figures; asserts nothing.

    nice .venv/bin/python benchmarks/bench_import_cancel.py [--rows 100000] [--kinds jsonl,csv,json]

The rows are benchmarks/bench_data.make_dataset's support chats (a system prompt, 60% short, 30% long, 10%
multi-turn); the CSV holds the same rows with `messages` as a JSON cell, the JSON file as one array. "tail" is
the time after the last ask (closing the file, moving it into place, opening it): it cannot be cancelled.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_data import make_dataset  # noqa: E402
from core.data.workspace import DatasetWorkspace  # noqa: E402
from core.errors import Cancelled  # noqa: E402


def make_files(folder: Path, rows: int, kinds: list[str]) -> dict[str, Path]:
    import orjson

    jsonl = folder / "chats.jsonl"
    make_dataset(jsonl, rows)
    files = {"jsonl": jsonl}
    records = [orjson.loads(line) for line in jsonl.read_bytes().splitlines()]
    if "csv" in kinds:
        files["csv"] = folder / "chats.csv"
        with files["csv"].open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["messages", "tags"])
            for rec in records:
                writer.writerow([orjson.dumps(rec["messages"]).decode(), orjson.dumps(rec["tags"]).decode()])
    if "json" in kinds:
        files["json"] = folder / "chats.json"
        files["json"].write_bytes(orjson.dumps(records))
    return {k: v for k, v in files.items() if k in kinds}


def run(data: Path, target: Path) -> None:
    asks: list[float] = []

    def should_stop() -> bool:
        asks.append(time.monotonic())
        return False

    start = time.monotonic()
    DatasetWorkspace.create_from_file(data, target, should_stop=should_stop).close()
    end = time.monotonic()
    points = [start, *asks]
    gaps = [b - a for a, b in zip(points, points[1:], strict=False)]
    total = end - start
    print(
        f"{data.suffix[1:]:5} {data.stat().st_size / 1e6:7.1f} MB  import {total:6.2f} s  asks {len(asks):4}  "
        f"gap median {statistics.median(gaps) * 1000:6.1f} ms  longest {max(gaps) * 1000:7.1f} ms  "
        f"tail {(end - asks[-1]) * 1000:6.1f} ms"
    )
    for extra in ("", "-wal", "-shm"):
        Path(str(target) + extra).unlink(missing_ok=True)

    # a real cancel half-way through (by time): how long until the import has ended, and what is left
    flip = time.monotonic() + total / 2

    def half_way() -> bool:
        return time.monotonic() >= flip

    try:
        DatasetWorkspace.create_from_file(data, target, should_stop=half_way).close()
        outcome = "finished (not cancelled)"
    except Cancelled:
        outcome = "cancelled"
    ended = time.monotonic()
    left = sorted(p.name for p in target.parent.iterdir())
    print(
        f"      cancel at {total / 2:5.2f} s: {outcome} {max(0.0, ended - flip) * 1000:6.1f} ms after the request; "
        f"files left: {left or 'none'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--kinds", default="jsonl,csv,json")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = make_files(folder, args.rows, kinds)
        out = folder / "ws"
        out.mkdir()
        print(f"{args.rows:,} rows")
        for kind in kinds:
            run(files[kind], out / f"{kind}.wsdb")


if __name__ == "__main__":
    main()
