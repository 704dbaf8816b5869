"""Data workspace speed and memory: import 100k examples (~150 MB JSONL, mixed lengths), reopen, substring
filter, token counting, resident memory. Prints figures; asserts nothing.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_data.py [--rows 100000] [--tokenizer DIR|MODEL_ID]

The reopen/filter/edit figures and their memory come from a fresh child process, as a user reopening the
workspace would see them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORDS = (
    "the a refund invoice login password sync crash export report page account billing team renewal error "
    "upload calendar files screen settings email address locked twice charged plan upgrade cancel update "
    "January month data backup restore server network timeout slow mobile desktop browser cache token "
    "model answer question customer support ticket priority category normal high urgent please thanks"
).split()


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_dataset(path: Path, rows: int, seed: int = 0, words: Any = None) -> None:
    """`words(rng, k)` returns k words (default: the 100-word support vocabulary above)."""
    import orjson

    rng = random.Random(seed)
    words = words or (lambda r, k: r.choices(WORDS, k=k))
    with open(path, "wb") as handle:
        for i in range(rows):
            # Mixed lengths: mostly short chats, some long documents, a few multi-turn conversations.
            kind = rng.random()
            if kind < 0.6:
                n_user, n_asst, turns = rng.randint(10, 60), rng.randint(20, 120), 1
            elif kind < 0.9:
                n_user, n_asst, turns = rng.randint(90, 280), rng.randint(40, 140), 1
            else:
                n_user, n_asst, turns = rng.randint(40, 150), rng.randint(40, 150), rng.randint(2, 4)
            messages = [{"role": "system", "content": "You are a careful support assistant."}]
            for _ in range(turns):
                messages.append({"role": "user", "content": " ".join(words(rng, n_user)) + f" #{i}"})
                messages.append({"role": "assistant", "content": " ".join(words(rng, n_asst))})
            record = {"messages": messages, "tags": [rng.choice(["billing", "technical", "account"])]}
            handle.write(orjson.dumps(record) + b"\n")


def natural_words(tokenizer: Any) -> Any:
    """A sampler of text closer to real prose than WORDS: ~27k distinct words (the tokenizer's alphabetic
    vocabulary) drawn with Zipf weights (1/rank), some capitalised, 6% followed by a comma, 4% by a full
    stop, 1% replaced by a number."""
    vocab = sorted(
        {
            w.strip().lower()
            for w in (tokenizer.convert_tokens_to_string([t]) for t in tokenizer.get_vocab())
            if w.strip().isalpha() and len(w.strip()) > 1
        }
    )
    random.Random(7).shuffle(vocab)
    cum = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocab))))

    def sample(rng: random.Random, k: int) -> list[str]:
        out = []
        for j, w in enumerate(rng.choices(vocab, cum_weights=cum, k=k)):
            if j == 0 or rng.random() < 0.05:
                w = w.capitalize()
            r = rng.random()
            out.append(
                w + "," if r < 0.06 else w + "." if r < 0.1 else str(rng.randint(1, 9999)) if r < 0.11 else w
            )
        return out

    return sample


def child(workspace: str, tokenizer: str) -> None:
    """Reopen, filter, edit: figures as JSON on stdout."""
    from core.data.workspace import DatasetWorkspace, read_search_texts

    out: dict[str, float] = {"rss_start_mb": rss_mb()}
    t, c = time.perf_counter(), time.process_time()
    ws = DatasetWorkspace.open(workspace)
    n = ws.count()  # loads the row summaries the table shows
    out["reopen_s"] = time.perf_counter() - t
    out["reopen_cpu_s"] = time.process_time() - c
    out["rows"] = n
    t = time.perf_counter()
    ws.install_search_index(read_search_texts(ws.path))
    out["search_index_s"] = time.perf_counter() - t
    times = []
    cpu = []
    hits = 0
    for query in ("refund", "#99999", "zzz-not-there", "password sync", "#4242 "):
        t, c = time.perf_counter(), time.process_time()
        hits = len(ws.filter(query))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    out["substring_filter_cpu_ms_median"] = statistics.median(cpu) * 1000
    out["substring_filter_ms_median"] = statistics.median(times) * 1000
    out["substring_filter_ms_max"] = max(times) * 1000
    out["last_hits"] = hits
    t = time.perf_counter()
    ws.filter(r"pass\w+ sync", regex=True)
    out["regex_filter_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    ws.filter(split="train", tag="billing", has_issues=False)
    out["field_filter_ms"] = (time.perf_counter() - t) * 1000
    ids = ws.ids()
    t = time.perf_counter()
    for id_ in ids[:50]:
        ex = ws.get(id_)
        ex.messages[-1].content += " (edited)"
        ws.update_example(ex)
    out["edit_ms_each"] = (time.perf_counter() - t) / 50 * 1000
    t = time.perf_counter()
    ws.assign_splits(seed=1)
    out["assign_splits_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ws.write_snapshot(Path(workspace).with_suffix(".snapshot.jsonl"))
    out["snapshot_s"] = time.perf_counter() - t
    out["rss_editing_mb"] = rss_mb()
    out["peak_rss_mb"] = peak_mb()
    ws.close()
    print(json.dumps(out))


def gui_child(workspace: str) -> None:
    """The Data page over the workspace (offscreen): open, edit, undo, search latencies on the UI thread."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from desktop.context import AppContext
    from desktop.pages.data import DataPage

    app = QApplication.instance() or QApplication([])
    page = DataPage(AppContext())
    page.resize(1300, 800)
    page.show()
    out: dict[str, float] = {}
    t = time.perf_counter()
    page.open_path(workspace)
    while page.workspace is None:
        app.processEvents()
        time.sleep(0.002)
    out["open_s"] = time.perf_counter() - t
    while page._jobs:  # the text index builds in the background
        app.processEvents()
        time.sleep(0.002)
    out["open_and_index_s"] = time.perf_counter() - t
    page.select_row(10)
    page.editor.notes.setText("bench")
    t = time.perf_counter()
    page.editor.save()
    out["save_edit_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    page.undo_stack.undo()
    out["undo_ms"] = (time.perf_counter() - t) * 1000
    page.search.setText("password sync")
    t = time.perf_counter()
    page.apply_filters()
    out["search_ms"] = (time.perf_counter() - t) * 1000
    out["search_rows"] = page.model.total()
    page.search.setText("")
    page.apply_filters()
    t = time.perf_counter()
    page.table.scrollToBottom()
    app.processEvents()
    out["scroll_to_bottom_ms"] = (time.perf_counter() - t) * 1000
    out["rss_mb"] = rss_mb()
    # Count tokens from the page (tokenizer load + counting in the background): wall time, and the longest
    # the UI thread went without running a 5 ms timer meanwhile.
    from PySide6.QtCore import QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    t = time.perf_counter()
    page.count_tokens()
    ws = page.workspace
    assert ws is not None
    first = ws.ids()[0]
    while (page._jobs or ws.summary(first).tokens is None) and time.perf_counter() - t < 300:
        app.processEvents()
        time.sleep(0.002)
    out["count_tokens_s"] = time.perf_counter() - t
    timer.stop()
    out["count_tokens_max_ui_gap_ms"] = max(b - a for a, b in itertools.pairwise([t, *ticks])) * 1000
    page.shutdown()
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tokenizer", default="smollm2-135m-instruct")
    parser.add_argument("--keep", help="folder to keep the generated files in")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--gui-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.gui_child:
        gui_child(args.gui_child)
        return
    os.environ.setdefault("WHETSTONE_HOME", tempfile.mkdtemp(prefix="bench-data-home-"))
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench-data-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"bench-{args.rows}.jsonl"
    if not data.exists():
        t = time.perf_counter()
        make_dataset(data, args.rows)
        print(f"generated {data} in {time.perf_counter() - t:.1f}s")
    size_mb = data.stat().st_size / 1e6
    print(f"dataset: {args.rows:,} examples, {size_mb:.0f} MB JSONL")

    from core.data.workspace import DatasetWorkspace

    workspace = folder / "bench.wsdb"
    load = os.getloadavg()[0]
    t, c = time.perf_counter(), time.process_time()
    ws = DatasetWorkspace.create_from_file(data, workspace)
    import_s = time.perf_counter() - t
    import_cpu = time.process_time() - c
    n = ws.count()
    ws.close()
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} when the import started")
    print(
        f"import into workspace:      {import_s:6.2f} s wall, {import_cpu:.2f} s CPU "
        f"({n:,} rows, {workspace.stat().st_size / 1e6:.0f} MB file)"
    )
    print(f"peak RSS during import:     {peak_mb():6.0f} MB")

    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(workspace), args.tokenizer],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ},
    )
    if proc.returncode != 0:
        print(proc.stderr)
        raise SystemExit(1)
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"reopen (open + row summaries): {figures['reopen_s']:6.3f} s wall, {figures['reopen_cpu_s']:.3f} s CPU"
    )
    print(f"text index (background):    {figures['search_index_s']:6.2f} s")
    print(
        f"substring filter:           {figures['substring_filter_ms_median']:6.1f} ms median, "
        f"{figures['substring_filter_ms_max']:.1f} ms max over 5 queries "
        f"(CPU {figures['substring_filter_cpu_ms_median']:.1f} ms median)"
    )
    print(f"regex filter:               {figures['regex_filter_ms']:6.1f} ms")
    print(f"split+tag+issues filter:    {figures['field_filter_ms']:6.1f} ms")
    print(f"edit (committed each):      {figures['edit_ms_each']:6.2f} ms")
    print(f"assign splits (100k):       {figures['assign_splits_s']:6.2f} s")
    print(f"training snapshot:          {figures['snapshot_s']:6.2f} s")
    print(
        f"RSS while editing:          {figures['rss_editing_mb']:6.0f} MB (peak {figures['peak_rss_mb']:.0f} MB)"
    )

    proc = subprocess.run(
        [sys.executable, __file__, "--gui-child", str(workspace)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    if proc.returncode == 0:
        gui = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"Data page (offscreen): open {gui['open_s']:.2f} s (+ text index {gui['open_and_index_s']:.2f} s), "
            f"save an edit {gui['save_edit_ms']:.0f} ms, undo {gui['undo_ms']:.0f} ms, "
            f"search {gui['search_ms']:.0f} ms ({gui['search_rows']:,} rows), "
            f"scroll to row 100,000 {gui['scroll_to_bottom_ms']:.0f} ms, RSS {gui['rss_mb']:.0f} MB; "
            f"Count tokens (tokenizer load + all rows) {gui['count_tokens_s']:.1f} s, longest UI-thread "
            f"stall meanwhile {gui['count_tokens_max_ui_gap_ms']:.0f} ms"
        )
    else:
        print("Data page figures unavailable:", proc.stderr.strip().splitlines()[-1:] or proc.returncode)

    from core.data.tokens import TokenCounter, count_workspace

    counter = TokenCounter.for_model(args.tokenizer)
    for processes, label in ((1, "one process"), (None, f"default: helper process on {os.cpu_count()} CPUs")):
        fresh = TokenCounter(counter.tokenizer)  # no words or chunks cached from an earlier pass
        with DatasetWorkspace.open(workspace) as reader:
            t, c = time.perf_counter(), time.process_time()
            counts = count_workspace(reader, fresh, store=False, processes=processes)
            dt = time.perf_counter() - t
            dc = time.process_time() - c
        print(
            f"token counting (bench set, {label}): {len(counts) / dt:8,.0f} examples/s "
            f"({sum(counts.values()) / dt:,.0f} tokens/s, mean {sum(counts.values()) / len(counts):.0f} "
            f"tokens/example; {dc:.1f} s CPU in this process over {dt:.1f} s wall)"
        )
    sample = [json.loads(line)["messages"] for line in (REPO / "resources" / "sample_dataset.jsonl").open()]
    chats = [
        [
            m if m["role"] != "user" else {**m, "content": f"{m['content']} #{i}"}
            for m in sample[i % len(sample)]
        ]
        for i in range(args.rows)
    ]
    fresh = TokenCounter(counter.tokenizer)
    t, c = time.perf_counter(), time.process_time()
    short = fresh.count(chats)
    dt = time.perf_counter() - t
    dc = time.process_time() - c
    print(
        f"token counting (support chats, every user turn distinct): {len(short) / dt:8,.0f} examples/s "
        f"(mean {sum(short) / len(short):.0f} tokens/example; {dc:.1f} s CPU over {dt:.1f} s wall)"
    )
    natural = folder / f"natural-{args.rows}.jsonl"
    if not natural.exists():
        make_dataset(natural, args.rows, seed=1, words=natural_words(counter.tokenizer))
    natural_ws = folder / "natural.wsdb"
    if not natural_ws.exists():
        DatasetWorkspace.create_from_file(natural, natural_ws).close()
    for processes, label in ((1, "one process"), (None, "default")):
        fresh = TokenCounter(counter.tokenizer)
        with DatasetWorkspace.open(natural_ws) as reader:
            t = time.perf_counter()
            counts = count_workspace(reader, fresh, store=False, processes=processes)
            dt = time.perf_counter() - t
        print(
            f"token counting (natural-like text, 27k-word Zipf vocabulary, {natural.stat().st_size / 1e6:.0f} MB, {label}): "
            f"{len(counts) / dt:8,.0f} examples/s ({sum(counts.values()) / dt:,.0f} tokens/s, "
            f"mean {sum(counts.values()) / len(counts):.0f} tokens/example)"
        )
    print(f"peak RSS (parent):          {peak_mb():6.0f} MB")


if __name__ == "__main__":
    main()
