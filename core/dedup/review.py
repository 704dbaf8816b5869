"""Review decisions: "not a duplicate" / "keep all" remembered per pair of texts, keeper choice, leakage.

Decisions are keyed by the hashes of the compared texts (sorted pair), so they survive re-runs and follow
the text: editing an example makes it a new text that is judged again. Removals are workspace edits
(`workspace.delete(ids)` puts rows in the recoverable bin and returns the operation that undoes it).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import UserError

if TYPE_CHECKING:
    from core.data.workspace import DatasetWorkspace

NOT_DUPLICATE = "not_duplicate"
KEEP_ALL = "keep_all"
KEEP_STRATEGIES = ("longest", "first")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup_decisions (
    a_hash TEXT NOT NULL,
    b_hash TEXT NOT NULL,
    decision TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (a_hash, b_hash)
) WITHOUT ROWID;
"""


def hash_pair(x: str, y: str) -> tuple[str, str]:
    return (x, y) if x <= y else (y, x)


class DecisionStore:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.executescript(_SCHEMA)

    @classmethod
    def for_workspace(cls, workspace: DatasetWorkspace) -> DecisionStore:
        """The decisions stored in a workspace file (on that workspace's connection)."""
        return cls(workspace.conn)

    def record(self, hashes: Sequence[str], decision: str) -> None:
        """Record `decision` for every pair among `hashes` (one cluster)."""
        if decision not in (NOT_DUPLICATE, KEEP_ALL):
            raise UserError(f"Unknown decision '{decision}'.")
        unique = sorted(set(hashes))
        now = time.time()
        rows = [
            (*hash_pair(unique[i], unique[j]), decision, now)
            for i in range(len(unique))
            for j in range(i + 1, len(unique))
        ]
        self.conn.execute("SAVEPOINT dedup_decide")
        self.conn.executemany("INSERT OR REPLACE INTO dedup_decisions VALUES (?,?,?,?)", rows)
        self.conn.execute("RELEASE dedup_decide")

    def forget(self, hashes: Sequence[str]) -> None:
        unique = sorted(set(hashes))
        pairs = [
            hash_pair(unique[i], unique[j]) for i in range(len(unique)) for j in range(i + 1, len(unique))
        ]
        self.conn.execute("SAVEPOINT dedup_forget")
        self.conn.executemany("DELETE FROM dedup_decisions WHERE a_hash=? AND b_hash=?", pairs)
        self.conn.execute("RELEASE dedup_forget")

    def pairs(self, decision: str = NOT_DUPLICATE) -> set[tuple[str, str]]:
        return {
            (a, b)
            for a, b in self.conn.execute(
                "SELECT a_hash, b_hash FROM dedup_decisions WHERE decision=?", (decision,)
            )
        }

    def decision_for(self, hashes: Sequence[str]) -> str | None:
        """The decision shared by every pair of the cluster, if any."""
        unique = sorted(set(hashes))
        if len(unique) < 2:
            return None
        found: set[str] = set()
        for i in range(len(unique)):
            for j in range(i + 1, len(unique)):
                row = self.conn.execute(
                    "SELECT decision FROM dedup_decisions WHERE a_hash=? AND b_hash=?",
                    hash_pair(unique[i], unique[j]),
                ).fetchone()
                if row is None:
                    return None
                found.add(row[0])
        return found.pop() if len(found) == 1 else None


def choose_keeper(rows: Sequence[int], texts: Sequence[str], strategy: str = "longest") -> int:
    """The row to keep in a cluster: the longest text (ties: the first), or the first in file order."""
    if not rows:
        raise UserError("Empty cluster.")
    if strategy == "first":
        return min(rows)
    if strategy == "longest":
        return max(sorted(rows), key=lambda r: (len(texts[r]), -r))
    raise UserError(f"Unknown keep strategy '{strategy}' (choose from {', '.join(KEEP_STRATEGIES)}).")


def removals(clusters: Iterable[Sequence[int]], texts: Sequence[str], strategy: str = "longest") -> list[int]:
    """Rows to remove so one row per cluster stays."""
    out: list[int] = []
    for cluster in clusters:
        keep = choose_keeper(cluster, texts, strategy)
        out += [r for r in cluster if r != keep]
    return sorted(out)


@dataclass(frozen=True)
class Leak:
    a: int
    b: int
    score: float
    splits: tuple[str, str]

    def public(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "score": round(self.score, 6), "splits": list(self.splits)}


def leakage(pairs: Iterable[Any], splits: Sequence[str | None]) -> list[Leak]:
    """Near-duplicate pairs with one row in the test split and the other in train or validation: the model
    would be scored on examples it was trained on. Flagged whatever the user decided to keep."""
    out = []
    for p in pairs:
        sa, sb = splits[p.a], splits[p.b]
        if sa is None or sb is None or sa == sb:
            continue
        if "test" in (sa, sb):
            out.append(Leak(p.a, p.b, float(p.score), (str(sa), str(sb))))
    return out


# --- what a non-expert is told before rows move -------------------------------------------------------------
CONFIRM_FRACTION = 0.05  # a removal of more than this share of the set asks first, naming the number
_ROLE_WORDS = {
    "system": "system prompt",
    "user": "questions (user turns)",
    "assistant": "answers (assistant turns)",
    "tool": "tool results",
}


def needs_confirmation(moved: int, total: int, fraction: float = CONFIRM_FRACTION) -> bool:
    """True when moving `moved` of `total` rows is more than `fraction` of the set."""
    return moved > 0 and moved > fraction * max(total, 0)


def share(moved: int, total: int) -> str:
    """`"80 of 297 examples (27%)"`."""
    pct = 100.0 * moved / max(total, 1)
    text = f"{pct:.0f}%" if pct >= 1 or moved == 0 else "<1%"
    return f"{moved:,} of {total:,} examples ({text})"


def compared_sentence(roles: Sequence[str]) -> str:
    """What the duplicate search compares, in plain words (and what that choice means)."""
    chosen = [r for r in ("system", "user", "assistant", "tool") if r in roles]
    if not chosen:
        return "Nothing is compared: tick at least one kind of turn."
    parts = [_ROLE_WORDS[r] for r in chosen]
    what = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    text = f"Compares the {what} of every example, all turns of a conversation together."
    if set(chosen) == {"assistant"}:
        text += " Answers alone: different questions that got the same canned reply count as duplicates."
    elif "user" in chosen and "assistant" in chosen:
        text += " Rows that share only a canned reply stay apart, because their questions differ."
    elif set(chosen) == {"user"}:
        text += " Questions alone: the same question with different answers counts as a duplicate."
    if "system" not in chosen:
        text += " The system prompt is left out (it is usually the same in every row)."
    return text


# --- clusters as the review shows them ---------------------------------------------------------------------
@dataclass
class ClusterStats:
    """One cluster of near-duplicates with what the review says about it."""

    rows: list[int]  # row numbers in the search's order, ascending
    best: float  # the highest score of a pair in it
    exact: int  # pairs that are equal after normalisation
    typos: int  # typo-variant pairs (kept below the threshold by character overlap)
    leaks: list[Leak]  # train/test leakage pairs in it
    decision: str | None  # KEEP_ALL / NOT_DUPLICATE when decided, else None


@dataclass
class ClusterReview:
    clusters: list[ClusterStats]  # largest first, then by best score, then by first row
    best: dict[int, float]  # each clustered row's best score with another row
    leaks: list[Leak]  # every train/test leakage pair


def review_clusters(
    n: int,
    pairs: Sequence[Any],
    splits: Sequence[str | None],
    hashes: Sequence[str],
    decisions: DecisionStore | None = None,
) -> ClusterReview:
    """The clusters of `n` rows joined by `pairs` (core.dedup.search.Pair: a, b, score, exact_text, lexical),
    with each cluster's best score, exact and typo pair counts, leakage (by `splits`) and the decision
    remembered for its texts (`hashes`, one per row) in `decisions`."""
    import numpy as np

    from core.dedup.search import connected_components

    leaks = leakage(pairs, splits)
    a = np.array([p.a for p in pairs], dtype=np.int64)
    b = np.array([p.b for p in pairs], dtype=np.int64)
    best: dict[int, float] = {}
    exact: dict[int, int] = {}
    typos: dict[int, int] = {}
    for p in pairs:
        if p.lexical:
            typos[p.a] = typos.get(p.a, 0) + 1
        best[p.a] = max(best.get(p.a, 0.0), p.score)
        best[p.b] = max(best.get(p.b, 0.0), p.score)
        if p.exact_text:
            exact[p.a] = exact.get(p.a, 0) + 1
    clusters = []
    for group in connected_components(n, a, b):
        rows = sorted(group)
        members = set(rows)
        clusters.append(
            ClusterStats(
                rows=rows,
                best=max(best.get(i, 0.0) for i in rows),
                exact=sum(exact.get(i, 0) for i in rows),
                typos=sum(typos.get(i, 0) for i in rows),
                leaks=[leak for leak in leaks if leak.a in members],
                decision=decisions.decision_for([hashes[i] for i in rows]) if decisions is not None else None,
            )
        )
    clusters.sort(key=lambda c: (-len(c.rows), -c.best, c.rows[0]))
    return ClusterReview(clusters, best, leaks)
