"""Blind A/B review of base vs tuned answers, for domain experts.

A session holds one run's evaluated examples. Each item shows the two answers as "A" and "B"; which side is
the tuned model is drawn per item from a random generator seeded from the OS (never shown, never stored
outside the database) and the item order is shuffled too. Reviewers vote A, B, tie or both bad, with an
optional note; every vote is committed at once. Tables (prefixed `review_`) live in the open workspace's
SQLite database when there is one, otherwise in `RUN/eval/reviews.sqlite`.

Results: win rate of tuned over base (ties and "both bad" excluded from the rate, counted separately), a
two-sided binomial test against 50 %, the notes, and per reviewer pair the percent agreement and Cohen's
kappa on the revealed outcomes (tuned / base / tie / both bad).
"""

from __future__ import annotations

import contextlib
import random
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from core.errors import UserError

VOTES = ("A", "B", "tie", "both_bad")
VOTE_LABELS = {"A": "A is better", "B": "B is better", "tie": "Tie", "both_bad": "Both bad"}
OUTCOMES = ("tuned", "base", "tie", "both_bad")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_dir TEXT NOT NULL,
    eval_key TEXT NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (run_dir, eval_key)
);
CREATE TABLE IF NOT EXISTS review_items (
    session_id INTEGER NOT NULL REFERENCES review_sessions(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    example_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    reference TEXT NOT NULL,
    answer_a TEXT NOT NULL,
    answer_b TEXT NOT NULL,
    tuned_side TEXT NOT NULL CHECK (tuned_side IN ('A', 'B')),
    PRIMARY KEY (session_id, position)
);
CREATE TABLE IF NOT EXISTS review_votes (
    session_id INTEGER NOT NULL REFERENCES review_sessions(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    reviewer TEXT NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('A', 'B', 'tie', 'both_bad')),
    note TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    PRIMARY KEY (session_id, position, reviewer)
);
"""


@dataclass(frozen=True)
class BlindItem:
    """What a reviewer sees: no model names, no side information."""

    position: int
    example_id: str
    prompt: str
    reference: str
    answer_a: str
    answer_b: str


@dataclass(frozen=True)
class Vote:
    vote: str
    note: str = ""


@dataclass
class SideCounts:
    tuned: int = 0
    base: int = 0
    tie: int = 0
    both_bad: int = 0

    @property
    def votes(self) -> int:
        return self.tuned + self.base + self.tie + self.both_bad

    @property
    def decisive(self) -> int:
        return self.tuned + self.base

    @property
    def win_rate(self) -> float | None:
        """Share of decisive votes (A or B) won by the tuned model."""
        return self.tuned / self.decisive if self.decisive else None

    @property
    def p_value(self) -> float | None:
        """Two-sided exact binomial test of tuned wins against 50 % (decisive votes only)."""
        if not self.decisive:
            return None
        from scipy.stats import binomtest

        return float(binomtest(self.tuned, self.decisive, 0.5, alternative="two-sided").pvalue)

    def to_dict(self) -> dict[str, Any]:
        return {
            "votes": self.votes,
            "tuned_wins": self.tuned,
            "base_wins": self.base,
            "ties": self.tie,
            "both_bad": self.both_bad,
            "win_rate": self.win_rate,
            "p_value": self.p_value,
        }


@dataclass
class ReviewResults:
    items: int
    overall: SideCounts
    reviewers: dict[str, SideCounts]
    agreement: list[dict[str, Any]]
    notes: list[dict[str, str]]
    complete: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "overall": self.overall.to_dict(),
            "reviewers": {name: c.to_dict() for name, c in self.reviewers.items()},
            "agreement": self.agreement,
            "notes": self.notes,
        }


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items (None with no items)."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    observed = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    labels = set(a) | set(b)
    expected = sum((list(a).count(k) / n) * (list(b).count(k) / n) for k in labels)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One transaction, also on an autocommit connection (the workspace opens its database that way)."""
    if conn.isolation_level is None and not conn.in_transaction:
        conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    else:
        with conn:
            yield


def outcome(vote: str, tuned_side: str) -> str:
    if vote in ("A", "B"):
        return "tuned" if vote == tuned_side else "base"
    return vote


class ReviewStore:
    """The review tables in a SQLite connection (the workspace's or the run's own file)."""

    def __init__(self, conn: sqlite3.Connection, owns_connection: bool = False) -> None:
        self.conn = conn
        self._owns = owns_connection
        self.conn.executescript(_SCHEMA)

    @classmethod
    def for_run(cls, run_dir: str | Path, workspace: object | None = None) -> ReviewStore:
        conn = getattr(workspace, "conn", None) if workspace is not None else None
        if isinstance(conn, sqlite3.Connection):
            return cls(conn)
        folder = Path(run_dir) / "eval"
        folder.mkdir(parents=True, exist_ok=True)
        own = sqlite3.connect(folder / "reviews.sqlite")
        own.execute("PRAGMA journal_mode=WAL")
        return cls(own, owns_connection=True)

    def close(self) -> None:
        if self._owns:
            self.conn.close()

    def find_session(self, run_dir: str | Path, eval_key: str) -> ReviewSession | None:
        row = self.conn.execute(
            "SELECT id FROM review_sessions WHERE run_dir = ? AND eval_key = ?",
            (str(Path(run_dir).resolve()), eval_key),
        ).fetchone()
        return ReviewSession(self, int(row[0])) if row else None

    def open_session(
        self,
        run_dir: str | Path,
        eval_key: str,
        rows: Sequence[dict[str, Any]],
        rng: random.Random | None = None,
    ) -> ReviewSession:
        """The run's session for these results, created (with a fresh random order) on first use.

        `rows` are evaluation rows with "id", "prompt", "reference", "base", "tuned"."""
        existing = self.find_session(run_dir, eval_key)
        if existing is not None:
            return existing
        if not rows:
            raise UserError("There are no evaluated examples to review yet; run the evaluation first.")
        rng = rng or random.Random(secrets.randbits(64))
        order = list(range(len(rows)))
        rng.shuffle(order)
        with _transaction(self.conn):
            cur = self.conn.execute(
                "INSERT INTO review_sessions (run_dir, eval_key, created) VALUES (?, ?, ?)",
                (str(Path(run_dir).resolve()), eval_key, time.strftime("%Y-%m-%dT%H:%M:%S")),
            )
            session_id = int(cur.lastrowid or 0)
            for position, index in enumerate(order):
                row = rows[index]
                tuned_side = rng.choice(("A", "B"))
                a, b = (row["tuned"], row["base"]) if tuned_side == "A" else (row["base"], row["tuned"])
                self.conn.execute(
                    "INSERT INTO review_items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        session_id,
                        position,
                        str(row["id"]),
                        str(row.get("prompt", "")),
                        str(row.get("reference", "")),
                        a,
                        b,
                        tuned_side,
                    ),
                )
        return ReviewSession(self, session_id)


class ReviewSession:
    def __init__(self, store: ReviewStore, session_id: int) -> None:
        self.store = store
        self.id = session_id

    @property
    def conn(self) -> sqlite3.Connection:
        return self.store.conn

    def items(self) -> list[BlindItem]:
        rows = self.conn.execute(
            "SELECT position, example_id, prompt, reference, answer_a, answer_b FROM review_items "
            "WHERE session_id = ? ORDER BY position",
            (self.id,),
        ).fetchall()
        return [BlindItem(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def vote(self, position: int, reviewer: str, vote: str, note: str = "") -> None:
        reviewer = reviewer.strip()
        if not reviewer:
            raise UserError(
                "Enter your name before voting, so votes from several reviewers can be told apart."
            )
        if vote not in VOTES:
            raise UserError(f"Unknown vote {vote!r} (one of {', '.join(VOTES)}).")
        with _transaction(self.conn):
            self.conn.execute(
                "INSERT INTO review_votes (session_id, position, reviewer, vote, note, created) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, position, reviewer) DO UPDATE SET "
                "vote = excluded.vote, note = excluded.note, created = excluded.created",
                (self.id, position, reviewer, vote, note.strip(), time.strftime("%Y-%m-%dT%H:%M:%S")),
            )

    def votes(self, reviewer: str) -> dict[int, Vote]:
        rows = self.conn.execute(
            "SELECT position, vote, note FROM review_votes WHERE session_id = ? AND reviewer = ?",
            (self.id, reviewer.strip()),
        ).fetchall()
        return {int(r[0]): Vote(r[1], r[2]) for r in rows}

    def reviewers(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT reviewer FROM review_votes WHERE session_id = ? ORDER BY reviewer", (self.id,)
        ).fetchall()
        return [r[0] for r in rows]

    def results(self) -> ReviewResults:
        n_items = int(
            self.conn.execute(
                "SELECT COUNT(*) FROM review_items WHERE session_id = ?", (self.id,)
            ).fetchone()[0]
        )
        rows = self.conn.execute(
            "SELECT v.position, v.reviewer, v.vote, v.note, i.tuned_side, i.example_id FROM review_votes v "
            "JOIN review_items i ON i.session_id = v.session_id AND i.position = v.position "
            "WHERE v.session_id = ? ORDER BY v.position, v.reviewer",
            (self.id,),
        ).fetchall()
        overall = SideCounts()
        per: dict[str, SideCounts] = {}
        labels: dict[str, dict[int, str]] = {}
        notes = []
        for position, reviewer, vote, note, tuned_side, example_id in rows:
            result = outcome(vote, tuned_side)
            for counts in (overall, per.setdefault(reviewer, SideCounts())):
                setattr(counts, result, getattr(counts, result) + 1)
            labels.setdefault(reviewer, {})[int(position)] = result
            if note:
                notes.append(
                    {"reviewer": reviewer, "example_id": example_id, "outcome": result, "note": note}
                )
        agreement = []
        for r1, r2 in combinations(sorted(labels), 2):
            shared = sorted(set(labels[r1]) & set(labels[r2]))
            a = [labels[r1][p] for p in shared]
            b = [labels[r2][p] for p in shared]
            agreement.append(
                {
                    "reviewers": [r1, r2],
                    "items": len(shared),
                    "percent_agreement": (sum(x == y for x, y in zip(a, b, strict=True)) / len(shared))
                    if shared
                    else None,
                    "kappa": cohen_kappa(a, b),
                }
            )
        complete = {name: counts.votes >= n_items for name, counts in per.items()}
        return ReviewResults(n_items, overall, per, agreement, notes, complete)
