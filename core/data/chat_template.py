"""How a conversation renders with a model's own chat template, and which of its tokens are trained.

Used by the Data page's template probe and `whetstone data stats --model` (core.data.tokens, core.data.cli),
by training (core.training.dataset builds its datasets with it) and by evaluation (the prompt as training
rendered it, the answer without a reasoning block). Tokenization marks exactly the assistant turns (their
content and the end-of-turn token the template emits) as trained tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tokenized:
    input_ids: list[int]
    assistant_mask: list[int]


# --- chat templates, exactly as the model renders them ------------------------------------------------------
# Assistant contents are wrapped in private-use sentinels, the conversation is rendered once with them, and
# their positions give the assistant spans; the render without sentinels must equal the plain render, else
# each turn falls back to the prompt-prefix diff (render up to the generation prompt, find it in the whole).
_SENTINEL = re.compile("[\ue010\ue012][0-9]+[\ue011\ue013]")
_REASONING = ("<think>", "</think>")
FOLD_NOTE = (
    "The chat template of this model {how} a system prompt where the rows put it, so each row's system prompt "
    "is folded into its first user turn (as '<system>\\n\\n<user>')."
)


def _start(k: int) -> str:
    return f"\ue010{k}\ue011"


def _end(k: int) -> str:
    return f"\ue012{k}\ue013"


def carries_reasoning(messages: list[dict[str, Any]]) -> bool:
    """Whether any assistant turn carries reasoning (a <think> block or a reasoning_content field)."""
    for m in messages:
        if m.get("role") != "assistant":
            continue
        if m.get("reasoning_content") or any(tag in str(m.get("content") or "") for tag in _REASONING):
            return True
    return False


def render_kwargs(tokenizer: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Extra template variables: rows without reasoning are rendered with enable_thinking=False (Qwen3,
    SmolLM3), so no empty think block is learned as the reply and the prompt matches inference."""
    template = str(getattr(tokenizer, "chat_template", "") or "")
    if "enable_thinking" in template and not carries_reasoning(messages):
        return {"enable_thinking": False}
    return {}


def _render(
    tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool = False, **kwargs: Any
) -> str:
    return str(
        tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt, **kwargs
        )
    )


_SYSTEM_MODES: dict[str, str] = {}


def system_mode(tokenizer: Any) -> str:
    """How the template treats a system prompt: "keeps" (where the row puts it, the same in every prefix),
    "rejects" (raises), "moves" (e.g. Mistral v0.3: before the last user turn) or "drops"."""
    template = str(getattr(tokenizer, "chat_template", "") or "")
    if template in _SYSTEM_MODES:
        return _SYSTEM_MODES[template]
    probe = [
        {"role": "system", "content": "\ue020SYS\ue021"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
    ]
    marker = "\ue020SYS\ue021"
    try:
        full = _render(tokenizer, probe)
        prefix = _render(tokenizer, probe[:4], generation_prompt=True)
    except Exception:  # noqa: BLE001 - a template that raises on a system message rejects it
        mode = "rejects"
    else:
        full_at, prefix_at = full.find(marker), prefix.find(marker)
        if full_at < 0:
            mode = "moves" if prefix_at >= 0 else "drops"
        elif prefix_at != full_at or full[:full_at] != prefix[:prefix_at]:
            mode = "moves"
        else:
            mode = "keeps"
    _SYSTEM_MODES[template] = mode
    return mode


def prepare_messages(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """(messages as the template can train them, whether a system prompt was folded into the first user
    turn). Templates that reject, move or drop a system prompt get it folded into the first user turn."""
    msgs = [dict(m) for m in messages]
    if not msgs or msgs[0].get("role") != "system" or system_mode(tokenizer) == "keeps":
        return msgs, False
    system = str(msgs[0].get("content") or "")
    rest = msgs[1:]
    for m in rest:
        if m.get("role") == "user":
            m["content"] = f"{system}\n\n{m.get('content') or ''}" if system else m.get("content")
            return rest, True
    return rest, bool(system)


def fold_note(tokenizer: Any) -> str | None:
    """The one-line note said once (UI, run log) when system prompts are folded; None when they are not."""
    how = {"rejects": "rejects", "moves": "moves", "drops": "drops"}.get(system_mode(tokenizer))
    return FOLD_NOTE.format(how=how) if how else None


_DEFAULT_SYSTEMS: dict[str, str | None] = {}


def default_system_prompt(tokenizer: Any) -> str | None:
    """The system prompt the chat template adds to a conversation that has none (SmolLM2: "You are a helpful
    AI assistant named SmolLM, trained by Hugging Face"), or None. Found by rendering one user turn with a
    marker system prompt and without one: the text in the marker's place is the template's own default."""
    template = str(getattr(tokenizer, "chat_template", "") or "")
    if template in _DEFAULT_SYSTEMS:
        return _DEFAULT_SYSTEMS[template]
    marker, user = "\ue020SYS\ue021", "\ue020USR\ue021"
    found: str | None = None
    try:
        with_system = _render(
            tokenizer, [{"role": "system", "content": marker}, {"role": "user", "content": user}]
        )
        without = _render(tokenizer, [{"role": "user", "content": user}])
    except Exception:  # noqa: BLE001 - a template that rejects system prompts adds none of its own
        with_system = without = ""
    at, user_at = with_system.find(marker), with_system.find(user)
    if 0 <= at < user_at:
        head, between = with_system[:at], with_system[at + len(marker) : user_at + len(user)]
        end = without.find(between)
        if without.startswith(head) and end > len(head):
            found = without[len(head) : end].strip() or None
    _DEFAULT_SYSTEMS[template] = found
    return found


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """The prompt for generating the next assistant reply, rendered the way training rendered its rows."""
    msgs, _ = prepare_messages(
        tokenizer, [{"role": m.get("role"), "content": m.get("content") or ""} for m in messages]
    )
    return _render(tokenizer, msgs, True, **render_kwargs(tokenizer, msgs))


def strip_reasoning(text: str) -> str:
    """The answer without its <think>...</think> block (what evaluation scores). A reply that starts inside
    the block (the prompt opened it) is cut after the closing tag."""
    stripped = text.lstrip()
    if stripped.startswith("<think>") and "</think>" in stripped:
        return stripped.split("</think>", 1)[1].lstrip()
    if "</think>" in text and "<think>" not in text:
        return text.split("</think>", 1)[1].lstrip()
    return text


_SPECIALS: dict[int, tuple[Any, Any]] = {}


def _specials(tokenizer: Any) -> Any:
    """A regex matching the tokenizer's added tokens (longest first), or None."""
    cached = _SPECIALS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    added = [t for t in tokenizer.get_added_vocab() if t.strip()]
    pattern = (
        re.compile("|".join(re.escape(t) for t in sorted(added, key=len, reverse=True))) if added else None
    )
    _SPECIALS[id(tokenizer)] = (tokenizer, pattern)
    return pattern


def _end_of_turn(tokenizer: Any, text: str, end: int) -> int:
    """Extend a reply's span over the end-of-turn token the template emits right after it (only whitespace
    between)."""
    specials = _specials(tokenizer)
    found = specials.search(text, end) if specials is not None else None
    if found is not None and not text[end : found.start()].strip():
        return found.end()
    return end


def _last_special_end(tokenizer: Any, text: str, start: int, end: int) -> int:
    """For a final reply located without sentinels: stop after its end-of-turn token, the first added token
    after which only added tokens and whitespace follow (e.g. not after Phi-3's trailing eos)."""
    specials = _specials(tokenizer)
    if specials is None:
        return end
    for match in specials.finditer(text, start, end):
        if not specials.sub("", text[match.end() : end]).strip():
            return match.end()
    return end


def assistant_spans(
    tokenizer: Any, messages: list[dict[str, Any]], **kwargs: Any
) -> tuple[str, list[tuple[int, int]]]:
    """The conversation rendered by the model's chat template and the character spans of every assistant
    turn: the reply and the end-of-turn token the template emits after it. `messages` are used as given
    (see prepare_messages)."""
    kwargs = kwargs or render_kwargs(tokenizer, messages)
    full = _render(tokenizer, messages, **kwargs)
    turns = [k for k, m in enumerate(messages) if m.get("role") == "assistant"]
    found: dict[int, tuple[int | None, int | None]] = {}
    for strip in (False, True):
        marked = [
            {
                **m,
                "content": _start(k)
                + (str(m.get("content") or "").strip() if strip else str(m.get("content") or ""))
                + _end(k),
            }
            if k in turns
            else m
            for k, m in enumerate(messages)
        ]
        try:
            text = _render(tokenizer, marked, **kwargs)
        except Exception:  # noqa: BLE001 - the plain render worked; fall back to prefixes
            break
        if _SENTINEL.sub("", text) != full:
            continue
        plain, shift = {}, 0
        for match in _SENTINEL.finditer(text):
            plain[match.group()] = match.start() - shift
            shift += len(match.group())
        found = {k: (plain.get(_start(k)), plain.get(_end(k))) for k in turns}
        break
    spans: list[tuple[int, int]] = []
    floor = 0
    for k in turns:
        start, end = found.get(k, (None, None))
        if start is None:
            try:
                prefix = _render(tokenizer, messages[:k], generation_prompt=True, **kwargs) if k else ""
            except Exception:  # noqa: BLE001
                prefix = None
            if prefix is not None and full.startswith(prefix) and len(prefix) >= floor:
                start = len(prefix)
        if end is None and k == turns[-1] and start is not None:
            end = len(full.rstrip())
            end = _last_special_end(tokenizer, full, start, end)
        if start is None or end is None or end <= start:
            continue
        if found.get(k, (None, None))[1] is not None:
            end = _end_of_turn(tokenizer, full, end)
        spans.append((start, end))
        floor = end
    return full, spans


def tokenize_conversation(
    tokenizer: Any, messages: list[dict[str, Any]], max_length: int | None = None, assistant_only: bool = True
) -> Tokenized:
    """Token ids of the conversation as the model's template renders it (system prompt folded where the
    template cannot keep it) and the mask of trained tokens."""
    msgs, _ = prepare_messages(tokenizer, messages)
    text, spans = assistant_spans(tokenizer, msgs)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    mask: list[int] = []
    for start, end in enc["offset_mapping"]:
        inside = any(start < e and end > s for s, e in spans) if end > start else False
        mask.append(1 if inside or not assistant_only else 0)
    if max_length is not None and len(ids) > max_length:
        ids, mask = ids[:max_length], mask[:max_length]
    return Tokenized(ids, mask)


def zero_trained_reason(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tok: Tokenized | None,
    max_length: int | None,
    error: str = "",
) -> str:
    """Why a row trains no token, in plain words."""
    if error:
        return f"the chat template cannot render it ({error})"
    if not any(m.get("role") == "assistant" and str(m.get("content") or "").strip() for m in messages):
        return "it has no assistant reply with text"
    if tok is not None and max_length is not None and len(tok.input_ids) >= max_length:
        return f"cut by max length: its first reply starts after token {max_length}"
    return "the chat template does not show its assistant replies"


@dataclass
class RowProbe:
    """One row through the training tokenization: token count, trained tokens, why none (if none)."""

    index: int
    id: str
    tokens: int
    trained: int
    reason: str = ""
    folded: bool = False
    tokenized: Tokenized | None = field(default=None, repr=False)  # the whole row (before max length)


def probe_row(
    tokenizer: Any, messages: list[dict[str, Any]], max_length: int | None, index: int = 0, row_id: str = ""
) -> RowProbe:
    msgs = [{"role": m.get("role"), "content": m.get("content") or ""} for m in messages]
    folded = bool(msgs and msgs[0].get("role") == "system" and system_mode(tokenizer) != "keeps")
    try:
        full = tokenize_conversation(tokenizer, msgs)
    except Exception as exc:  # noqa: BLE001 - template errors are the row's problem, reported
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        return RowProbe(
            index, row_id, 0, 0, zero_trained_reason(tokenizer, msgs, None, max_length, first), folded
        )
    cut = (
        full
        if max_length is None
        else Tokenized(full.input_ids[:max_length], full.assistant_mask[:max_length])
    )
    trained = sum(cut.assistant_mask)
    reason = ""
    if not trained:
        reason = zero_trained_reason(tokenizer, msgs, full if any(full.assistant_mask) else None, max_length)
    return RowProbe(index, row_id, len(full.input_ids), trained, reason, folded, full)


def untrained_rows_error(probes: list[RowProbe], limit: int = 5) -> str:
    """The one-line refusal naming the rows that would train nothing."""
    bad = [p for p in probes if not p.trained]
    shown = "; ".join(f"{p.id or f'row {p.index + 1}'} ({p.reason})" for p in bad[:limit])
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return (
        f"{len(bad)} of {len(probes)} rows would train nothing: {shown}{more}. "
        "Fix or remove them, or raise max length."
    )
