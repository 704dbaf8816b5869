"""Blind review sessions: random, unrecorded order; votes persisted; win rate, binomial p, agreement."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from pathlib import Path

import pytest
from scipy.stats import binomtest

from core.errors import UserError
from core.evaluation.review import BlindItem, ReviewStore, cohen_kappa


def _rows(n: int = 20) -> list[dict]:
    return [
        {
            "id": f"ex{i}",
            "prompt": f"question {i}",
            "reference": f"ref {i}",
            "base": f"base answer {i}",
            "tuned": f"tuned answer {i}",
        }
        for i in range(n)
    ]


def _tuned_is(item: BlindItem) -> str:
    return "A" if item.answer_a.startswith("tuned") else "B"


def test_order_is_random_per_item_and_hidden_from_items(tmp_path: Path) -> None:
    store = ReviewStore.for_run(tmp_path)
    session = store.open_session(tmp_path, "k1", _rows(40))
    items = session.items()
    sides = [_tuned_is(it) for it in items]
    assert 5 < sides.count("A") < 35  # both sides used, not a fixed layout
    assert [it.example_id for it in items] != [f"ex{i}" for i in range(40)]  # item order shuffled too
    # What the UI gets carries no side information.
    fields = {f.name for f in dataclasses.fields(BlindItem)}
    assert fields == {"position", "example_id", "prompt", "reference", "answer_a", "answer_b"}
    # Two sessions draw different layouts (OS-seeded), a seeded RNG reproduces one.
    other = store.open_session(tmp_path, "k2", _rows(40))
    assert [_tuned_is(it) for it in other.items()] != sides
    s1 = store.open_session(tmp_path, "s1", _rows(40), rng=random.Random(7))
    s2 = store.open_session(tmp_path, "s2", _rows(40), rng=random.Random(7))
    assert [_tuned_is(i) for i in s1.items()] == [_tuned_is(i) for i in s2.items()]
    # Re-opening returns the same session, the layout does not change between visits.
    again = store.open_session(tmp_path, "k1", _rows(40))
    assert again.id == session.id and [_tuned_is(i) for i in again.items()] == sides
    store.close()


def test_votes_persist_and_results_reveal_tuned_win_rate(tmp_path: Path) -> None:
    store = ReviewStore.for_run(tmp_path)
    session = store.open_session(tmp_path, "k", _rows(12))
    items = session.items()
    for i, item in enumerate(items):
        tuned = _tuned_is(item)
        base = "B" if tuned == "A" else "A"
        vote = tuned if i < 9 else base if i < 11 else "tie"
        session.vote(item.position, "alice", vote, note="too long" if i == 10 else "")
    session.vote(items[0].position, "alice", _tuned_is(items[0]))  # re-vote replaces, no duplicate
    store.close()

    reopened = ReviewStore.for_run(tmp_path)
    assert (tmp_path / "eval" / "reviews.sqlite").exists()
    s = reopened.find_session(tmp_path, "k")
    assert s is not None
    assert len(s.votes("alice")) == 12
    results = s.results()
    assert (results.overall.tuned, results.overall.base, results.overall.tie) == (9, 2, 1)
    assert results.overall.win_rate == pytest.approx(9 / 11)
    assert results.overall.p_value == pytest.approx(binomtest(9, 11, 0.5).pvalue)
    assert results.notes == [
        {"reviewer": "alice", "example_id": items[10].example_id, "outcome": "base", "note": "too long"}
    ]
    reopened.close()


def test_several_reviewers_and_their_agreement(tmp_path: Path) -> None:
    store = ReviewStore.for_run(tmp_path)
    session = store.open_session(tmp_path, "k", _rows(10))
    for i, item in enumerate(session.items()):
        t = _tuned_is(item)
        b = "B" if t == "A" else "A"
        session.vote(item.position, "alice", t)
        session.vote(item.position, "bob", t if i < 8 else b)
    results = session.results()
    assert set(results.reviewers) == {"alice", "bob"}
    (pair,) = results.agreement
    assert pair["reviewers"] == ["alice", "bob"] and pair["items"] == 10
    assert pair["percent_agreement"] == pytest.approx(0.8)
    # alice all "tuned" -> expected agreement 0.8, observed 0.8 -> kappa 0
    assert pair["kappa"] == pytest.approx(0.0)
    store.close()


def test_cohen_kappa_known_values() -> None:
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == 1.0
    # classic 2x2: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> kappa 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa([], []) is None


def test_vote_needs_reviewer_name_and_known_vote(tmp_path: Path) -> None:
    store = ReviewStore.for_run(tmp_path)
    session = store.open_session(tmp_path, "k", _rows(2))
    with pytest.raises(UserError, match="name"):
        session.vote(0, "  ", "A")
    with pytest.raises(UserError):
        session.vote(0, "alice", "C")
    with pytest.raises(UserError):
        store.open_session(tmp_path, "empty", [])
    store.close()


def test_workspace_connection_gets_review_tables(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "ws.sqlite", isolation_level=None)

    class Workspace:
        pass

    ws = Workspace()
    ws.conn = conn  # type: ignore[attr-defined]
    store = ReviewStore.for_run(tmp_path / "run", ws)
    session = store.open_session(tmp_path / "run", "k", _rows(3))
    session.vote(session.items()[0].position, "alice", "tie", "same")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"review_sessions", "review_items", "review_votes"} <= tables
    assert conn.execute("SELECT reviewer, vote, note FROM review_votes").fetchall() == [
        ("alice", "tie", "same")
    ]
    assert not (tmp_path / "run" / "eval" / "reviews.sqlite").exists()
    conn.close()
