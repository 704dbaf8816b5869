"""Exact hashing, pair search, clustering, cache behaviour, decisions and leakage (fast: no real model)."""

from __future__ import annotations

import sqlite3
import unicodedata

import numpy as np
import pytest

from core.data.example import Example
from core.dedup.cache import EmbeddingCache
from core.dedup.exact import exact_groups, example_text, normalize_text, parse_roles, representatives
from core.dedup.review import (
    KEEP_ALL,
    NOT_DUPLICATE,
    DecisionStore,
    choose_keeper,
    leakage,
    removals,
    review_clusters,
)
from core.dedup.search import NearDuplicateFinder, Pair, connected_components, pair_search
from core.errors import Cancelled, UserError
from tests.core.dedup_helpers import FakeEmbedder


# --- exact ---------------------------------------------------------------------------------------------
def test_normalisation_whitespace_case_and_nfc() -> None:
    composed = unicodedata.normalize("NFC", "Café crème")
    decomposed = unicodedata.normalize("NFD", "Café crème")
    assert composed != decomposed
    assert normalize_text(composed) == normalize_text(decomposed) == "café crème"
    assert normalize_text("  Hello \t\n  WORLD ") == "hello world"
    texts = ["Hello world", "hello   WORLD", "Hello world!", composed, decomposed, "x", " hello world\n"]
    assert exact_groups(texts) == [[0, 1, 6], [3, 4]]
    reps, owner = representatives(texts)
    assert reps == [0, 2, 3, 5]
    assert owner == [0, 0, 1, 2, 2, 3, 0]


def test_example_text_uses_chosen_turns() -> None:
    ex = Example.chat(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"))
    assert example_text(ex) == "Hi\nHello"
    assert example_text(ex, parse_roles("system,user")) == "Be brief.\nHi"
    with pytest.raises(UserError, match="Unknown role"):
        parse_roles("user,bot")
    with pytest.raises(UserError):
        parse_roles(",")


# --- pair search and clusters ------------------------------------------------------------------------------
def _planted(n: int, dim: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    for k in range(0, n - 1, 7):  # near copies at various distances
        x[k + 1] = x[k] + rng.normal(0, 0.05 + 0.02 * (k % 5), dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(x: np.ndarray, t: float) -> set[tuple[int, int]]:
    s = x.astype(np.float64) @ x.T.astype(np.float64)
    a, b = np.nonzero(np.triu(s >= t, 1))
    return set(zip(a.tolist(), b.tolist(), strict=True))


@pytest.mark.parametrize("reduced", [False, True])
def test_pair_search_is_exact_in_blocks(reduced: bool) -> None:
    x = _planted(700)
    for t in (0.9, 0.95, 0.99):
        a, b, s = pair_search(x, t, reduced=reduced, block_rows=64, block_cols=200)
        assert set(zip(a.tolist(), b.tolist(), strict=True)) == _brute(x, t)
        assert (a < b).all() and (s >= t).all() and (s <= 1.0).all()
        expected = (x[a] * x[b]).sum(1)
        assert np.allclose(s, np.minimum(expected, 1.0), atol=1e-5)


def test_pair_search_reports_progress_and_cancels() -> None:
    x = _planted(300)
    seen: list[float] = []
    pair_search(x, 0.9, block_rows=50, progress=lambda f, m: seen.append(f))
    assert seen and seen[-1] == pytest.approx(1.0)
    messages: list[str] = []
    pair_search(x, 0.9, block_rows=50, progress=lambda f, m: messages.append(m))
    assert "Comparing meanings: 300 of 300 examples compared" in messages  # plain words, no "rows/s"
    with pytest.raises(Cancelled):
        pair_search(x, 0.9, block_rows=50, should_stop=lambda: True)


def test_connected_components() -> None:
    a = np.array([0, 1, 5, 7])
    b = np.array([1, 2, 6, 8])
    groups = sorted(connected_components(10, a, b))
    assert groups == [[0, 1, 2], [5, 6], [7, 8]]
    assert connected_components(3, np.zeros(0, int), np.zeros(0, int)) == []


# --- finder + cache ------------------------------------------------------------------------------------
TEXTS = [
    "how do I reset my password today please",
    "How do I  reset my password today please",  # exact after normalisation
    "how do I reset my password today now please",  # near
    "what is the refund policy for annual plans",
    "the app crashes when I upload a photo from the gallery",
    "totally unrelated sentence about cooking pasta at home",
]


def test_finder_exact_and_near_pairs_and_clusters() -> None:
    emb = FakeEmbedder()
    result = NearDuplicateFinder(emb).run(TEXTS, 0.9)
    doc = result.to_json()
    pairs = {(p["a"], p["b"]): p["score"] for p in doc["pairs"]}
    assert pairs[(0, 1)] == 1.0
    assert (0, 2) in pairs and (1, 2) in pairs and 0.9 <= pairs[(0, 2)] < 1.0
    assert doc["clusters"] == [[0, 1, 2]]
    # the exact duplicate is embedded once
    assert len(emb.embedded_texts()) == 5


def test_cache_rerun_embeds_only_new_or_changed_and_threshold_moves_without_embedding() -> None:
    conn = sqlite3.connect(":memory:")
    emb = FakeEmbedder()
    finder = NearDuplicateFinder(emb, EmbeddingCache(conn))
    first = finder.run(TEXTS, 0.9, floor=0.5)
    assert first.embedded == 5 and first.cached == 0
    emb.calls.clear()
    again = finder.run(TEXTS, 0.9)
    assert emb.calls == [] and again.cached == 5 and again.embedded == 0
    changed = list(TEXTS)
    changed[3] = "what is the refund policy for monthly plans"
    changed.append("a brand new example about invoices")
    third = finder.run(changed, 0.9)
    assert sorted(emb.embedded_texts()) == sorted([changed[3], changed[6]])
    assert third.embedded == 2 and third.cached == 4  # 6 distinct texts, 4 seen before
    # moving the threshold re-clusters from stored pairs, no embedding
    emb.calls.clear()
    loose = first.clusters(0.5)
    strict = first.clusters(0.999)
    assert emb.calls == []
    assert len(loose[0]) >= len(strict[0]) and strict == [[0, 1]]
    # another model id does not hit this model's rows
    other = FakeEmbedder()
    other.model_id = "another-model"
    NearDuplicateFinder(other, EmbeddingCache(conn)).run(TEXTS, 0.9)
    assert len(other.embedded_texts()) == 5


def test_cache_roundtrip_and_counts() -> None:
    cache = EmbeddingCache(sqlite3.connect(":memory:"))
    vec = np.eye(3, dtype=np.float32)
    cache.put("m", ["h1", "h2", "h3"], vec, "bf16", truncated=[1])
    got = cache.get("m", ["h1", "h2", "h9"], "bf16")
    assert set(got) == {"h1", "h2"} and got["h2"][1] is True and got["h1"][1] is False
    assert np.array_equal(got["h1"][0], vec[0])
    assert cache.get("m", ["h1"], "fp32") == {}
    assert cache.count("m") == 3 and cache.hits == 2 and cache.misses == 2


def test_fast_precision_pairs_near_threshold_are_settled_in_fp32() -> None:
    texts = [f"shared words alpha beta gamma delta {i % 3} item{i}" for i in range(40)]
    exact = NearDuplicateFinder(FakeEmbedder()).run(texts, 0.8)
    conn = sqlite3.connect(":memory:")
    fast = FakeEmbedder(precision="bf16", noise=0.002)
    result = NearDuplicateFinder(fast, EmbeddingCache(conn)).run(texts, 0.8)
    ref = {(p.a, p.b): p.score for p in exact.pairs()}
    got = {(p.a, p.b): p.score for p in result.pairs()}
    assert set(got) == set(ref)
    assert [c[0] for c in fast.calls] == ["bf16", "fp32"]  # one fast pass, then only near-threshold rows
    assert 0 < result.rescored < len(texts)
    fp32_rows = {t for p, ts in fast.calls if p == "fp32" for t in ts}
    for (a, b), score in got.items():
        if abs(score - 0.8) < 0.01:
            assert texts[a] in fp32_rows and texts[b] in fp32_rows
            assert score == pytest.approx(ref[(a, b)], abs=1e-5)


def test_bad_inputs_empty_one_all_identical_and_truncation() -> None:
    emb = FakeEmbedder()
    finder = NearDuplicateFinder(emb)
    empty = finder.run([], 0.95)
    assert empty.to_json() == {"pairs": [], "clusters": []} and empty.notes
    one = finder.run(["only one"], 0.95)
    assert one.to_json() == {"pairs": [], "clusters": []}
    same = finder.run(["Same text"] * 4, 0.95)
    assert emb.calls == []  # nothing to embed: all identical
    assert len(same.to_json()["pairs"]) == 6 and same.to_json()["clusters"] == [[0, 1, 2, 3]]
    assert all(p["score"] == 1.0 for p in same.to_json()["pairs"])
    long_text = " ".join(f"word{i}" for i in range(80))
    result = finder.run([long_text, long_text + " extra", "short one"], 0.9)
    assert result.truncated == [0, 1]
    with pytest.raises(UserError):
        finder.run(["a", "b"], 1.5)


def test_finder_cancel() -> None:
    with pytest.raises(Cancelled):
        NearDuplicateFinder(FakeEmbedder()).run(TEXTS, 0.9, should_stop=lambda: True)


# --- decisions, keepers, leakage -------------------------------------------------------------------------
def test_review_clusters_counts_scores_leaks_and_decisions() -> None:
    pairs = [
        Pair(0, 1, 0.99, exact_text=True),  # train ~ test: leakage
        Pair(1, 2, 0.95),  # test ~ train: leakage too
        Pair(4, 5, 0.93),  # train ~ validation: no leakage
        Pair(3, 6, 0.50, lexical=True),  # a typo variant below the threshold
    ]
    splits = ["train", "test", "train", "train", "train", "validation", None]
    hashes = [f"h{i}" for i in range(7)]
    store = DecisionStore(sqlite3.connect(":memory:"))
    store.record(["h4", "h5"], KEEP_ALL)

    review = review_clusters(7, pairs, splits, hashes, store)

    # largest first, then by best score
    assert [c.rows for c in review.clusters] == [[0, 1, 2], [4, 5], [3, 6]]
    big, kept, typo = review.clusters
    assert (big.best, big.exact, big.typos, big.decision) == (0.99, 1, 0, None)
    assert [(leak.a, leak.b, leak.splits) for leak in big.leaks] == [
        (0, 1, ("train", "test")),
        (1, 2, ("test", "train")),
    ]
    assert (kept.best, kept.exact, kept.typos, kept.leaks, kept.decision) == (0.93, 0, 0, [], KEEP_ALL)
    assert (typo.best, typo.exact, typo.typos, typo.decision) == (0.5, 0, 1, None)
    assert review.best == {0: 0.99, 1: 0.99, 2: 0.95, 4: 0.93, 5: 0.93, 3: 0.5, 6: 0.5}
    assert review.leaks == big.leaks
    # without a decision store nothing is decided; without pairs there is nothing to review
    assert [c.decision for c in review_clusters(7, pairs, splits, hashes).clusters] == [None, None, None]
    empty = review_clusters(7, [], splits, hashes, store)
    assert empty.clusters == [] and empty.best == {} and empty.leaks == []


def test_decisions_are_remembered_and_exclude_pairs() -> None:
    conn = sqlite3.connect(":memory:")
    result = NearDuplicateFinder(FakeEmbedder()).run(TEXTS, 0.9)
    store = DecisionStore(conn)
    h = result.hashes
    store.record([h[0], h[2]], NOT_DUPLICATE)
    store.record([h[0], h[1]], KEEP_ALL)
    assert DecisionStore(conn).pairs(NOT_DUPLICATE) == {tuple(sorted((h[0], h[2])))}
    assert store.decision_for([h[0], h[1]]) == KEEP_ALL
    assert store.decision_for([h[0], h[1], h[2]]) is None
    ignored = store.pairs(NOT_DUPLICATE)
    # 0~2 is ignored, but 1~2 still links the cluster
    assert result.clusters(0.9, ignored) == [[0, 1, 2]]
    store.record([h[1], h[2]], NOT_DUPLICATE)
    assert result.clusters(0.9, store.pairs(NOT_DUPLICATE)) == [[0, 1]]
    store.forget([h[1], h[2]])
    assert len(store.pairs(NOT_DUPLICATE)) == 1
    with pytest.raises(UserError):
        store.record([h[0], h[1]], "maybe")


def test_choose_keeper_and_removals() -> None:
    texts = ["short", "the longest text here", "medium text", "the longest text here"]
    assert choose_keeper([0, 1, 2, 3], texts, "longest") == 1
    assert choose_keeper([3, 2, 0], texts, "first") == 0
    assert removals([[0, 1], [2, 3]], texts, "longest") == [0, 2]
    with pytest.raises(UserError):
        choose_keeper([0], texts, "random")


def test_leakage_flags_train_test_pairs_even_when_kept() -> None:
    result = NearDuplicateFinder(FakeEmbedder()).run(TEXTS, 0.9)
    splits = ["train", "test", "validation", None, "train", "test"]
    leaks = leakage(result.pairs(), splits)
    assert {(leak.a, leak.b) for leak in leaks} == {(0, 1), (1, 2)}
    assert leaks[0].public()["splits"] in (["train", "test"], ["test", "validation"])


def _doc(result) -> tuple[dict, list]:
    doc = result.to_json()
    return {(p["a"], p["b"]): round(p["score"], 4) for p in doc["pairs"]}, doc["clusters"]


@pytest.mark.parametrize("reduced", [False, True])
def test_pair_search_for_query_rows_only(reduced: bool) -> None:
    x = _planted(500, seed=3)
    queries = np.array([1, 2, 8, 9, 15, 300, 499])
    a, b, _ = pair_search(x, 0.9, queries=queries, reduced=reduced, block_rows=3, block_cols=128)
    expected = {(i, j) for i, j in _brute(x, 0.9) if i in set(queries) or j in set(queries)}
    got = list(zip(a.tolist(), b.tolist(), strict=True))
    assert set(got) == expected and len(got) == len(expected)  # each pair once


def test_rerun_reuses_pairs_and_compares_only_new_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.dedup.search as search

    texts = [f"common words alpha beta gamma {i % 4} extra{i}" for i in range(30)]
    conn = sqlite3.connect(":memory:")
    finder = NearDuplicateFinder(FakeEmbedder(), EmbeddingCache(conn))
    first = finder.run(texts, 0.8)
    assert not first.pairs_reused
    calls: list[object] = []
    real = search.pair_search

    def spy(vectors, threshold, **kwargs):
        calls.append(kwargs.get("queries"))
        return real(vectors, threshold, **kwargs)

    monkeypatch.setattr(search, "pair_search", spy)
    again = finder.run(texts, 0.8)
    assert again.pairs_reused and len(calls[0]) == 0  # type: ignore[arg-type]
    assert _doc(again) == _doc(first)
    changed = texts + ["common words alpha beta gamma 1 extra5", "something else entirely"]
    changed[3] = "common words alpha beta gamma 2 extra3 edited"
    calls.clear()
    third = finder.run(changed, 0.8)
    fresh = NearDuplicateFinder(FakeEmbedder()).run(changed, 0.8)
    assert _doc(third) == _doc(fresh)
    # representatives: row 30 is an exact copy of row 5, so only rows 3 and 31 (representative 30) are new
    assert sorted(calls[0].tolist()) == [3, 30]  # type: ignore[union-attr]
    # a lower threshold than the stored pairs cover searches everything again
    calls.clear()
    finder.run(changed, 0.7)
    assert calls == [None]


def test_typo_variants_are_kept_only_with_lexical_option() -> None:
    from core.dedup.exact import char_jaccard

    words = "please help me reset the password of my account because the reset link in the email expired"
    texts = [
        words,
        words.replace("password", "pasword"),  # a typo: cosine drops, characters barely change
        words.replace("reset the password", "change the billing address").replace("reset link", "form"),
        "something else entirely about cooking pasta",
    ]
    assert char_jaccard(texts[0], texts[1]) > 0.9 > 0.7 > char_jaccard(texts[0], texts[2])
    finder = NearDuplicateFinder(FakeEmbedder())
    plain = finder.run(texts, 0.99)
    assert plain.to_json()["pairs"] == []
    typos = finder.run(texts, 0.99, lexical=0.85)
    pairs = typos.pairs()
    assert [(p.a, p.b, p.lexical) for p in pairs] == [(0, 1, True)]
    assert 0.8 <= pairs[0].score < 0.99 and typos.clusters() == [[0, 1]]
    assert typos.clusters(0.999) == [[0, 1]]  # flagged pairs stay at any threshold
