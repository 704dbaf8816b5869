"""Records <-> canonical Examples.

Which record format a JSON object is in; a record of a format as an Example (`RecordError` says why not); an
Example as a record of a format, given back as its original record while its content is unchanged; what an
edited example still lacks. Record formats: alpaca, sharegpt, messages (OpenAI/ChatML, tool calls kept),
prompt-completion. Files are read in core.data.readers and written in core.data.writers.
"""

from __future__ import annotations

import os
from typing import Any

from core.data.example import ROLES, SPLITS, Example, Message
from core.errors import UserError

FORMATS = ("alpaca", "sharegpt", "messages", "prompt-completion")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
    "function": "tool",
    "tool": "tool",
    "observation": "tool",
    "function_call": "assistant",
}
SHAREGPT_WRITE_ROLES = {"user": "human", "assistant": "gpt", "system": "system", "tool": "tool"}
# Top-level keys every format may carry that map onto Example's own fields.
META_KEYS = ("id", "tags", "split", "notes")
# CSV cells of these columns hold JSON (lists / objects).


class RecordError(ValueError):
    """A record that cannot become an Example (the message says why)."""


# --- detection -------------------------------------------------------------------------------------------
def detect_record_format(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "messages"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record or ("output" in record and "input" in record):
        return "alpaca"
    if "prompt" in record and "completion" in record:
        return "prompt-completion"
    return None


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"wrong type: '{what}' must be text, got {_type_name(value)}")
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", bool: "true/false", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _known_keys(fmt: str) -> set[str]:
    return {
        "alpaca": {"instruction", "input", "output", "system"},
        "sharegpt": {"conversations", "system"},
        "messages": {"messages"},
        "prompt-completion": {"prompt", "completion"},
    }[fmt]


def record_to_example(record: Any, fmt: str) -> Example:
    """One record of format `fmt` as an Example (raises RecordError with the reason)."""
    if not isinstance(record, dict):
        raise RecordError(f"wrong type: expected a JSON object, got {_type_name(record)}")
    messages: list[Message] = []
    if fmt == "alpaca":
        for key in ("instruction", "output"):
            if key not in record:
                raise RecordError(f"missing field '{key}'")
        instruction = _text(record["instruction"], "instruction")
        extra_input = record.get("input")
        extra_input = "" if extra_input is None else _text(extra_input, "input")
        output = _text(record["output"], "output")
        system = record.get("system")
        if system is not None and _text(system, "system"):
            messages.append(Message("system", system))
        user = instruction if not extra_input else f"{instruction}\n\n{extra_input}"
        if not user.strip():
            raise RecordError("empty turn: the instruction is empty")
        if not output.strip():
            raise RecordError("empty turn: the output is empty")
        messages += [Message("user", user), Message("assistant", output)]
    elif fmt == "sharegpt":
        if "conversations" not in record:
            raise RecordError("missing field 'conversations'")
        turns = record["conversations"]
        if not isinstance(turns, list):
            raise RecordError(f"wrong type: 'conversations' must be a list, got {_type_name(turns)}")
        if not turns:
            raise RecordError("empty conversation: 'conversations' has no turns")
        system = record.get("system")
        if system is not None and _text(system, "system"):
            messages.append(Message("system", system))
        for i, turn in enumerate(turns, 1):
            if not isinstance(turn, dict):
                raise RecordError(f"wrong type: turn {i} must be an object, got {_type_name(turn)}")
            for key in ("from", "value"):
                if key not in turn:
                    raise RecordError(f"missing field: turn {i} has no '{key}'")
            role = SHAREGPT_ROLES.get(turn["from"]) if isinstance(turn["from"], str) else None
            if role is None:
                raise RecordError(f"unknown role '{turn['from']}' in turn {i}")
            extra = {k: v for k, v in turn.items() if k not in ("from", "value")}
            messages.append(Message(role, _text(turn["value"], f"turn {i} value"), extra))
    elif fmt == "messages":
        if "messages" not in record:
            raise RecordError("missing field 'messages'")
        turns = record["messages"]
        if not isinstance(turns, list):
            raise RecordError(f"wrong type: 'messages' must be a list, got {_type_name(turns)}")
        if not turns:
            raise RecordError("empty conversation: 'messages' has no turns")
        for i, turn in enumerate(turns, 1):
            if not isinstance(turn, dict):
                raise RecordError(f"wrong type: turn {i} must be an object, got {_type_name(turn)}")
            if "role" not in turn:
                raise RecordError(f"missing field: turn {i} has no 'role'")
            if turn["role"] not in ROLES:
                raise RecordError(f"unknown role '{turn['role']}' in turn {i}")
            content = turn.get("content")
            if content is None and not turn.get("tool_calls"):
                raise RecordError(f"missing field: turn {i} has no 'content'")
            if content is not None and not isinstance(content, str):
                raise RecordError(f"wrong type: turn {i} content must be text, got {_type_name(content)}")
            if len(turn) == 2 and content is not None:
                messages.append(Message(turn["role"], content))  # the common case, without copying extras
            else:
                messages.append(Message.from_dict(turn))
    elif fmt == "prompt-completion":
        for key in ("prompt", "completion"):
            if key not in record:
                raise RecordError(f"missing field '{key}'")
        prompt, completion = _text(record["prompt"], "prompt"), _text(record["completion"], "completion")
        if not prompt.strip():
            raise RecordError("empty turn: the prompt is empty")
        if not completion.strip():
            raise RecordError("empty turn: the completion is empty")
        messages = [Message("user", prompt), Message("assistant", completion)]
    else:
        raise UserError(f"Unknown format '{fmt}' (choose from {', '.join(FORMATS)}).")
    if not any(m.role == "assistant" for m in messages):
        raise RecordError("no assistant turn")
    for i, m in enumerate(messages, 1):
        if (not m.content or m.content.isspace()) and not m.extra.get("tool_calls"):
            raise RecordError(f"empty turn: turn {i} ({m.role}) has no text")
    known = _known_keys(fmt)
    example = Example(messages=messages, id="", source_format=fmt, original=record)
    extras: dict[str, Any] = {}
    for key, value in record.items():
        if key in known:
            continue
        if key == "tags" and isinstance(value, list) and all(isinstance(t, str) for t in value):
            example.tags = list(value)
        elif key == "id" and isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            example.id = str(value)
        elif key == "split" and value in SPLITS:
            example.split = value
        elif key == "notes" and isinstance(value, str):
            example.notes = value
        else:
            extras[key] = value
    example.extra = extras
    if not example.id:
        example.id = _new_id()
    return example


def _new_id() -> str:
    return os.urandom(6).hex()


def validate_example(example: Example) -> list[str]:
    """Problems of an (edited) example, as short sentences; empty when it can be trained on."""
    problems: list[str] = []
    if not example.messages:
        return ["no turns"]
    for i, m in enumerate(example.messages, 1):
        if m.role not in ROLES:
            problems.append(f"turn {i}: unknown role '{m.role}'")
        if not m.content.strip() and not m.extra.get("tool_calls"):
            problems.append(f"turn {i} ({m.role}) is empty")
    roles = [m.role for m in example.messages]
    if "assistant" not in roles:
        problems.append("no assistant turn")
    elif roles[-1] != "assistant":
        problems.append("the last turn is not an assistant reply")
    if "system" in roles[1:]:
        problems.append("a system prompt after the first turn")
    return problems


# --- Example -> record -----------------------------------------------------------------------------------
def _meta_fields(example: Example, original: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    had = original or {}
    if example.tags or "tags" in had:
        out["tags"] = list(example.tags)
    if "id" in had:
        out["id"] = example.id
    if "split" in had:  # splits travel in training snapshots; a record gets one only if it had one
        out["split"] = example.split
    if example.notes or "notes" in had:
        out["notes"] = example.notes
    return out


def unchanged_original(example: Example, fmt: str) -> dict[str, Any] | None:
    """The example's original record when writing it in `fmt` would give back exactly that record."""
    original = example.original
    if not isinstance(original, dict) or example.source_format != fmt:
        return None
    try:
        again = record_to_example(original, fmt)
    except (RecordError, UserError):
        return None
    if again.messages_dicts() != example.messages_dicts() or again.extra != example.extra:
        return None
    if again.tags != example.tags or again.notes != example.notes:
        return None
    if "split" in original and again.split != example.split:
        return None
    if "id" in original and again.id != example.id:
        return None
    return original


def example_to_record(example: Example, fmt: str) -> dict[str, Any]:
    """The example as a record of `fmt`; RecordError when that format cannot express it."""
    original = unchanged_original(example, fmt)
    if original is not None:
        return original
    msgs = example.messages
    roles = [m.role for m in msgs]
    tooly = [i for i, m in enumerate(msgs, 1) if m.extra]
    record: dict[str, Any]
    if fmt == "messages":
        record = {"messages": example.messages_dicts()}
    elif fmt == "sharegpt":
        if any("tool_calls" in m.extra for m in msgs):
            raise RecordError("sharegpt cannot hold tool calls; export as messages")
        convo: list[dict[str, Any]] = []
        for m in msgs:
            if "from" in m.extra or "value" in m.extra:
                raise RecordError("a turn has fields named 'from'/'value' that sharegpt would overwrite")
            convo.append({"from": SHAREGPT_WRITE_ROLES[m.role], "value": m.content, **m.extra})
        record = {"conversations": convo}
    elif fmt == "alpaca":
        body = roles[1:] if roles[:1] == ["system"] else roles
        if body != ["user", "assistant"]:
            raise RecordError(
                f"alpaca holds one instruction and one reply; this example has turns {'/'.join(roles)}"
            )
        if tooly:
            raise RecordError("alpaca cannot hold per-turn fields such as tool calls or names")
        record = {"instruction": example.first("user"), "input": "", "output": example.last("assistant")}
        if roles[0] == "system":
            record["system"] = msgs[0].content
    elif fmt == "prompt-completion":
        if roles != ["user", "assistant"]:
            raise RecordError(
                f"prompt-completion holds one prompt and one completion; this example has turns {'/'.join(roles)}"
            )
        if tooly:
            raise RecordError("prompt-completion cannot hold per-turn fields such as tool calls or names")
        record = {"prompt": msgs[0].content, "completion": msgs[1].content}
    else:
        raise UserError(f"Unknown format '{fmt}' (choose from {', '.join(FORMATS)}).")
    clash = set(example.extra) & (set(record) | set(META_KEYS))
    if clash:
        raise RecordError(f"its extra field(s) {', '.join(sorted(clash))} clash with {fmt} fields")
    record.update(example.extra)
    record.update(_meta_fields(example, example.original if isinstance(example.original, dict) else None))
    return record


def formats_that_express(example: Example) -> list[str]:
    out = []
    for fmt in FORMATS:
        try:
            example_to_record(example, fmt)
        except RecordError:
            continue
        out.append(fmt)
    return out


def original_is_derivable(example: Example) -> bool:
    """True when writing the example in its source format rebuilds its original record exactly (then a
    store need not keep the original: dropping it changes nothing on export)."""
    original = example.original
    if not isinstance(original, dict):
        return original is None
    if example.source_format == "messages" and _plain_messages_record(original):
        return True
    example.original = None
    try:
        return example_to_record(example, example.source_format) == original
    except (RecordError, UserError):
        return False
    finally:
        example.original = original


def _plain_messages_record(record: dict[str, Any]) -> bool:
    """A messages record of plain {role, content} turns plus an optional non-empty tags list: exactly what
    writing its Example rebuilds (the common case, checked without rebuilding it)."""
    keys = record.keys()
    if len(keys) == 2:
        tags = record.get("tags")
        if not (isinstance(tags, list) and tags and all(isinstance(t, str) for t in tags)):
            return False
    elif len(keys) != 1:
        return False
    turns = record.get("messages")
    return isinstance(turns, list) and all(
        len(t) == 2 and isinstance(t.get("content"), str) and "role" in t for t in turns
    )
