"""Embedding cache keyed by (model id, text hash, precision), stored in a SQLite connection.

In the desktop it lives in the workspace file (tables prefixed `dedup_`); the CLI keeps one under the cache
directory. It takes any `sqlite3.Connection`, so it works (and is tested) on its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from core.data.workspace import DatasetWorkspace

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup_embeddings (
    model_id TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    precision TEXT NOT NULL,
    dim INTEGER NOT NULL,
    truncated INTEGER NOT NULL DEFAULT 0,
    vector BLOB NOT NULL,
    PRIMARY KEY (model_id, text_hash, precision)
) WITHOUT ROWID;
"""
_PAIR_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup_pair_runs (model_id TEXT PRIMARY KEY, level REAL NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dedup_pair_rows (
    model_id TEXT NOT NULL, text_hash TEXT NOT NULL, PRIMARY KEY (model_id, text_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup_pairs (
    model_id TEXT NOT NULL, a_hash TEXT NOT NULL, b_hash TEXT NOT NULL, score REAL NOT NULL,
    PRIMARY KEY (model_id, a_hash, b_hash)
) WITHOUT ROWID;
"""
_CHUNK = 900  # SQLite's default limit on bound parameters is 999


@dataclass
class PairSnapshot:
    level: float  # every pair among `hashes` with cosine >= level is listed
    hashes: set[str]
    pairs: list[tuple[str, str]]


def connect_cache_file(path: str | Path) -> sqlite3.Connection:
    """A connection for a stand-alone cache file (WAL, waits for other writers)."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(file), isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class EmbeddingCache:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(_SCHEMA + _PAIR_SCHEMA)
        self.hits = 0
        self.misses = 0

    @classmethod
    def for_workspace(cls, workspace: DatasetWorkspace) -> EmbeddingCache:
        """The cache stored in a workspace file (on that workspace's connection)."""
        return cls(workspace.conn)

    def lookup(
        self, model_id: str, hashes: Sequence[str], precision: str
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """(vectors [n, dim] float32 or None when nothing was found, found mask, truncated mask) for
        `hashes` (duplicates allowed) cached at that precision. Large requests scan the model's rows once
        (no per-row numpy objects), small ones look keys up."""
        n = len(hashes)
        where: dict[str, list[int]] = {}
        for i, h in enumerate(hashes):
            where.setdefault(h, []).append(i)
        found = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        vectors: np.ndarray | None = None
        if len(where) > 5000:
            cursors: Iterable[Any] = [
                self.conn.execute(
                    "SELECT text_hash, vector, truncated FROM dedup_embeddings WHERE model_id=? AND precision=?",
                    (model_id, precision),
                )
            ]
        else:
            keys = list(where)
            cursors = (
                self.conn.execute(
                    "SELECT text_hash, vector, truncated FROM dedup_embeddings WHERE model_id=? AND precision=?"
                    f" AND text_hash IN ({','.join('?' * len(part))})",
                    (model_id, precision, *part),
                )
                for part in (keys[s : s + _CHUNK] for s in range(0, len(keys), _CHUNK))
            )
        hit_keys = 0
        for cursor in cursors:
            for key, blob, cut in cursor:
                rows = where.get(key)
                if rows is None:
                    continue
                row = np.frombuffer(blob, dtype=np.float32)
                if vectors is None:
                    vectors = np.zeros((n, row.shape[0]), dtype=np.float32)
                vectors[rows] = row
                found[rows] = True
                if cut:
                    truncated[rows] = True
                hit_keys += 1
        self.hits += hit_keys
        self.misses += len(where) - hit_keys
        return vectors, found, truncated

    def get(self, model_id: str, hashes: Sequence[str], precision: str) -> dict[str, tuple[np.ndarray, bool]]:
        """{hash: (vector float32, truncated)} for the hashes cached at that precision."""
        unique = list(dict.fromkeys(hashes))
        vectors, found, truncated = self.lookup(model_id, unique, precision)
        if vectors is None:
            return {}
        return {h: (vectors[i], bool(truncated[i])) for i, h in enumerate(unique) if found[i]}

    def put(
        self,
        model_id: str,
        hashes: Sequence[str],
        vectors: np.ndarray,
        precision: str,
        truncated: Iterable[int] = (),
    ) -> None:
        """Store rows of `vectors` under `hashes` (one transaction)."""
        cut = set(truncated)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        rows = (
            (model_id, h, precision, dim, int(i in cut), vectors[i].tobytes()) for i, h in enumerate(hashes)
        )
        self.conn.execute("SAVEPOINT dedup_cache_put")
        try:
            self.conn.executemany("INSERT OR REPLACE INTO dedup_embeddings VALUES (?,?,?,?,?,?)", rows)
        except BaseException:
            self.conn.execute("ROLLBACK TO dedup_cache_put")
            self.conn.execute("RELEASE dedup_cache_put")
            raise
        self.conn.execute("RELEASE dedup_cache_put")

    # --- the last search's pairs: a re-run compares only new or changed texts -------------------------
    def load_pairs(self, model_id: str) -> PairSnapshot | None:
        row = self.conn.execute("SELECT level FROM dedup_pair_runs WHERE model_id=?", (model_id,)).fetchone()
        if row is None:
            return None
        hashes = {
            h
            for (h,) in self.conn.execute(
                "SELECT text_hash FROM dedup_pair_rows WHERE model_id=?", (model_id,)
            )
        }
        pairs = self.conn.execute(
            "SELECT a_hash, b_hash FROM dedup_pairs WHERE model_id=?", (model_id,)
        ).fetchall()
        return PairSnapshot(float(row[0]), hashes, pairs)

    def save_pairs(
        self, model_id: str, level: float, hashes: Iterable[str], pairs: Iterable[tuple[str, str, float]]
    ) -> None:
        """Remember that every pair among `hashes` with cosine >= `level` is in `pairs`."""
        import time

        self.conn.execute("SAVEPOINT dedup_pairs_put")
        try:
            for table in ("dedup_pair_runs", "dedup_pair_rows", "dedup_pairs"):
                self.conn.execute(f"DELETE FROM {table} WHERE model_id=?", (model_id,))
            self.conn.executemany(
                "INSERT OR IGNORE INTO dedup_pair_rows VALUES (?,?)", ((model_id, h) for h in hashes)
            )
            self.conn.executemany(
                "INSERT OR REPLACE INTO dedup_pairs VALUES (?,?,?,?)",
                ((model_id, a, b, float(s)) for a, b, s in pairs),
            )
            self.conn.execute(
                "INSERT INTO dedup_pair_runs VALUES (?,?,?)", (model_id, float(level), time.time())
            )
        except BaseException:
            self.conn.execute("ROLLBACK TO dedup_pairs_put")
            self.conn.execute("RELEASE dedup_pairs_put")
            raise
        self.conn.execute("RELEASE dedup_pairs_put")

    def count(self, model_id: str | None = None) -> int:
        if model_id is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM dedup_embeddings").fetchone()[0])
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM dedup_embeddings WHERE model_id=?", (model_id,)
            ).fetchone()[0]
        )

    def clear(self) -> None:
        for table in ("dedup_embeddings", "dedup_pair_runs", "dedup_pair_rows", "dedup_pairs"):
            self.conn.execute(f"DELETE FROM {table}")
