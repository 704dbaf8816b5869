"""Exact duplicates: the text an example is trained on, normalised (Unicode NFC, case, whitespace), hashed.

`example_text` picks which turns count (default user + assistant: the system prompt is usually the same
for every row and would make unrelated examples look alike).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence

from core.data.example import ROLES, Example
from core.errors import UserError

DEFAULT_ROLES: tuple[str, ...] = ("user", "assistant")
_SPACE = re.compile(r"\s+")


def parse_roles(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """`"user,assistant"` or an iterable of roles -> a validated tuple (UserError on an unknown role)."""
    if value is None:
        return DEFAULT_ROLES
    items = [r.strip() for r in value.split(",")] if isinstance(value, str) else [str(r) for r in value]
    roles = tuple(r for r in items if r)
    if not roles:
        raise UserError("Choose at least one turn role to compare (system, user, assistant, tool).")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise UserError(f"Unknown role '{unknown[0]}' (choose from {', '.join(ROLES)}).")
    return roles


def example_text(example: Example, roles: Sequence[str] = DEFAULT_ROLES) -> str:
    """The trained-on text of the chosen turns, one turn per line, in conversation order."""
    return "\n".join(m.content for m in example.messages if m.role in roles and m.content)


def normalize_text(text: str) -> str:
    """Unicode NFC, case-folded, runs of whitespace collapsed to one space, trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text).casefold()).strip()


def text_hash(text: str) -> str:
    """Key of a text exactly as embedded (the embedding cache and "not a duplicate" decisions use it)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def normalized_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode("utf-8", "surrogatepass")).hexdigest()


def exact_groups(texts: Sequence[str]) -> list[list[int]]:
    """Groups (size >= 2) of indices whose normalised texts are equal, each sorted, ordered by first index."""
    seen: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        seen.setdefault(normalized_hash(text), []).append(i)
    return [g for g in seen.values() if len(g) > 1]


def representatives(texts: Sequence[str]) -> tuple[list[int], list[int]]:
    """(reps, owner): reps = the first index of each distinct normalised text, in order; owner[i] = the
    position in `reps` of row i's representative."""
    index: dict[str, int] = {}
    reps: list[int] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        key = normalized_hash(text)
        slot = index.get(key)
        if slot is None:
            slot = index[key] = len(reps)
            reps.append(i)
        owner.append(slot)
    return reps, owner


def char_ngrams(text: str, k: int = 3) -> set[str]:
    t = normalize_text(text)
    return {t[i : i + k] for i in range(max(1, len(t) - k + 1))}


def char_jaccard(a: str, b: str, k: int = 3) -> float:
    """Jaccard overlap of the normalised texts' character k-grams (typos change only a few of them)."""
    x, y = char_ngrams(a, k), char_ngrams(b, k)
    return len(x & y) / max(1, len(x | y))
