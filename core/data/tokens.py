"""Token counts with a base model's tokenizer and chat template, over-length flags, and the trained-token
mask for the template preview.

Speed: rendering through Jinja costs ~40 µs an example, so each *shape* of conversation (its sequence of
roles) is rendered once with placeholder contents and later examples are filled in by string joins (checked
against Jinja once per shape; a template that transforms contents falls back to Jinja). The rendered text is
cut at the tokenizer's added tokens (which the fast tokenizer matches before anything else, so pieces are
tokenized independently) and each distinct piece is encoded once, in batches: repeated system prompts and
template text cost nothing. Counts equal `len(tokenizer.apply_chat_template(messages))` exactly (tests
check this).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.progress import ProgressFn, StopFn, check_stop, no_progress

_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters mark placeholder contents
Messages = Sequence[dict[str, Any]]


def load_tokenizer(model: str | Path, progress: ProgressFn = no_progress) -> Any:
    """The fast tokenizer of a base model id, model folder or GGUF (converted once via the registry)."""
    from core.models import resolve_base_model

    folder = Path(model)
    if not (folder.is_dir() and (folder / "tokenizer_config.json").exists()):
        folder = resolve_base_model(str(model), progress=progress)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise UserError(f"The tokenizer of {model} cannot be loaded: {exc}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{model} has no chat template; choose an instruct/chat model.")
    return tokenizer


@dataclass
class TokenSpan:
    text: str
    start: int
    end: int
    trained: bool


@dataclass
class TemplatePreview:
    text: str
    tokens: list[TokenSpan]

    @property
    def count(self) -> int:
        return len(self.tokens)

    @property
    def trained(self) -> int:
        return sum(1 for t in self.tokens if t.trained)


class TokenCounter:
    def __init__(self, tokenizer: Any, name: str = "") -> None:
        self.tokenizer = tokenizer
        self.name = name or getattr(tokenizer, "name_or_path", "")
        self._shapes: dict[tuple[str, ...], list[str] | None] = {}
        self._piece_counts: dict[str, int] = {}
        added = [t for t in tokenizer.get_added_vocab() if t]
        specials = sorted(added, key=len, reverse=True)
        self._split_re = (
            re.compile("(" + "|".join(re.escape(s) for s in specials) + ")") if specials else None
        )
        self._specials = set(specials)
        decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        # Added tokens that strip neighbouring spaces would make pieces depend on each other: count whole.
        self._piecewise = self._split_re is not None and not any(
            getattr(t, "lstrip", False) or getattr(t, "rstrip", False) for t in decoder.values()
        )
        self._backend = getattr(tokenizer, "backend_tokenizer", None)
        self._word_re = _word_splitter(self._backend)
        self._word_counts: dict[str, int] = {}
        self._bpe = getattr(self._backend, "model", None) if self._word_re is not None else None
        if not hasattr(self._bpe, "tokenize"):
            self._bpe = None
        self._word_checked = 0
        self._plans: dict[tuple[str, ...], tuple[int, list[list[str | int]]] | None] = {}

    @classmethod
    def for_model(cls, model: str | Path, progress: ProgressFn = no_progress) -> TokenCounter:
        return cls(load_tokenizer(model, progress), str(model))

    # --- rendering ---------------------------------------------------------------------------------
    def _jinja(self, messages: Messages) -> str:
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False)
        return text if isinstance(text, str) else str(text)

    def _shape_parts(self, messages: Messages) -> list[str] | None:
        if any(set(m) - {"role", "content"} for m in messages):
            return None
        key = tuple(m["role"] for m in messages)
        if key in self._shapes:
            return self._shapes[key]
        parts: list[str] | None = None
        try:
            fake = [{"role": m["role"], "content": f"{_OPEN}{i}{_CLOSE}"} for i, m in enumerate(messages)]
            rendered = self._jinja(fake)
            pieces = re.split(f"{_OPEN}(\\d+){_CLOSE}", rendered)
            indices = [int(x) for x in pieces[1::2]]
            if indices == list(range(len(messages))):
                parts = pieces[0::2]
                # The template must insert contents verbatim: check once against Jinja.
                if self._join(parts, messages) != self._jinja(messages):
                    parts = None
        except Exception:  # a template that rejects this shape renders (or fails) per example
            parts = None
        self._shapes[key] = parts
        return parts

    @staticmethod
    def _join(parts: list[str], messages: Messages) -> str:
        out = [parts[0]]
        for m, tail in zip(messages, parts[1:], strict=True):
            out.append(m["content"] or "")
            out.append(tail)
        return "".join(out)

    def render(self, messages: Messages) -> str:
        parts = self._shape_parts(messages)
        if parts is not None:
            return self._join(parts, messages)
        try:
            return self._jinja(messages)
        except Exception as exc:  # template errors (e.g. roles it refuses) are the user's data problem
            raise UserError(f"The chat template cannot render this example: {exc}") from None

    # --- counting ----------------------------------------------------------------------------------
    def _encode_lengths(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        if self._backend is not None:
            return [len(e.ids) for e in self._backend.encode_batch(texts, add_special_tokens=False)]
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def _piece_lengths(self, pieces: list[str]) -> list[int]:
        """Token counts of text pieces (no added tokens inside). With a byte-level BPE whose pre-tokenizer is
        a plain regex, a piece's count is the sum of its words' counts: each distinct word is encoded once."""
        if self._word_re is None or not pieces:
            return self._encode_lengths(pieces)
        findall = self._word_re.findall
        words = self._word_counts
        split = [findall(piece) for piece in pieces]
        # Matches never overlap, so equal total length means every piece is fully covered by its words.
        if sum(map(len, chain.from_iterable(split))) != sum(map(len, pieces)):
            return self._encode_lengths(pieces)
        new = list(set(chain.from_iterable(split)).difference(words))
        if self._bpe is not None:
            # Straight to the BPE model (bytes mapped as ByteLevel does): far cheaper per word than encode.
            tokenize, table = self._bpe.tokenize, _BYTE_TABLE
            for w in new:
                words[w] = len(tokenize(w.encode("utf-8").decode("latin-1").translate(table)))
        else:
            for w, n in zip(new, self._encode_lengths(new), strict=True):
                words[w] = n
        get = words.__getitem__
        out = [sum(map(get, parts)) for parts in split]
        if self._word_checked < 500:
            # Check the first pieces against whole-piece encoding; on any difference stop using words.
            sample = pieces[: 500 - self._word_checked]
            if self._encode_lengths(sample) != out[: len(sample)]:
                self._word_re = self._bpe = None
                return self._encode_lengths(pieces)
            self._word_checked += len(sample)
        if len(words) > 500_000:
            words.clear()
        return out

    def _plan(self, messages: Messages) -> tuple[int, list[list[str | int]]] | None:
        """For a conversation shape: (tokens of the fixed template text and added tokens, the text pieces
        that hold contents as lists of literal strings and content indices). None: render each example."""
        key = tuple(m["role"] for m in messages)
        if key in self._plans:
            return self._plans[key]
        plan: tuple[int, list[list[str | int]]] | None = None
        parts = self._shape_parts(messages)
        if parts is not None and self._piecewise and self._split_re is not None:
            fixed = 0
            slots: list[list[str | int]] = []
            constant: list[str] = []
            current: list[str | int] = []

            def flush() -> None:
                nonlocal current
                items = [x for x in current if x != ""]
                if any(isinstance(x, int) for x in items):
                    slots.append(items)
                elif items:
                    constant.append("".join(str(x) for x in items))
                current = []

            for k, part in enumerate(parts):
                for bit in self._split_re.split(part):
                    if bit in self._specials:
                        fixed += 1
                        flush()
                    elif bit:
                        current.append(bit)
                if k < len(messages):
                    current.append(k)
            flush()
            fixed += sum(self._piece_lengths(constant))
            plan = (fixed, slots)
        self._plans[key] = plan
        return plan

    def count(
        self,
        conversations: Sequence[Messages],
        progress: ProgressFn = no_progress,
        should_stop: StopFn | None = None,
        batch_size: int = 4096,
    ) -> list[int]:
        """Token count of each conversation rendered through the chat template."""
        total = len(conversations)
        out: list[int] = []
        cache = self._piece_counts
        special = self._split_re.search if self._split_re is not None else None
        for start in range(0, total, batch_size):
            check_stop(should_stop)
            per_text: list[tuple[int, list[str]]] = []
            todo: dict[str, None] = {}
            for messages in conversations[start : start + batch_size]:
                plain = self._piecewise and all(len(m) == 2 for m in messages)  # role + content only
                plan = self._plan(messages) if plain else None
                contents = [m["content"] or "" for m in messages] if plan is not None else []
                if plan is not None and special is not None and special("\x00".join(contents)) is None:
                    fixed, slots = plan
                    pieces = [
                        "".join([x if isinstance(x, str) else contents[x] for x in items]) for items in slots
                    ]
                elif self._piecewise and special is not None:
                    fixed, pieces = 0, []
                    assert self._split_re is not None
                    for bit in self._split_re.split(self.render(messages)):
                        if bit in self._specials:
                            fixed += 1
                        elif bit:
                            pieces.append(bit)
                else:
                    fixed, pieces = 0, [self.render(messages)]
                for piece in pieces:
                    if piece not in cache:
                        todo[piece] = None
                per_text.append((fixed, pieces))
            new = list(todo)
            lengths = self._piece_lengths(new) if self._piecewise else self._encode_lengths(new)
            for piece, n in zip(new, lengths, strict=True):
                cache[piece] = n
            get = cache.__getitem__
            out.extend(fixed + sum(map(get, pieces)) for fixed, pieces in per_text)
            if len(cache) > 200_000:
                cache.clear()
            progress(
                min(1.0, (start + batch_size) / max(1, total)), f"{min(total, start + batch_size):,} counted"
            )
        return out

    def count_one(self, messages: Messages) -> int:
        return self.count([messages])[0]

    # --- preview -----------------------------------------------------------------------------------
    def preview(self, messages: Messages) -> TemplatePreview:
        """The example rendered through the template, tokenized, with the trained tokens (assistant replies
        and the end-of-turn marker that follows each) marked."""
        text = self.render(messages)
        spans: list[tuple[int, int]] = []
        pos = 0
        for m in messages:
            content = m.get("content") or ""
            at = text.find(content, pos) if content else -1
            if at < 0:
                continue
            end = at + len(content)
            pos = end
            if m.get("role") != "assistant":
                continue
            stop = end
            if self._split_re is not None:
                found = self._split_re.search(text, end)
                if found is not None and not text[end : found.start()].strip():
                    stop = found.end()
            spans.append((at, stop))
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        tokens: list[TokenSpan] = []
        for (a, b), tid in zip(encoding["offset_mapping"], encoding["input_ids"], strict=True):
            piece = text[a:b] if b > a else self.tokenizer.decode([tid])
            trained = any(a < e and b > s for s, e in spans)
            tokens.append(TokenSpan(piece, a, b, trained))
        return TemplatePreview(text, tokens)


def length_stats(counts: Sequence[int], max_length: int | None = None) -> dict[str, Any]:
    """Summary of token counts: total, mean, percentiles, over-length rows, histogram."""
    if not counts:
        return {"n": 0, "total": 0, "mean": 0, "min": 0, "median": 0, "p95": 0, "max": 0, "over_length": 0}
    ordered = sorted(counts)
    n = len(ordered)

    def pct(p: float) -> int:
        return ordered[min(n - 1, int(round(p * (n - 1))))]

    stats: dict[str, Any] = {
        "n": n,
        "total": sum(ordered),
        "mean": round(sum(ordered) / n, 1),
        "min": ordered[0],
        "median": pct(0.5),
        "p95": pct(0.95),
        "max": ordered[-1],
    }
    if max_length is not None:
        stats["over_length"] = sum(1 for c in ordered if c > max_length)
    return stats


def count_workspace(
    workspace: Any,
    counter: TokenCounter,
    progress: ProgressFn = no_progress,
    should_stop: StopFn | None = None,
    store: bool = True,
    chunk: int = 8192,
) -> dict[str, int]:
    """Count every live example of a DatasetWorkspace (reading messages in chunks); store the counts."""
    import orjson

    ids = list(workspace.ids())
    counts: dict[str, int] = {}
    for start in range(0, len(ids), chunk):
        check_stop(should_stop)
        part = ids[start : start + chunk]
        marks = ",".join("?" * len(part))
        rows = dict(
            workspace.conn.execute(
                "SELECT e.id, c.messages FROM examples e JOIN contents c ON c.rowid = e.rowid"
                f" WHERE e.id IN ({marks})",
                part,
            ).fetchall()
        )
        convs = [orjson.loads(rows[i]) for i in part if i in rows]
        present = [i for i in part if i in rows]
        for id_, n in zip(present, counter.count(convs, should_stop=should_stop), strict=True):
            counts[id_] = n
        progress(min(1.0, (start + len(part)) / max(1, len(ids))), f"{start + len(part):,} of {len(ids):,}")
    if store:
        workspace.set_token_counts(counts, counter.name)
    return counts


class _DigitsThenRegex:
    """`Digits(individual_digits=True)` then a regex: digits split off one by one, the rest by the regex."""

    def __init__(self, words: Any, digit: Any) -> None:
        self._words = words.findall
        self._digit_split = digit.split
        self._has_digit = digit.search

    def findall(self, text: str) -> list[str]:
        if self._has_digit(text) is None:
            return self._words(text)
        out: list[str] = []
        for i, segment in enumerate(self._digit_split(text)):
            if i % 2:  # a captured digit
                out.append(segment)
            elif segment:
                out.extend(self._words(segment))
        return out


_GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _word_splitter(backend: Any) -> Any:
    """The regex a byte-level BPE tokenizer splits words with, when its pipeline is exactly 'split by a
    regex, then BPE each word' (no normalizer, no prefix space): then counts add up word by word."""
    if backend is None:
        return None
    try:
        import json

        import regex

        spec = json.loads(backend.to_str())
    except Exception:  # no `regex` module, or a tokenizer that cannot describe itself
        return None
    if spec.get("normalizer") is not None or (spec.get("model") or {}).get("type") != "BPE":
        return None
    pre = spec.get("pre_tokenizer") or {}
    pattern = None

    def gpt2_byte_level(step: dict[str, Any]) -> bool:
        return (
            step.get("type") == "ByteLevel"
            and step.get("use_regex", True)
            and not step.get("add_prefix_space")
        )

    if gpt2_byte_level(pre):
        pattern = _GPT2_PATTERN
    elif pre.get("type") == "Sequence":
        steps = pre.get("pretokenizers") or []
        if (
            len(steps) == 2
            and steps[0].get("type") == "Digits"
            and steps[0].get("individual_digits")
            and gpt2_byte_level(steps[1])
        ):
            # SmolLM2: every digit is its own word, then GPT-2's regex splits the text between digits.
            try:
                return _DigitsThenRegex(regex.compile(_GPT2_PATTERN), regex.compile(r"(\p{N})"))
            except Exception:
                return None
        if (
            len(steps) == 2
            and steps[0].get("type") == "Split"
            and steps[0].get("behavior") == "Isolated"
            and not steps[0].get("invert")
            and "Regex" in (steps[0].get("pattern") or {})
            and steps[1].get("type") == "ByteLevel"
            and not steps[1].get("use_regex", True)
            and not steps[1].get("add_prefix_space")
        ):
            pattern = steps[0]["pattern"]["Regex"]
    if pattern is None:
        return None
    try:
        return regex.compile(pattern)
    except Exception:
        return None


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map that ByteLevel pre-tokenizers apply before BPE."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


_BYTE_TABLE = str.maketrans({chr(b): c for b, c in _bytes_to_unicode().items()})
