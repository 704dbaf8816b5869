"""Seeded train/validation/test splits, optionally stratified by tag."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from core.data.example import SPLITS, Example
from core.errors import UserError


def parse_ratios(text: str) -> tuple[float, float, float]:
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError as exc:
        raise UserError(f"Ratios must be three numbers like 0.8,0.1,0.1 (got '{text}').") from exc
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise UserError(f"Ratios must be three non-negative numbers like 0.8,0.1,0.1 (got '{text}').")
    total = sum(parts)
    return (parts[0] / total, parts[1] / total, parts[2] / total)


def _cut(n: int, ratios: Sequence[float]) -> list[int]:
    """Sizes per split that add up to n (largest remainder), giving a non-empty split one row when n allows."""
    raw = [n * r for r in ratios]
    sizes = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - sizes[i], reverse=True)
    for i in order[: n - sum(sizes)]:
        sizes[i] += 1
    return sizes


def assign_splits(
    examples: Sequence[Example],
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify_by: str | None = None,
    keep_locked_test: bool = True,
) -> dict[str, str]:
    """Return {example id: split}. Examples already in the locked test split stay there when
    `keep_locked_test` (the test split is the honest yardstick and never reshuffled)."""
    rng = random.Random(seed)
    fixed = {e.id: "test" for e in examples if keep_locked_test and e.split == "test"}
    free = [e for e in examples if e.id not in fixed]
    groups: dict[str, list[Example]] = defaultdict(list)
    for e in free:
        key = ""
        if stratify_by == "tag":
            key = e.tags[0] if e.tags else ""
        elif stratify_by:
            key = str(e.extra.get(stratify_by, e.tags[0] if e.tags else ""))
        groups[key].append(e)
    result = dict(fixed)
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        sizes = _cut(len(members), ratios)
        start = 0
        for split, size in zip(SPLITS, sizes, strict=True):
            for e in members[start : start + size]:
                result[e.id] = split
            start += size
    return result
