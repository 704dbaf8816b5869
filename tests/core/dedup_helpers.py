"""A deterministic stand-in for the embedding model (bag of words -> unit vector) for fast dedup tests."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import numpy as np

from core.dedup.embed import EmbedResult


class FakeEmbedder:
    """Counts calls; `fast` precision adds a small deterministic error, like bf16 does."""

    def __init__(self, dim: int = 64, precision: str = "fp32", noise: float = 0.0) -> None:
        self.dim = dim
        self.model_id = "fake-model"
        self.precision = precision
        self.noise = noise
        self.calls: list[tuple[str, list[str]]] = []
        self.max_seq_length = 50

    @property
    def dimension(self) -> int:
        return self.dim

    def vector(self, text: str, precision: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float64)
        for word in text.lower().split():
            h = int(hashlib.md5(word.encode()).hexdigest(), 16)
            v[h % self.dim] += 1.0 + (h >> 64) % 7 / 10
        if not v.any():
            v[0] = 1.0
        if precision != "fp32" and self.noise:
            seed = int(hashlib.md5(text.encode()).hexdigest()[:8], 16)
            v += np.random.default_rng(seed).normal(0, self.noise * np.linalg.norm(v), self.dim)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def embed(self, texts: Sequence[str], precision: str | None = None, progress=None, should_stop=None):
        started = time.monotonic()
        precision = precision or self.precision
        self.calls.append((precision, list(texts)))
        if should_stop is not None and should_stop():
            from core.errors import Cancelled

            raise Cancelled("cancelled")
        vectors = np.stack([self.vector(t, precision) for t in texts]) if texts else np.zeros((0, self.dim))
        truncated = [i for i, t in enumerate(texts) if len(t.split()) > self.max_seq_length]
        if progress is not None:
            progress(1.0, f"Reading what each example means: {len(texts)} of {len(texts)}")
        return EmbedResult(vectors.astype(np.float32), truncated, precision, time.monotonic() - started)

    def embedded_texts(self) -> list[str]:
        return [t for _, texts in self.calls for t in texts]
