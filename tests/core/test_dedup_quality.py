"""Precision and recall at the default threshold on our own labelled pairs (tests/data/dedup_labelled.jsonl):
near-duplicates (paraphrase-level rewording, typos, reordered clauses, added boilerplate) and hard
negatives (same topic, different content), with the embedded all-minilm-l6-v2 through our pipeline."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.dedup.embed import Embedder
from core.dedup.search import DEFAULT_LEXICAL, DEFAULT_THRESHOLD, NearDuplicateFinder

LABELLED = Path(__file__).resolve().parent.parent / "data" / "dedup_labelled.jsonl"


@pytest.mark.slow
def test_precision_and_recall_on_labelled_pairs() -> None:
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]
    kinds = Counter(r["kind"] for r in rows)
    assert kinds["hard_negative"] >= 20 and sum(r["duplicate"] for r in rows) >= 28
    texts: list[str] = []
    for r in rows:
        texts += [r["a"], r["b"]]
    finder = NearDuplicateFinder(Embedder("all-minilm-l6-v2"))
    result = finder.run(texts, DEFAULT_THRESHOLD)
    precision, recall = _score(rows, result, "default")
    # Achieved with all-minilm-l6-v2: precision 1.00, recall 0.82; typos split words into rare word pieces
    # and cost MiniLM the most. Assert what we achieve, so a regression fails.
    assert precision >= 0.95
    assert recall >= 0.80
    # with typo variants on (cosine >= 0.80 and >= 85% shared character 3-grams): 1.00 / 0.96
    typo_result = finder.run(texts, DEFAULT_THRESHOLD, lexical=DEFAULT_LEXICAL)
    precision, recall = _score(rows, typo_result, "with --typos")
    assert precision >= 0.95
    assert recall >= 0.95
    assert np.isfinite(result.score).all()


def _score(rows: list[dict], result, label: str) -> tuple[float, float]:
    kinds = Counter(r["kind"] for r in rows)
    found = {(p.a, p.b) for p in result.pairs()}
    tp = fp = fn = 0
    missed: Counter[str] = Counter()
    for k, r in enumerate(rows):
        hit = (2 * k, 2 * k + 1) in found
        if r["duplicate"] and hit:
            tp += 1
        elif r["duplicate"]:
            fn += 1
            missed[r["kind"]] += 1
        elif hit:
            fp += 1
    precision = tp / max(1, tp + fp)
    recall = tp / max(1, tp + fn)
    per_kind = {kind: round(1 - missed[kind] / n, 2) for kind, n in kinds.items() if kind != "hard_negative"}
    print(
        f"\ndedup quality at threshold {DEFAULT_THRESHOLD}, {label} ({len(rows)} labelled pairs): "
        f"precision {precision:.3f} recall {recall:.3f} (tp {tp}, fp {fp}, fn {fn}); recall by kind {per_kind}"
    )
    # pairs across different labelled rows must not link unrelated topics either
    cross = [(a, b) for a, b in found if a // 2 != b // 2 and not _same_base(rows, a, b)]
    assert not cross, cross[:3]
    return precision, recall


def _same_base(rows: list[dict], a: int, b: int) -> bool:
    """Rows built from the same base text (several variants share it)."""
    return rows[a // 2]["a"] == rows[b // 2]["a"]
