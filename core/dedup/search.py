"""Exact blocked pair search over unit-length embeddings, clusters, and the `NearDuplicateFinder` pipeline.

Pair search is exact (no approximate index): the upper triangle of X·Xᵀ is computed in tiles. On a CPU with
bfloat16 support (or a GPU) tiles are computed in reduced precision as a candidate filter: for unit vectors
every product's rounding error is at most 2u = 2^-7 (bf16) so every pair with true cosine >= t has a tile
score >= t - 2^-7; candidates are then re-scored exactly in fp32. The result equals a full fp32 search.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.dedup.cache import EmbeddingCache
from core.dedup.exact import representatives, text_hash
from core.errors import UserError
from core.progress import ProgressFn, StopFn, check_stop, no_progress

DEFAULT_THRESHOLD = 0.95
BF16_BOUND = 2.0**-7 + 1e-4  # max |error| of a bf16 dot product of unit vectors (+ fp32 accumulation)
EMBED_MARGIN = 0.01  # bf16-embedding vs fp32-embedding cosine (measured max 0.0035; see benchmarks)
MAX_EXPANDED_PAIRS = 2_000_000
LEXICAL_COSINE_FLOOR = 0.80  # typo variants: cosine at least this and character 3-gram overlap high
DEFAULT_LEXICAL = 0.85


def _torch() -> Any:
    import torch

    return torch


def validate_threshold(threshold: float) -> float:
    if not 0.0 < threshold <= 1.0:
        raise UserError(f"The similarity threshold must be in (0, 1], got {threshold}.")
    return float(threshold)


def pair_search(
    vectors: np.ndarray,
    threshold: float,
    *,
    queries: np.ndarray | None = None,
    device: str | None = None,
    reduced: bool | None = None,
    block_rows: int = 1024,
    block_cols: int = 16384,
    progress: ProgressFn = no_progress,
    should_stop: StopFn | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j with cosine(vectors[i], vectors[j]) >= threshold: (i, j, score), fp32-exact.

    With `queries` (row indices), only pairs involving at least one of those rows are searched (a re-run
    compares new rows with everything). `vectors` must be unit length (float32). `reduced` (default: when
    faster here) uses bf16/fp16 tiles as a candidate filter, then re-scores candidates in fp32.
    """
    torch = _torch()
    n = int(vectors.shape[0])
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if n < 2 or (queries is not None and len(queries) == 0):
        progress(1.0, "No pairs to compare")
        return empty
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    x32 = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(device)
    work = n * (n - 1) / 2 if queries is None else len(queries) * n
    if reduced is None:
        if device.startswith("cuda"):
            reduced = True
        else:
            try:
                reduced = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and work > 4e6
            except (AttributeError, RuntimeError):
                reduced = False
    if reduced:
        dtype = torch.float16 if device.startswith("cuda") else torch.bfloat16
        xt = x32.to(dtype)
        bound = BF16_BOUND if dtype == torch.bfloat16 else 2.0**-10 + 1e-4
    else:
        xt = x32
        bound = 1e-5
    low = threshold - bound
    out_i: list[Any] = []
    out_j: list[Any] = []
    done = 0.0
    rows_all = None if queries is None else torch.from_numpy(np.asarray(queries, dtype=np.int64)).to(device)
    is_query = None
    if rows_all is not None:
        is_query = torch.zeros(n, dtype=torch.bool, device=device)
        is_query[rows_all] = True
    total_rows = n if rows_all is None else int(rows_all.shape[0])
    # one score buffer and one mask buffer for every tile: no per-tile allocations (freed tiles of this
    # size otherwise scatter over the allocator's per-thread arenas and the process keeps growing)
    score_buf = torch.empty(block_rows * block_cols, dtype=xt.dtype, device=device)
    hit_buf = torch.empty(block_rows * block_cols, dtype=torch.bool, device=device)
    with torch.inference_mode():
        for i0 in range(0, total_rows, block_rows):
            check_stop(should_stop)
            i1 = min(total_rows, i0 + block_rows)
            if rows_all is None:
                rows = xt[i0:i1]
                col_start = i0
            else:
                index = rows_all[i0:i1]
                rows = xt[index]
                col_start = 0
            # column tiles on a fixed grid: every tile has one of two shapes (the kernels' caches stay small)
            for j0 in range(col_start - col_start % block_cols, n, block_cols):
                j1 = min(n, j0 + block_cols)
                size = (i1 - i0) * (j1 - j0)
                scores = score_buf[:size].view(i1 - i0, j1 - j0)
                torch.matmul(rows, xt[j0:j1].T, out=scores)
                hit = hit_buf[:size].view(i1 - i0, j1 - j0)
                torch.ge(scores, low, out=hit)
                ii, jj = torch.nonzero(hit, as_tuple=True)
                if not ii.numel():
                    continue
                jj = jj + j0
                if rows_all is None:
                    ii = ii + i0
                    if j0 < i1:  # the tile meets the diagonal: keep j > i only
                        keep = jj > ii
                        ii, jj = ii[keep], jj[keep]
                else:
                    ii = index[ii]
                    assert is_query is not None
                    # a pair of two query rows is found twice: keep it once; never a row with itself
                    keep = (jj != ii) & (~is_query[jj] | (jj > ii))
                    ii, jj = ii[keep], jj[keep]
                out_i.append(ii)
                out_j.append(jj)
            if rows_all is None:
                done += (i1 - i0) * (n - i0) - (i1 - i0) * (i1 - i0 + 1) / 2
            else:
                done += (i1 - i0) * n
            progress(
                min(done / max(work, 1), 1.0),
                f"Comparing meanings: {i1:,} of {total_rows:,} examples compared",
            )
        if not out_i:
            return empty
        a = torch.cat(out_i)
        b = torch.cat(out_j)
        a, b = torch.minimum(a, b), torch.maximum(a, b)
        exact = torch.empty(a.shape[0], dtype=torch.float32, device=device)
        step = 1 << 18
        for s in range(0, a.shape[0], step):  # fp32 re-score of the candidates
            exact[s : s + step] = (x32[a[s : s + step]] * x32[b[s : s + step]]).sum(dim=1)
        keep = exact >= threshold
        return (
            a[keep].cpu().numpy().astype(np.int64),
            b[keep].cpu().numpy().astype(np.int64),
            exact[keep].clamp_(max=1.0).cpu().numpy(),
        )


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> list[list[int]]:
    """Clusters (size >= 2) of the graph with edges (a[k], b[k]), each sorted."""
    if n == 0 or len(a) == 0:
        return []
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scc

    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = scc(graph, directed=False)
    counts = np.bincount(labels)
    members = np.nonzero(counts[labels] > 1)[0]
    groups: dict[int, list[int]] = {}
    for i in members.tolist():
        groups.setdefault(int(labels[i]), []).append(i)
    return list(groups.values())


@dataclass
class Pair:
    a: int
    b: int
    score: float
    exact_text: bool = False  # equal after normalisation
    lexical: bool = False  # below the threshold, kept as a typo variant (character overlap)


@dataclass
class DedupResult:
    """Pairs >= `floor` over n rows; clusters at any threshold >= floor come without re-embedding."""

    n: int
    threshold: float
    floor: float
    a: np.ndarray  # int64 row indices (a < b)
    b: np.ndarray
    score: np.ndarray  # float32 cosine; 1.0 for exact duplicates
    exact: np.ndarray  # bool: equal after normalisation
    hashes: list[str]
    model_id: str = ""
    truncated: list[int] = field(default_factory=list)
    embedded: int = 0  # rows embedded in this run (cache misses)
    cached: int = 0  # rows whose embedding came from the cache
    rescored: int = 0  # rows embedded again in fp32 to settle pairs near the threshold
    seconds: float = 0.0
    embed_rows_per_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    pairs_reused: bool = False  # pairs among texts seen before came from the cache
    lexical: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # typo-variant pairs

    def pairs(
        self, threshold: float | None = None, ignored: set[tuple[str, str]] | None = None
    ) -> list[Pair]:
        """Pairs at `threshold` (default: the run's), best first, minus pairs of texts in `ignored`
        (sorted hash pairs the user marked "not a duplicate")."""
        t = self.threshold if threshold is None else threshold
        lexical = self.lexical if len(self.lexical) == len(self.score) else np.zeros(len(self.score), bool)
        keep = np.nonzero((self.score >= t - 1e-7) | lexical)[0]
        keep = keep[np.argsort(-self.score[keep], kind="stable")]
        out = []
        for k in keep.tolist():
            a, b = int(self.a[k]), int(self.b[k])
            if ignored and _hash_pair(self.hashes[a], self.hashes[b]) in ignored:
                continue
            out.append(Pair(a, b, float(self.score[k]), bool(self.exact[k]), bool(lexical[k])))
        return out

    def clusters(
        self, threshold: float | None = None, ignored: set[tuple[str, str]] | None = None
    ) -> list[list[int]]:
        """Connected components at `threshold`, largest first, then by best score."""
        pairs = self.pairs(threshold, ignored)
        a = np.array([p.a for p in pairs], dtype=np.int64)
        b = np.array([p.b for p in pairs], dtype=np.int64)
        groups = connected_components(self.n, a, b)
        best: dict[int, float] = {}
        for p in pairs:
            best[p.a] = max(best.get(p.a, 0.0), p.score)
        ranked = [(len(g), max(best.get(i, 0.0) for i in g), g) for g in groups]
        ranked.sort(key=lambda item: (-item[0], -item[1], item[2][0]))
        return [sorted(g) for _, _, g in ranked]

    def to_json(self, threshold: float | None = None) -> dict[str, Any]:
        pairs = self.pairs(threshold)
        return {
            "pairs": [{"a": p.a, "b": p.b, "score": round(p.score, 6)} for p in pairs],
            "clusters": self.clusters(threshold),
        }


def _hash_pair(x: str, y: str) -> tuple[str, str]:
    return (x, y) if x <= y else (y, x)


class NearDuplicateFinder:
    """Exact + embedding near-duplicates of a list of texts.

    Steps: hash normalised texts (exact groups; one representative each is embedded); embeddings from the
    cache or the embedder (fast precision); exact pair search; pairs whose score lies within
    `EMBED_MARGIN` of the threshold are settled with fp32 embeddings of their rows (cached too); pairs are
    expanded back to every member of the exact groups.
    """

    def __init__(
        self,
        embedder: Any = None,
        cache: EmbeddingCache | None = None,
        *,
        model: str = "all-minilm-l6-v2",
        device: str | None = None,
        embedder_factory: Callable[[], Any] | None = None,
    ) -> None:
        self._embedder = embedder
        self._factory = embedder_factory
        self.model = model
        self.cache = cache
        self.device = device

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            if self._factory is not None:
                self._embedder = self._factory()
            else:
                from core.dedup.embed import Embedder

                self._embedder = Embedder(self.model, device=self.device)
        return self._embedder

    def _vectors(
        self,
        texts: Sequence[str],
        hashes: Sequence[str],
        precision: str,
        progress: ProgressFn,
        should_stop: StopFn | None,
        stats: dict[str, Any],
    ) -> tuple[np.ndarray, list[int], np.ndarray]:
        """Embeddings for texts: cached fp32 first, then cached at `precision`, then embedded.
        Returns (vectors, truncated indices, is_fp32 flags)."""
        emb = self.embedder
        model_id = emb.model_id
        n = len(texts)
        vectors: np.ndarray | None = None
        have = np.zeros(n, dtype=bool)
        is_fp32 = np.zeros(n, dtype=bool)
        cut_mask = np.zeros(n, dtype=bool)
        if self.cache is not None:
            for prec in ("fp32",) if precision == "fp32" else ("fp32", precision):
                todo = np.nonzero(~have)[0]
                if not len(todo):
                    break
                got, found, cut = self.cache.lookup(model_id, [hashes[int(i)] for i in todo], prec)
                if got is None:
                    continue
                if vectors is None:
                    vectors = np.zeros((n, got.shape[1]), dtype=np.float32)
                rows = todo[found]
                vectors[rows] = got[found]
                have[rows] = True
                cut_mask[rows] = cut[found]
                if prec == "fp32":
                    is_fp32[rows] = True
        missing = np.nonzero(~have)[0].tolist()
        stats["cached"] = n - len(missing)
        if missing:
            result = emb.embed(
                [texts[i] for i in missing], precision=precision, progress=progress, should_stop=should_stop
            )
            stats["embed_rows_per_s"] = len(missing) / max(getattr(result, "seconds", 0.0), 1e-6)
            if vectors is None:
                vectors = np.zeros((n, result.vectors.shape[1]), dtype=np.float32)
            vectors[missing] = result.vectors
            is_fp32[missing] = result.precision == "fp32"
            cut_mask[[missing[k] for k in result.truncated]] = True
            if self.cache is not None:
                self.cache.put(
                    model_id, [hashes[i] for i in missing], result.vectors, result.precision, result.truncated
                )
        assert vectors is not None
        truncated = np.nonzero(cut_mask)[0].tolist()
        stats["embedded"] = len(missing)
        return vectors, sorted(set(truncated)), is_fp32

    def _search(
        self,
        vectors: np.ndarray,
        hashes: Sequence[str],
        level: float,
        model_id: str,
        progress: ProgressFn,
        should_stop: StopFn | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Pairs >= level. Pairs among texts the last search covered (at a level at most this one) come
        from the cache and are re-scored from the current vectors; only new texts are compared with all."""

        def search_progress(f: float, m: str) -> None:
            progress(0.8 + 0.17 * f, m)

        snapshot = self.cache.load_pairs(model_id) if self.cache is not None else None
        if snapshot is None or snapshot.level > level + 1e-9:
            a, b, s = pair_search(
                vectors, level, device=self.device, progress=search_progress, should_stop=should_stop
            )
            return a, b, s, False
        position = {h: k for k, h in enumerate(hashes)}
        old = np.fromiter((h in snapshot.hashes for h in hashes), dtype=bool, count=len(hashes))
        new_rows = np.nonzero(~old)[0]
        known = [
            (position[x], position[y])
            for x, y in snapshot.pairs
            if x in position and y in position and old[position[x]] and old[position[y]]
        ]
        ka = np.array([min(p) for p in known], dtype=np.int64)
        kb = np.array([max(p) for p in known], dtype=np.int64)
        ks = (
            np.einsum("ij,ij->i", vectors[ka], vectors[kb]).astype(np.float32)
            if len(known)
            else np.zeros(0, np.float32)
        )
        keep = ks >= level
        na, nb, ns = pair_search(
            vectors,
            level,
            queries=new_rows,
            device=self.device,
            progress=search_progress,
            should_stop=should_stop,
        )
        return (
            np.concatenate([ka[keep], na]),
            np.concatenate([kb[keep], nb]),
            np.concatenate([ks[keep], ns]).astype(np.float32),
            True,
        )

    def run(
        self,
        texts: Sequence[str],
        threshold: float = DEFAULT_THRESHOLD,
        *,
        floor: float | None = None,
        lexical: float | None = None,
        progress: ProgressFn = no_progress,
        should_stop: StopFn | None = None,
    ) -> DedupResult:
        """Pairs with cosine >= `floor` (default: the threshold), clusters at `threshold`. With `lexical`
        (a character 3-gram Jaccard level such as 0.85), pairs with cosine >= 0.80 whose texts overlap that
        much are kept too (typo variants, which sub-word embeddings score low); they are flagged."""
        threshold = validate_threshold(threshold)
        floor = min(threshold, validate_threshold(floor)) if floor is not None else threshold
        if lexical is not None:
            lexical = validate_threshold(lexical)
        started = time.monotonic()
        n = len(texts)
        progress(0.0, "Looking for exact copies")
        hashes = [text_hash(t) for t in texts]
        reps, owner = representatives(texts)
        notes: list[str] = []
        stats: dict[str, Any] = {"embedded": 0, "cached": 0, "embed_rows_per_s": 0.0, "pairs_reused": False}
        rescored = 0
        truncated_rows: list[int] = []
        ra = rb = np.zeros(0, np.int64)
        rs = np.zeros(0, np.float32)
        rl = np.zeros(0, dtype=bool)
        model_id = ""
        if len(reps) >= 2:
            emb = self.embedder
            model_id = emb.model_id
            precision = emb.precision
            rep_texts = [texts[i] for i in reps]
            rep_hashes = [hashes[i] for i in reps]

            def embed_progress(f: float, m: str) -> None:
                progress(0.02 + 0.78 * f, m)

            vectors, cut, is_fp32 = self._vectors(
                rep_texts, rep_hashes, precision, embed_progress, should_stop, stats
            )
            truncated_rows = [reps[k] for k in cut]
            check_stop(should_stop)
            margin = 0.0 if bool(is_fp32.all()) else EMBED_MARGIN
            search_floor = min(floor, LEXICAL_COSINE_FLOOR) if lexical is not None else floor
            # always searched EMBED_MARGIN below the floor (not only when rows are reduced precision), so
            # the stored pairs of this run serve the next run's new rows whatever their precision
            level = max(search_floor - EMBED_MARGIN, 1e-6)
            ra, rb, rs, reused = self._search(
                vectors, rep_hashes, level, model_id, progress=progress, should_stop=should_stop
            )
            stats["pairs_reused"] = reused
            near = (np.abs(rs - threshold) < margin) & ~(is_fp32[ra] & is_fp32[rb])
            settle = sorted(set(ra[near].tolist()) | set(rb[near].tolist()))
            settle = [k for k in settle if not is_fp32[k]]
            if settle:
                progress(0.97, f"Checking {len(settle):,} examples near the threshold again, more precisely")
                sub_stats: dict[str, Any] = {}
                exact_vecs, _, _ = self._vectors(
                    [rep_texts[k] for k in settle],
                    [rep_hashes[k] for k in settle],
                    "fp32",
                    no_progress,
                    should_stop,
                    sub_stats,
                )
                rescored = int(sub_stats.get("embedded", 0))
                vectors[settle] = exact_vecs
                is_fp32[settle] = True
                touched = np.isin(ra, settle) | np.isin(rb, settle)
                rs = rs.copy()
                rs[touched] = np.einsum("ij,ij->i", vectors[ra[touched]], vectors[rb[touched]])
            if self.cache is not None:
                self.cache.save_pairs(
                    model_id,
                    level,
                    rep_hashes,
                    (
                        (rep_hashes[x], rep_hashes[y], sc)
                        for x, y, sc in zip(ra.tolist(), rb.tolist(), rs.tolist(), strict=True)
                    ),
                )
            rl = np.zeros(len(rs), dtype=bool)
            if lexical is not None:
                from core.dedup.exact import char_jaccard

                for k in np.nonzero((rs < floor) & (rs >= LEXICAL_COSINE_FLOOR))[0].tolist():
                    rl[k] = char_jaccard(rep_texts[int(ra[k])], rep_texts[int(rb[k])]) >= lexical
            keep = (rs >= floor) | rl
            ra, rb, rs = reps_idx(ra[keep], reps), reps_idx(rb[keep], reps), np.minimum(rs[keep], 1.0)
            rl = rl[keep]
        elif n >= 2:
            notes.append("All examples have the same text.")
        if n < 2:
            notes.append("Fewer than two examples: nothing to compare.")
        a, b, s, ex, lx = _expand(n, reps, owner, ra, rb, rs, notes, rl)
        if truncated_rows:
            members: dict[int, list[int]] = {}
            for i, o in enumerate(owner):
                members.setdefault(o, []).append(i)
            rep_slot = {r: k for k, r in enumerate(reps)}
            truncated_rows = sorted(i for r in truncated_rows for i in members[rep_slot[r]])
        progress(1.0, "Done")
        return DedupResult(
            n=n,
            threshold=threshold,
            floor=floor,
            a=a,
            b=b,
            score=s,
            exact=ex,
            hashes=hashes,
            model_id=model_id,
            truncated=truncated_rows,
            embedded=int(stats["embedded"]) + rescored,
            cached=int(stats["cached"]),
            rescored=rescored,
            seconds=time.monotonic() - started,
            embed_rows_per_s=float(stats["embed_rows_per_s"]),
            notes=notes,
            pairs_reused=bool(stats["pairs_reused"]),
            lexical=lx,
        )


def reps_idx(k: np.ndarray, reps: list[int]) -> np.ndarray:
    return np.asarray(reps, dtype=np.int64)[k] if len(k) else np.zeros(0, np.int64)


def _expand(
    n: int,
    reps: list[int],
    owner: list[int],
    ra: np.ndarray,
    rb: np.ndarray,
    rs: np.ndarray,
    notes: list[str],
    rl: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs over all rows: every pair inside an exact group (score 1.0) and, for each representative
    pair, every member pair (capped at MAX_EXPANDED_PAIRS, beyond which only a star per group is kept)."""
    members: dict[int, list[int]] = {}
    for i, slot in enumerate(owner):
        members.setdefault(reps[slot], []).append(i)
    groups = [g for g in members.values() if len(g) > 1]
    full = sum(len(g) * (len(g) - 1) // 2 for g in groups) + sum(
        len(members[int(x)]) * len(members[int(y)]) for x, y in zip(ra.tolist(), rb.tolist(), strict=True)
    )
    star = full > MAX_EXPANDED_PAIRS
    if star:
        notes.append(
            f"{full:,} pairs in all; exact-duplicate groups are listed as pairs with their first row only."
        )
    a_out: list[int] = []
    b_out: list[int] = []
    s_out: list[float] = []
    e_out: list[bool] = []
    for g in groups:
        if star:
            pairs = [(g[0], j) for j in g[1:]]
        else:
            pairs = [(g[x], g[y]) for x in range(len(g)) for y in range(x + 1, len(g))]
        for p, q in pairs:
            a_out.append(p)
            b_out.append(q)
            s_out.append(1.0)
            e_out.append(True)
    l_out: list[bool] = [False] * len(a_out)
    flags = rl.tolist() if rl is not None and len(rl) == len(ra) else [False] * len(ra)
    for x, y, sc, lex in zip(ra.tolist(), rb.tolist(), rs.tolist(), flags, strict=True):
        gx, gy = (members[x], members[y]) if not star else ([x], [y])
        for p in gx:
            for q in gy:
                a_out.append(min(p, q))
                b_out.append(max(p, q))
                s_out.append(sc)
                e_out.append(False)
                l_out.append(bool(lex))
    return (
        np.asarray(a_out, dtype=np.int64),
        np.asarray(b_out, dtype=np.int64),
        np.asarray(s_out, dtype=np.float32),
        np.asarray(e_out, dtype=bool),
        np.asarray(l_out, dtype=bool),
    )
