"""Dedup benchmark: prints figures, asserts nothing.

1. Embedding speed, side by side in one process on the same rows: plain sentence-transformers `encode`
   (fp32, batch 32) vs our `NearDuplicateFinder` pipeline (reduced-precision embeddings + fp32 re-score of
   the rows in pairs near the threshold; pair search included). Rounds alternate which goes first.
   Recall/precision of our pairs at 0.95 against the pairs of sentence-transformers' fp32 embeddings.
2. 100,000 rows with a warm cache: a cached re-run (hash, cache lookup, pair search, clusters), the cache
   lookup alone, the pair search alone; peak memory (RSS) of that process.

    .venv/bin/python benchmarks/bench_dedup.py [--rows 2000] [--rounds 3] [--big 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dedup_corpus import corpus  # noqa: E402


def rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def st_pairs(vectors: np.ndarray, t: float) -> set[tuple[int, int]]:
    s = vectors @ vectors.T
    a, b = np.nonzero(np.triu(s >= t, 1))
    return set(zip(a.tolist(), b.tolist(), strict=True))


def speed(rows: int, rounds: int, threshold: float) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from core.dedup.cache import EmbeddingCache
    from core.dedup.embed import Embedder
    from core.dedup.search import NearDuplicateFinder

    texts = corpus(rows, dup_share=0.05, seed=1)
    embedder = Embedder("all-minilm-l6-v2")
    st = SentenceTransformer(str(embedder.folder), device="cpu")
    lengths = [len(x) for x in st.tokenizer(texts)["input_ids"]]
    st.encode(texts[:64], normalize_embeddings=True)  # warm both
    embedder.embed(texts[:64], "fp32")
    embedder.embed(texts[:64])
    t_st: list[float] = []
    t_ours: list[float] = []
    ref = ours = None
    rescored = 0
    for r in range(rounds):
        order = ["st", "ours"] if r % 2 == 0 else ["ours", "st"]
        for who in order:
            start = time.perf_counter()
            if who == "st":
                vectors = st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
                pairs = st_pairs(vectors, threshold)
                t_st.append(time.perf_counter() - start)
                ref = pairs
            else:
                finder = NearDuplicateFinder(embedder, EmbeddingCache(sqlite3.connect(":memory:")))
                result = finder.run(texts, threshold)
                t_ours.append(time.perf_counter() - start)
                ours = {(p.a, p.b) for p in result.pairs()}
                rescored = result.rescored
    assert ref is not None and ours is not None
    # embedding stage only, interleaved finely (chunks of 250 rows, alternating order) so load drift on a
    # shared machine hits all three alike: ST encode fp32, ours fp32 (batching only), ours reduced precision
    fine = {"st": 0.0, "ours_fp32": 0.0, "ours_fast": 0.0}
    jobs = {
        "st": lambda part: st.encode(part, batch_size=32, normalize_embeddings=True),
        "ours_fp32": lambda part: embedder.embed(part, "fp32"),
        "ours_fast": lambda part: embedder.embed(part),
    }
    for k, c0 in enumerate(range(0, rows, 250)):
        part = texts[c0 : c0 + 250]
        names = list(jobs) if k % 2 == 0 else list(reversed(jobs))
        for name in names:
            start = time.perf_counter()
            jobs[name](part)
            fine[name] += time.perf_counter() - start
    fp32_ours = fine["ours_fp32"]
    hit = len(ref & ours)
    return {
        "rows": rows,
        "mean_tokens": round(float(np.mean(lengths)), 1),
        "torch_threads": torch.get_num_threads(),
        "precision": embedder.precision,
        "st_rows_per_s": [round(rows / t, 1) for t in t_st],
        "ours_rows_per_s": [round(rows / t, 1) for t in t_ours],
        "ratio_total_time": round(sum(t_st) / sum(t_ours), 3),
        "ratio_per_round": [round(a / b, 3) for a, b in zip(t_st, t_ours, strict=True)],
        "our_fp32_batching_rows_per_s": round(rows / fp32_ours, 1),
        "embed_only_interleaved_rows_per_s": {k: round(rows / v, 1) for k, v in fine.items()},
        "embed_only_ratio_fast_vs_st": round(fine["st"] / fine["ours_fast"], 3),
        "embed_only_ratio_fp32_batching_vs_st": round(fine["st"] / fine["ours_fp32"], 3),
        "rows_rescored_fp32": rescored,
        "pairs_reference": len(ref),
        "pairs_ours": len(ours),
        "recall": round(hit / max(1, len(ref)), 4),
        "precision_vs_reference": round(hit / max(1, len(ours)), 4),
    }


def build_cache(n: int, folder: Path) -> None:
    """Fill a cache file for `n` rows (own process: it loads the model)."""
    from core.dedup.cache import EmbeddingCache, connect_cache_file
    from core.dedup.embed import Embedder
    from core.dedup.exact import text_hash

    texts = corpus(n, dup_share=0.03, seed=2)
    embedder = Embedder("all-minilm-l6-v2")
    # Realistic vectors without embedding 100k rows here: real embeddings of 2,000 distinct rows, mixed
    # pairwise (unrelated rows), and a share of noisy near-copies (near-duplicates).
    base = embedder.embed(corpus(2000, dup_share=0.0, seed=3)).vectors
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
    w = rng.uniform(0.2, 0.8, (n, 1)).astype(np.float32)
    vectors = w * base[i] + (1 - w) * base[j] + rng.normal(0, 0.02, (n, base.shape[1])).astype(np.float32)
    dup = rng.random(n) < 0.03
    src = rng.integers(0, n, n)
    vectors[dup] = vectors[src[dup]] + rng.normal(0, 0.01, (int(dup.sum()), base.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    conn = connect_cache_file(folder / "cache.sqlite")
    # stored as settled (fp32) rows, so the re-run below needs no model at all
    EmbeddingCache(conn).put(embedder.model_id, [text_hash(t) for t in texts], vectors, "fp32")
    conn.close()


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def big(n: int, threshold: float, folder: Path) -> dict:
    """A cached re-run in a fresh process (its peak RSS is its own)."""
    from core.dedup.cache import EmbeddingCache, connect_cache_file
    from core.dedup.embed import Embedder
    from core.dedup.exact import text_hash
    from core.dedup.search import NearDuplicateFinder, pair_search

    texts = corpus(n, dup_share=0.03, seed=2)
    conn = connect_cache_file(folder / "cache.sqlite")
    cache = EmbeddingCache(conn)
    embedder = Embedder("all-minilm-l6-v2")
    out: dict = {"rows": n, "rss_start_mib": round(rss_peak_mib(), 1)}

    start, c0 = time.perf_counter(), cpu_s()
    hashes = [text_hash(t) for t in texts]
    vectors, found, _ = cache.lookup(embedder.model_id, hashes, "fp32")
    out["hash_and_cache_lookup_s"] = round(time.perf_counter() - start, 2)
    out["hash_and_cache_lookup_cpu_s"] = round(cpu_s() - c0, 2)
    assert vectors is not None and found.all()
    out["rss_after_lookup_mib"] = round(rss_peak_mib(), 1)

    start, c0 = time.perf_counter(), cpu_s()
    a, _, _ = pair_search(vectors, threshold)
    out["pair_search_s"] = round(time.perf_counter() - start, 2)
    out["pair_search_cpu_s"] = round(cpu_s() - c0, 2)
    out["pair_search_pairs"] = int(len(a))
    out["rss_after_pair_search_mib"] = round(rss_peak_mib(), 1)
    del vectors

    finder = NearDuplicateFinder(embedder, cache)
    start, c0 = time.perf_counter(), cpu_s()
    result = finder.run(texts, threshold)
    out["first_run_embeddings_cached_s"] = round(time.perf_counter() - start, 2)
    out["first_run_embeddings_cached_cpu_s"] = round(cpu_s() - c0, 2)

    start, c0 = time.perf_counter(), cpu_s()
    result = finder.run(texts, threshold)
    out["cached_rerun_s"] = round(time.perf_counter() - start, 2)
    out["cached_rerun_cpu_s"] = round(cpu_s() - c0, 2)
    out["cached_rerun_embedded_rows"] = result.embedded
    out["cached_rerun_pairs_reused"] = result.pairs_reused
    start = time.perf_counter()
    clusters = result.clusters(threshold + 0.02)
    out["recluster_at_new_threshold_s"] = round(time.perf_counter() - start, 3)
    out["clusters"] = len(result.clusters())
    out["clusters_at_+0.02"] = len(clusters)
    out["peak_rss_mib"] = round(rss_peak_mib(), 1)

    edited = list(texts)
    for k in range(0, n, n // 100):  # 100 rows edited: embedded (model loads here) and compared with all
        edited[k] = edited[k] + " (edited)"
    start, c0 = time.perf_counter(), cpu_s()
    result = finder.run(edited, threshold)
    out["rerun_100_edited_s"] = round(time.perf_counter() - start, 2)
    out["rerun_100_edited_cpu_s"] = round(cpu_s() - c0, 2)
    out["rerun_100_edited_embedded_rows"] = result.embedded
    out["peak_rss_with_model_mib"] = round(rss_peak_mib(), 1)
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--only", choices=["speed", "build", "big"])
    parser.add_argument("--folder", default="")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    if args.only in (None, "speed"):
        print("speed:", json.dumps(speed(args.rows, args.rounds, args.threshold)), flush=True)
    if args.only == "build":
        build_cache(args.big, Path(args.folder))
    elif args.only == "big":
        print("big:", json.dumps(big(args.big, args.threshold, Path(args.folder))), flush=True)
    elif args.only is None and args.big:
        folder = tempfile.mkdtemp(prefix="bench-dedup-")
        for step in ("build", "big"):
            proc = subprocess.run(
                [sys.executable, __file__, "--only", step, "--big", str(args.big), "--folder", folder]
                + ["--threshold", str(args.threshold)],
                capture_output=True,
                text=True,
            )
            print("\n".join(line for line in proc.stdout.splitlines() if line.startswith("big:")), flush=True)
            if proc.returncode:
                print(proc.stderr[-2000:])


if __name__ == "__main__":
    main()
