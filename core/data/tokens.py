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
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from core.data.bpe_words import BYTE_TABLE, UNSAFE, chunking_is_exact, word_splitter
from core.data.count_helper import count_workspace as count_workspace  # the workspace count: re-exported
from core.errors import UserError
from core.gcpause import cyclic_gc_paused
from core.progress import ProgressFn, StopFn, check_stop, no_progress

_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters mark placeholder contents
Messages = Sequence[dict[str, Any]]


def load_tokenizer(model: str | Path, progress: ProgressFn = no_progress) -> Any:
    """The fast tokenizer of a base model id, model folder or GGUF (converted once via the registry)."""
    from core.models import resolve_base_model

    folder = Path(model)
    if not (folder.is_dir() and (folder / "tokenizer_config.json").exists()):
        folder = resolve_base_model(str(model), progress=progress)
    from core.loader import load_tokenizer as load
    from core.loader import registry_allows_code

    tokenizer = load(folder, trust_remote_code=registry_allows_code(model) or None)
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{model} has no chat template; choose an instruct/chat model.")
    return tokenizer


class _Load:
    """One tokenizer load running in a daemon thread; what it reported last, and its outcome."""

    def __init__(self, model: str | Path) -> None:
        self.done = threading.Event()
        self.counter: TokenCounter | None = None
        self.error: BaseException | None = None
        self.report: tuple[float, str] | None = None  # the load's latest progress, relayed by the waiter
        self.thread = threading.Thread(
            target=self._run, args=(model,), name=f"whetstone-tokenizer-load {model}", daemon=True
        )

    def _run(self, model: str | Path) -> None:
        try:
            self.counter = TokenCounter.for_model(model, progress=self._progress)
        except BaseException as exc:  # kept for whoever waits; a thread has nowhere else to put it
            self.error = exc
        finally:
            self.done.set()

    def _progress(self, fraction: float, message: str = "") -> None:
        self.report = (fraction, message)


_loads: dict[str, _Load] = {}
_loads_lock = threading.Lock()


def load_counter(
    model: str | Path,
    progress: ProgressFn = no_progress,
    should_stop: StopFn | None = None,
    poll: float = 0.05,
) -> TokenCounter:
    """`TokenCounter.for_model`, abandonable: the load (importing transformers is most of it, tens of seconds
    on a busy laptop) runs in a daemon thread while this call checks `should_stop` every `poll` seconds and
    raises Cancelled at once when asked. An abandoned load goes on in the background; the next call for the
    same model takes it over (it does not start a second one) and gets its counter. The load's own progress
    (a GGUF converted once) is relayed from this thread, never from the loading one."""
    key = str(model)
    with _loads_lock:
        load = _loads.get(key)
        if load is None or (load.done.is_set() and load.error is not None):
            load = _loads[key] = _Load(model)
            load.thread.start()
    relayed: tuple[float, str] | None = None
    while not load.done.wait(poll):
        if load.report is not None and load.report is not relayed:
            relayed = load.report
            progress(*relayed)
        check_stop(should_stop)
    with _loads_lock:
        if _loads.get(key) is load:
            del _loads[key]  # taken: a later call loads afresh (the folder may have changed)
    if load.error is not None:
        raise load.error
    assert load.counter is not None
    return load.counter


def loads_running() -> int:
    """How many tokenizer loads are still running in the background (abandoned ones included)."""
    with _loads_lock:
        return sum(1 for load in _loads.values() if not load.done.is_set())


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
    note: str = ""  # e.g. the system prompt was folded into the first user turn
    reason: str = ""  # why no token of this example is trained (empty when some are)
    default_system: str = ""  # the template's own system prompt, added because the row has none

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
        added = [t for t in tokenizer.get_added_vocab() if t]
        decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        # Added tokens that strip neighbouring spaces would make pieces depend on each other: count whole.
        strips = any(getattr(t, "lstrip", False) or getattr(t, "rstrip", False) for t in decoder.values())
        self._setup(added, not strips, getattr(tokenizer, "backend_tokenizer", None))

    def _setup(self, added: list[str], piecewise: bool, backend: Any) -> None:
        self._shapes: dict[tuple[str, ...], list[str] | None] = {}
        self._piece_counts: dict[str, int] = {}
        specials = sorted(added, key=len, reverse=True)
        self._split_re = (
            re.compile("(" + "|".join(re.escape(s) for s in specials) + ")") if specials else None
        )
        self._specials = set(specials)
        self._piecewise = self._split_re is not None and piecewise
        self._backend = backend
        self._word_re = word_splitter(self._backend)
        self._word_counts: dict[str, int] = {}
        self._bpe = getattr(self._backend, "model", None) if self._word_re is not None else None
        if not hasattr(self._bpe, "tokenize"):
            self._bpe = None
        self._word_checked = 0
        self._chunks_exact = self._word_re is not None and chunking_is_exact(self._word_re)
        self._first_chunks: dict[str, int] = {}
        self._rest_chunks: dict[str, int] = {}
        self._plans: dict[tuple[str, ...], tuple[int, list[list[str | int]]] | None] = {}

    # --- a second process ----------------------------------------------------------------------------
    def helper_state(self) -> dict[str, Any] | None:
        """What a helper process needs to count the conversation shapes seen so far, without transformers
        or the chat template (None: this counter cannot be shared)."""
        if self._backend is None or not self._piecewise or not self._plans:
            return None
        plans = [[list(k), v[0], v[1]] for k, v in self._plans.items() if v is not None]
        return {
            "tokenizer": self._backend.to_str(),
            "added": sorted(self._specials),
            "plans": plans,
        }

    @classmethod
    def from_helper_state(cls, state: dict[str, Any]) -> TokenCounter:
        from tokenizers import Tokenizer

        counter = cls.__new__(cls)
        counter.tokenizer = None
        counter.name = ""
        counter._setup(list(state["added"]), True, Tokenizer.from_str(state["tokenizer"]))
        counter._plans = {tuple(roles): (fixed, slots) for roles, fixed, slots in state["plans"]}
        return counter

    def has_plan(self, messages: Messages) -> bool:
        """Whether this conversation can be counted from a shape already planned (a helper process, which
        has no chat template, counts only those)."""
        return self._planned(messages, known_only=True) is not None

    def _planned(
        self, messages: Messages, known_only: bool = False
    ) -> tuple[tuple[int, list[list[str | int]]], list[str]] | None:
        """(the shape's plan, the contents) when the conversation can be counted from its shape: turns of
        role + content only, no special token inside a content. None: render it through the template."""
        if not self._piecewise or not all(len(m) == 2 and "role" in m and "content" in m for m in messages):
            return None
        plan = (
            self._plans.get(tuple(str(m["role"]) for m in messages)) if known_only else self._plan(messages)
        )
        if plan is None:
            return None
        contents = [m["content"] or "" for m in messages]
        if self._split_re is not None and self._split_re.search("\x00".join(contents)) is not None:
            return None
        return plan, contents

    @classmethod
    def for_model(cls, model: str | Path, progress: ProgressFn = no_progress) -> TokenCounter:
        return cls(load_tokenizer(model, progress), str(model))

    # --- rendering ---------------------------------------------------------------------------------
    def _jinja(self, messages: Messages) -> str:
        """The conversation as training renders it: the system prompt folded into the first user turn where
        the template cannot keep it, rows without reasoning with enable_thinking=False."""
        from core.data.chat_template import prepare_messages, render_kwargs

        msgs, _ = prepare_messages(self.tokenizer, list(messages))
        text = self.tokenizer.apply_chat_template(msgs, tokenize=False, **render_kwargs(self.tokenizer, msgs))
        return text if isinstance(text, str) else str(text)

    def _shape_parts(self, messages: Messages) -> list[str] | None:
        from core.data.chat_template import carries_reasoning

        if any(set(m) - {"role", "content"} for m in messages) or carries_reasoning(list(messages)):
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
        a plain regex, a piece's count is the sum of its words' counts (each distinct word encoded once),
        and, where spaces are word boundaries, the sum of its space-separated chunks' counts (each distinct
        chunk split into words once): no regex runs over text already seen."""
        if self._word_re is None or not pieces:
            return self._encode_lengths(pieces)
        out = self._chunk_lengths(pieces) if self._chunks_exact else self._word_lengths(pieces)
        if out is None:
            return self._encode_lengths(pieces)
        if self._word_checked < 500:
            # Check the first pieces against whole-piece encoding; on any difference stop using words.
            sample = pieces[: 500 - self._word_checked]
            if self._encode_lengths(sample) != out[: len(sample)]:
                self._word_re = self._bpe = None
                return self._encode_lengths(pieces)
            self._word_checked += len(sample)
        return out

    def _word_lengths(self, pieces: list[str]) -> list[int] | None:
        """Counts as sums of regex words (None: the regex does not cover some piece)."""
        assert self._word_re is not None
        findall = self._word_re.findall
        words = self._word_counts
        split = [findall(piece) for piece in pieces]
        # Matches never overlap, so equal total length means every piece is fully covered by its words.
        if sum(map(len, chain.from_iterable(split))) != sum(map(len, pieces)):
            return None
        new = list(set(chain.from_iterable(split)).difference(words))
        if self._bpe is not None:
            # Straight to the BPE model (bytes mapped as ByteLevel does): far cheaper per word than encode.
            tokenize, table = self._bpe.tokenize, BYTE_TABLE
            for w in new:
                words[w] = len(tokenize(w.encode("utf-8").decode("latin-1").translate(table)))
        else:
            for w, n in zip(new, self._encode_lengths(new), strict=True):
                words[w] = n
        if len(words) > 500_000:
            words.clear()
        get = words.__getitem__
        return [sum(map(get, parts)) for parts in split]

    def _chunk_lengths(self, pieces: list[str]) -> list[int] | None:
        """Counts as sums of space-separated chunks: the first chunk of a piece as it is, every later one
        with the space before it. Exact because a single space between two non-space characters always
        starts a new word (checked for this tokenizer's regex by `chunking_is_exact`); a chunk that is
        empty or has whitespace at an edge (runs of spaces, newlines before a space) is marked with
        `UNSAFE` and its piece is split into words instead."""
        first, rest = self._first_chunks, self._rest_chunks
        split = [piece.split(" ") for piece in pieces]
        new_first = {s[0] for s in split}.difference(first)
        new_rest = set(chain.from_iterable(split)).difference(rest)
        if new_first or new_rest:
            safe_first = [c for c in new_first if c and not c[-1].isspace()]
            safe_rest = [c for c in new_rest if c and not c[0].isspace() and not c[-1].isspace()]
            lengths = self._word_lengths(safe_first + [" " + c for c in safe_rest])
            if lengths is None:
                return None
            first.update(dict.fromkeys(new_first, UNSAFE))
            rest.update(dict.fromkeys(new_rest, UNSAFE))
            first.update(zip(safe_first, lengths[: len(safe_first)], strict=True))
            rest.update(zip(safe_rest, lengths[len(safe_first) :], strict=True))
        get_first, get_rest = first.__getitem__, rest.__getitem__
        out = [get_first(s[0]) + sum(map(get_rest, s)) - get_rest(s[0]) for s in split]
        redo = [i for i, n in enumerate(out) if n >= UNSAFE]
        if redo:
            again = self._word_lengths([pieces[i] for i in redo])
            if again is None:
                return None
            for i, n in zip(redo, again, strict=True):
                out[i] = n
        if len(first) + len(rest) > 1_000_000:
            first.clear()
            rest.clear()
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
        with cyclic_gc_paused():
            return self._count(conversations, progress, should_stop, batch_size)

    def _count(
        self,
        conversations: Sequence[Messages],
        progress: ProgressFn,
        should_stop: StopFn | None,
        batch_size: int,
    ) -> list[int]:
        total = len(conversations)
        out: list[int] = []
        cache = self._piece_counts
        for start in range(0, total, batch_size):
            check_stop(should_stop)
            per_text: list[tuple[int, list[str]]] = []
            todo: dict[str, None] = {}
            for messages in conversations[start : start + batch_size]:
                planned = self._planned(messages)
                if planned is not None:
                    (fixed, slots), contents = planned
                    pieces = [
                        "".join([x if isinstance(x, str) else contents[x] for x in items]) for items in slots
                    ]
                elif self._split_re is not None and self._piecewise:
                    fixed, pieces = 0, []
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
    def preview(self, messages: Messages, max_length: int | None = None) -> TemplatePreview:
        """The example rendered and tokenized exactly as training does (core.data.chat_template), with the
        trained tokens (every assistant reply and the end-of-turn token after it) marked; `reason` says why
        no token is trained, `note` that the system prompt was folded into the first user turn."""
        from core.data.chat_template import (
            assistant_spans,
            default_system_prompt,
            fold_note,
            prepare_messages,
            probe_row,
        )

        plain = [{"role": m.get("role"), "content": m.get("content") or ""} for m in messages]
        try:
            msgs, folded = prepare_messages(self.tokenizer, plain)
            text, spans = assistant_spans(self.tokenizer, msgs)
        except Exception as exc:  # template errors are the user's data problem
            raise UserError(f"The chat template cannot render this example: {exc}") from None
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        tokens: list[TokenSpan] = []
        for (a, b), tid in zip(encoding["offset_mapping"], encoding["input_ids"], strict=True):
            piece = text[a:b] if b > a else self.tokenizer.decode([tid])
            trained = b > a and any(a < e and b > s for s, e in spans)
            tokens.append(TokenSpan(piece, a, b, trained))
        preview = TemplatePreview(text, tokens)
        preview.note = (fold_note(self.tokenizer) or "") if folded else ""
        if not any(m["role"] == "system" for m in plain):
            default = default_system_prompt(self.tokenizer)
            preview.default_system = default if default and default in text else ""
        if not any(t.trained for t in (tokens[:max_length] if max_length else tokens)):
            preview.reason = probe_row(self.tokenizer, plain, max_length).reason
        return preview


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


def probe_workspace(
    workspace: Any,
    counter: TokenCounter,
    max_length: int | None,
    progress: ProgressFn = no_progress,
    should_stop: StopFn | None = None,
    chunk: int = 1024,
) -> dict[str, Any] | None:
    """Every live example through the training tokenization (core.data.chat_template.probe_row): the rows
    that would train no token, with the reason, and how many system prompts the template makes us fold.
    None for a counter without a chat tokenizer (nothing to probe with)."""
    from core.data.chat_template import fold_note, probe_row

    if getattr(counter, "tokenizer", None) is None:
        return None
    ids = list(workspace.ids())
    zero: list[dict[str, str]] = []
    folded = 0
    for start in range(0, len(ids), chunk):
        check_stop(should_stop)
        for example in workspace.get_many(ids[start : start + chunk]):
            row = probe_row(counter.tokenizer, example.messages_dicts(), max_length, 0, example.id)
            folded += int(row.folded)
            if not row.trained:
                zero.append({"id": example.id, "reason": row.reason})
        done = min(len(ids), start + chunk)
        progress(done / max(1, len(ids)), f"template probe: {done:,} of {len(ids):,}")
    note = fold_note(counter.tokenizer) if folded else None
    return {"rows": len(ids), "zero_trained": zero, "folded": folded, "note": note}


def probe_summary(probe: dict[str, Any]) -> str:
    """One or two lines for the Data page: rows that train nothing (first few named) and the fold note."""
    zero = probe["zero_trained"]
    if zero:
        named = "; ".join(f"{z['id']}: {z['reason']}" for z in zero[:3])
        more = f" and {len(zero) - 3} more" if len(zero) > 3 else ""
        text = (
            f"{len(zero):,} of {probe['rows']:,} rows train no token ({named}{more}); training refuses them."
        )
    else:
        text = f"Every one of the {probe['rows']:,} rows trains at least one token."
    return text + (f"\n{probe['note']}" if probe.get("note") else "")
