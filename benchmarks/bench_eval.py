"""Evaluate timings (printed, never asserted): scoring and bootstrap cost per example, so a large test split
stays interactive, and review-store vote latency (each vote is one SQLite transaction).

    .venv/bin/python benchmarks/bench_eval.py [N]
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.evaluation import metrics as M  # noqa: E402
from core.evaluation.review import ReviewStore  # noqa: E402

WORDS = "the ticket billing technical account refund card plan invoice sync export crash login page".split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def main(n: int = 1000) -> None:
    rng = random.Random(0)
    refs = [
        json.dumps({"category": rng.choice(WORDS), "priority": rng.choice(["high", "normal"])})
        for _ in range(n)
    ]
    preds = [r if rng.random() < 0.5 else sentence(rng, 12) for r in refs]
    t = time.perf_counter()
    rows = [
        {
            "base_scores": M.score_example(sentence(rng, 12), r, True),
            "tuned_scores": M.score_example(p, r, True),
        }
        for p, r in zip(preds, refs, strict=True)
    ]
    scoring = time.perf_counter() - t
    t = time.perf_counter()
    M.aggregate(rows)
    boot = time.perf_counter() - t
    print(
        f"scoring: {n} examples x 2 sides in {scoring:.2f} s ({1000 * scoring / (2 * n):.2f} ms per answer)"
    )
    print(f"aggregate + paired bootstrap (2000 resamples, 7 metrics): {boot:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        store = ReviewStore.for_run(tmp)
        session = store.open_session(
            tmp,
            "k",
            [{"id": str(i), "prompt": "p", "reference": "r", "base": "b", "tuned": "t"} for i in range(n)],
        )
        items = session.items()
        t = time.perf_counter()
        for item in items[:200]:
            session.vote(item.position, "alice", rng.choice(["A", "B", "tie", "both_bad"]))
        vote = (time.perf_counter() - t) / 200
        t = time.perf_counter()
        session.results()
        res = time.perf_counter() - t
        store.close()
    print(f"review: {1000 * vote:.2f} ms per stored vote; results over {n} items in {1000 * res:.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
