"""Data page, Count tokens on a first use (fresh process, tokenizer not loaded): how soon Cancel takes effect
while the tokenizer loads and while rows are counted (a helper process counting too), whether the helper is
gone after the cancel, and the whole count's time. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_count_cancel.py [--rows 30000] [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_workspace(folder: Path, rows: int) -> Path:
    from core.data.workspace import DatasetWorkspace

    sample = [
        json.loads(line) for line in (REPO / "resources" / "sample_dataset.jsonl").read_text().splitlines()
    ]
    lines = []
    for i in range(rows):
        row = json.loads(json.dumps(sample[i % len(sample)]))
        row["messages"][1]["content"] += f" (ticket {i}, customer {i * 7919 % 100_003})"
        lines.append(json.dumps(row))
    data = folder / "tickets.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    DatasetWorkspace.create_from_file(data, folder / "tickets.wsdb").close()
    return folder / "tickets.wsdb"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import psutil
    from PySide6.QtWidgets import QApplication

    from desktop.context import AppContext
    from desktop.pages.data import DataPage

    app = QApplication.instance() or QApplication([])
    me = psutil.Process()

    def pump_until(condition, limit: float = 600) -> float:
        start = time.perf_counter()
        while not condition() and time.perf_counter() - start < limit:
            app.processEvents()
            time.sleep(0.002)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        workspace = make_workspace(Path(tmp), args.rows)
        page = DataPage(AppContext())
        page.resize(1300, 800)
        page.show()
        page.open_path(str(workspace))
        pump_until(lambda: page.workspace is not None and not page._jobs)
        page.model_combo.insertItem(0, args.model, args.model)
        page.model_combo.setCurrentIndex(0)
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.rows:,} rows")

        # 1. Cancel one second into the tokenizer load.
        page.count_tokens()
        pump_until(lambda: False, 1.0)
        loading = page.job_label.text()
        page.cancel_count()
        cancel_load = pump_until(lambda: page._count_job is None)
        print(f"cancel while '{loading}': job ended after {cancel_load * 1000:.0f} ms")

        # 2. Count again (takes over the load), cancel halfway through the rows.
        page.count_tokens()
        first = pump_until(lambda: page.job_bar.format().startswith("Counting tokens"))
        pump_until(lambda: page.job_bar.value() >= 500 or page._count_job is None)
        shown = page.job_bar.format()
        helpers = len(me.children())
        page.cancel_count()
        cancel_count = pump_until(lambda: page._count_job is None)
        pump_until(lambda: not me.children(), 5)
        ws = page.workspace
        assert ws is not None
        stored = sum(1 for i in ws.ids() if ws.summary(i).tokens is not None)
        print(
            f"count again: counting began {first:.1f} s after the click; cancel at '{shown}' "
            f"({helpers} helper process(es) running): job ended after {cancel_count * 1000:.0f} ms, "
            f"{len(me.children())} child process(es) left, {stored:,} counts stored"
        )

        # 3. A whole count with the tokenizer loaded.
        page.count_tokens()
        total = pump_until(lambda: page._count_job is None)
        counted = sum(1 for i in ws.ids() if ws.summary(i).tokens is not None)
        print(f"whole count (tokenizer loaded): {total:.1f} s, {counted:,} rows counted")
        page.shutdown()


if __name__ == "__main__":
    main()
