"""Dataset file formats: detect, read into canonical Examples, write back.

Formats: alpaca, sharegpt, messages, prompt-completion. Every bad record is reported with its 1-based line
number and a reason; nothing is dropped silently.

(Foundation version: JSONL only. The Data issue extends it to .json/.csv/.parquet, confidence, writers.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.data.example import ROLES, Example, Message
from core.errors import UserError

FORMATS = ("alpaca", "sharegpt", "messages", "prompt-completion")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function": "tool",
    "tool": "tool",
    "observation": "tool",
    "function_call": "assistant",
}


class RecordError(ValueError):
    """A record that cannot become an Example (the message says why)."""


@dataclass
class LineError:
    line: int
    message: str
    raw: str = ""

    def public(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


@dataclass
class ReadResult:
    format: str
    examples: list[Example] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    confidence: float = 1.0


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
        raise RecordError(f"'{what}' must be text, got {type(value).__name__}")
    return value


def record_to_example(record: Any, fmt: str) -> Example:
    if not isinstance(record, dict):
        raise RecordError(f"expected a JSON object, got {type(record).__name__}")
    messages: list[Message] = []
    if fmt == "alpaca":
        for key in ("instruction", "output"):
            if key not in record:
                raise RecordError(f"missing field '{key}'")
        instruction = _text(record["instruction"], "instruction")
        extra_input = _text(record.get("input") or "", "input")
        output = _text(record["output"], "output")
        if record.get("system"):
            messages.append(Message("system", _text(record["system"], "system")))
        user = instruction if not extra_input else f"{instruction}\n\n{extra_input}"
        if not user.strip() or not output.strip():
            raise RecordError("empty turn")
        messages += [Message("user", user), Message("assistant", output)]
        known = {"instruction", "input", "output", "system"}
    elif fmt == "sharegpt":
        turns = record.get("conversations")
        if not isinstance(turns, list) or not turns:
            raise RecordError("'conversations' must be a non-empty list")
        for i, turn in enumerate(turns, 1):
            if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
                raise RecordError(f"turn {i} needs 'from' and 'value'")
            role = SHAREGPT_ROLES.get(str(turn["from"]))
            if role is None:
                raise RecordError(f"turn {i}: unknown role '{turn['from']}'")
            extra = {k: v for k, v in turn.items() if k not in ("from", "value")}
            messages.append(Message(role, _text(turn["value"], f"turn {i} value"), extra))
        known = {"conversations"}
    elif fmt == "messages":
        turns = record.get("messages")
        if not isinstance(turns, list) or not turns:
            raise RecordError("'messages' must be a non-empty list")
        for i, turn in enumerate(turns, 1):
            if not isinstance(turn, dict) or "role" not in turn:
                raise RecordError(f"turn {i} needs 'role'")
            if turn["role"] not in ROLES:
                raise RecordError(f"turn {i}: unknown role '{turn['role']}'")
            content = turn.get("content")
            if content is None and not turn.get("tool_calls"):
                raise RecordError(f"turn {i}: missing content")
            if content is not None and not isinstance(content, str):
                raise RecordError(f"turn {i}: content must be text, got {type(content).__name__}")
            messages.append(Message.from_dict(turn))
        known = {"messages"}
    elif fmt == "prompt-completion":
        for key in ("prompt", "completion"):
            if key not in record:
                raise RecordError(f"missing field '{key}'")
        prompt, completion = _text(record["prompt"], "prompt"), _text(record["completion"], "completion")
        if not prompt.strip() or not completion.strip():
            raise RecordError("empty turn")
        messages = [Message("user", prompt), Message("assistant", completion)]
        known = {"prompt", "completion"}
    else:
        raise UserError(f"Unknown format '{fmt}' (choose from {', '.join(FORMATS)}).")
    if not any(m.role == "assistant" for m in messages):
        raise RecordError("no assistant turn")
    for i, m in enumerate(messages, 1):
        if not m.content.strip() and not m.extra.get("tool_calls"):
            raise RecordError(f"turn {i} ({m.role}) is empty")
    extra = {k: v for k, v in record.items() if k not in known}
    return Example(messages=messages, source_format=fmt, extra=extra, original=record)


def read_dataset(path: str | Path, fmt: str | None = None) -> ReadResult:
    """Read a JSONL file. Raises UserError when the file cannot be read at all."""
    file = Path(path)
    if not file.exists():
        raise UserError(f"File not found: {file}")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UserError(f"Cannot read {file}: {exc.strerror}") from exc
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    records: list[tuple[int, Any, str]] = []
    errors: list[LineError] = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            records.append((number, orjson.loads(raw), ""))
        except orjson.JSONDecodeError as exc:
            errors.append(LineError(number, f"invalid JSON: {exc}", raw[:200].decode("utf-8", "replace")))
    if fmt is None:
        votes: dict[str, int] = {}
        for _, rec, _ in records:
            f = detect_record_format(rec)
            if f:
                votes[f] = votes.get(f, 0) + 1
        if not votes:
            if not records and not errors:
                raise UserError(f"{file} is empty.")
            fmt = "messages"
            confidence = 0.0
        else:
            fmt = max(votes, key=lambda k: votes[k])
            confidence = votes[fmt] / max(1, len(records))
    else:
        confidence = 1.0
    result = ReadResult(fmt, errors=errors, confidence=confidence)
    for number, rec, _ in records:
        try:
            example = record_to_example(rec, fmt)
        except RecordError as exc:
            result.errors.append(LineError(number, str(exc)))
            continue
        example.line = number
        result.examples.append(example)
    result.errors.sort(key=lambda e: e.line)
    return result


def load_examples(path: str | Path, fmt: str | None = None) -> list[Example]:
    """The valid examples of a data file, in file order."""
    return read_dataset(path, fmt).examples
