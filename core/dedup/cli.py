"""`whetstone dedup FILE [--threshold T] [--model ID] [--roles user,assistant] [--json]`.

JSON: {"pairs": [{"a", "b", "score"}], "clusters": [[i, ...]]} with 0-based indices over the valid
examples in file order (exact duplicates score 1.0), plus "examples", "leakage", "truncated", "notes".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.clikit import add_json_flag, console_progress, emit_json, existing_file
from core.errors import UserError


def _load_examples(path: Path) -> list[Any]:
    if path.suffix == ".wsdb":
        from core.data.workspace import DatasetWorkspace

        with DatasetWorkspace.open(path) as ws:
            return ws.examples()
    from core.data.formats import read_dataset

    result = read_dataset(path)
    if not result.examples:
        bad = f" ({len(result.errors)} bad lines; see `whetstone data check`)" if result.errors else ""
        raise UserError(f"{path} has no valid examples{bad}.")
    return result.examples


def _dedup(args: argparse.Namespace) -> int:
    from core import paths
    from core.dedup.cache import EmbeddingCache, connect_cache_file
    from core.dedup.embed import Embedder
    from core.dedup.exact import example_text, parse_roles
    from core.dedup.review import leakage
    from core.dedup.search import DEFAULT_LEXICAL, NearDuplicateFinder, validate_threshold

    path = existing_file(args.file)
    threshold = validate_threshold(args.threshold)
    roles = parse_roles(args.roles)
    examples = _load_examples(path)
    texts = [example_text(e, roles) for e in examples]
    embedder = Embedder(args.model, precision=args.precision)  # checks the model folder up front
    conn = None
    cache = None
    if not args.no_cache:
        conn = connect_cache_file(paths.cache_dir() / "dedup" / "embeddings.sqlite")
        cache = EmbeddingCache(conn)
    bar = console_progress(args, "dedup")
    try:
        lexical = DEFAULT_LEXICAL if args.typos else None
        result = NearDuplicateFinder(embedder, cache).run(texts, threshold, lexical=lexical, progress=bar)
    finally:
        bar.close()
        if conn is not None:
            conn.close()
    doc: dict[str, Any] = result.to_json()
    pairs = result.pairs()
    leaks = leakage(pairs, [e.split for e in examples])
    notes = list(result.notes)
    if result.truncated:
        notes.append(
            f"{len(result.truncated)} example(s) are longer than the embedding model's limit of "
            f"{embedder.max_seq_length} tokens; only their beginning was compared."
        )
    doc.update(
        {
            "examples": len(examples),
            "threshold": threshold,
            "model": embedder.model_id,
            "exact_pairs": int(result.exact.sum()),
            "typo_pairs": [[p.a, p.b] for p in pairs if p.lexical],
            "leakage": [leak.public() for leak in leaks],
            "truncated": result.truncated,
            "notes": notes,
        }
    )
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        emit_json(doc)
        return 0
    from core.dedup.review import compared_sentence, share

    clusters = doc["clusters"]
    print(compared_sentence(roles))
    would_go = sum(len(c) - 1 for c in clusters)
    print(f"Keeping one per cluster would remove {share(would_go, len(examples))}.")
    print(
        f"{len(examples)} examples · {doc['exact_pairs']} exact-duplicate pairs · "
        f"{len(pairs) - doc['exact_pairs']} near-duplicate pairs (cosine >= {threshold}) · "
        f"{len(clusters)} clusters"
    )
    for cluster in clusters[:20]:
        print("  cluster: " + ", ".join(str(i) for i in cluster))
        for i in cluster[:3]:
            print(f"    [{i}] {texts[i][:100]!r}")
    if len(clusters) > 20:
        print(f"  … {len(clusters) - 20} more clusters (use --json for all)")
    for leak in leaks[:20]:
        print(f"  leakage: {leak.a} ({leak.splits[0]}) ~ {leak.b} ({leak.splits[1]}) score {leak.score:.3f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dedup", help="exact and near-duplicate examples")
    p.add_argument("file", help="a data file (JSONL, JSON, CSV, Parquet) or a workspace (.wsdb)")
    p.add_argument("--threshold", type=float, default=0.95, help="cosine similarity (default 0.95)")
    p.add_argument("--model", default="all-minilm-l6-v2", help="embedding model id or local folder")
    p.add_argument(
        "--roles", default="user,assistant", help="turns compared, comma-separated (default user,assistant)"
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32"],
        help="auto: reduced-precision embeddings where faster, re-scored in fp32 near the threshold",
    )
    p.add_argument(
        "--typos",
        action="store_true",
        help="also report typo variants: cosine >= 0.80 and >= 85%% shared character 3-grams (listed in "
        "typo_pairs; their score is the cosine, below the threshold)",
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(p)
    p.set_defaults(handler=_dedup)
