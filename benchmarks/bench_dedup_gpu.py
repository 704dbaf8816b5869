"""Dedup on a CUDA GPU (prints figures): our embedder (fp16 autocast + fp32 settling) vs plain
sentence-transformers `encode` (fp32) on the same rows, recall of the 0.95 pairs, and exact pair search
over 100k / 300k embeddings on the GPU.

    python benchmarks/bench_dedup_gpu.py [MODEL_FOLDER]
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dedup_corpus import corpus  # noqa: E402


def main() -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from core.dedup.cache import EmbeddingCache
    from core.dedup.embed import Embedder
    from core.dedup.search import NearDuplicateFinder, pair_search

    model = sys.argv[1] if len(sys.argv) > 1 else "all-minilm-l6-v2"
    out: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    texts = corpus(20000, dup_share=0.05, seed=1)
    embedder = Embedder(model, device="cuda")
    st = SentenceTransformer(str(embedder.folder), device="cuda")
    st.float()
    st.encode(texts[:256])
    embedder.embed(texts[:256])
    embedder.embed(texts[:256], "fp32")
    t_st, t_ours = [], []
    for _ in range(3):
        torch.cuda.synchronize()
        start = time.perf_counter()
        ref_vec = st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        a, b, _ = pair_search(ref_vec, 0.95, reduced=False)
        ref = set(zip(a.tolist(), b.tolist(), strict=True))
        t_st.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = NearDuplicateFinder(embedder, EmbeddingCache(sqlite3.connect(":memory:"))).run(texts, 0.95)
        t_ours.append(time.perf_counter() - start)
        ours = {(p.a, p.b) for p in result.pairs()}
    out["rows"] = len(texts)
    out["st_rows_per_s"] = [round(len(texts) / t) for t in t_st]
    out["ours_rows_per_s"] = [round(len(texts) / t) for t in t_ours]
    out["ratio"] = round(sum(t_st) / sum(t_ours), 2)
    out["precision"] = embedder.precision
    out["rescored_rows"] = result.rescored
    out["pairs_reference"] = len(ref)
    out["recall"] = round(len(ref & ours) / max(1, len(ref)), 4)
    out["precision_vs_reference"] = round(len(ref & ours) / max(1, len(ours)), 4)
    base = embedder.embed(corpus(2000, dup_share=0.0, seed=3)).vectors
    rng = np.random.default_rng(0)
    for n in (100_000, 300_000):
        i, j = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
        w = rng.uniform(0.2, 0.8, (n, 1)).astype(np.float32)
        x = w * base[i] + (1 - w) * base[j] + rng.normal(0, 0.02, (n, base.shape[1])).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        a, _, _ = pair_search(x, 0.95)
        torch.cuda.synchronize()
        out[f"pair_search_{n}_s"] = round(time.perf_counter() - start, 2)
        out[f"pair_search_{n}_pairs"] = int(len(a))
        out[f"pair_search_{n}_peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
        start = time.perf_counter()
        a32, _, _ = pair_search(x, 0.95, reduced=False)
        out[f"pair_search_{n}_fp32_tiles_s"] = round(time.perf_counter() - start, 2)
        assert set(a.tolist()) == set(a32.tolist())
    print("gpu:", json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
