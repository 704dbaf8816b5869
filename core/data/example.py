"""The canonical Example every format converts to and from."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

ROLES = ("system", "user", "assistant", "tool")
SPLITS = ("train", "validation", "test")


@dataclass
class Message:
    role: str
    content: str
    # Anything else the source turn carried (tool_calls, name, tool_call_id, weight, ...), kept as is.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        extra = {k: v for k, v in data.items() if k not in ("role", "content")}
        return cls(str(data["role"]), "" if data.get("content") is None else str(data["content"]), extra)


@dataclass
class Example:
    """One training example: a conversation plus curation metadata.

    `original` is the record exactly as it was read (kept so an unmodified row exports byte-for-byte the same
    keys and values); `extra` holds the source record's fields that no canonical field covers.
    """

    messages: list[Message]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    tags: list[str] = field(default_factory=list)
    split: str | None = None
    notes: str = ""
    source_format: str = "messages"
    extra: dict[str, Any] = field(default_factory=dict)
    original: dict[str, Any] | None = None
    line: int | None = None  # 1-based line/record number in the source file

    # --- views -------------------------------------------------------------------------------------
    @property
    def system(self) -> str:
        return "\n".join(m.content for m in self.messages if m.role == "system")

    def first(self, role: str) -> str:
        for m in self.messages:
            if m.role == role:
                return m.content
        return ""

    def last(self, role: str) -> str:
        for m in reversed(self.messages):
            if m.role == role:
                return m.content
        return ""

    def prompt_messages(self) -> list[Message]:
        """The conversation minus its final assistant turn (what a model is asked to continue)."""
        msgs = list(self.messages)
        while msgs and msgs[-1].role == "assistant":
            msgs.pop()
            break
        return msgs

    def text(self, roles: tuple[str, ...] = ROLES) -> str:
        return "\n".join(m.content for m in self.messages if m.role in roles)

    def content_hash(self) -> str:
        payload = orjson.dumps([m.to_dict() for m in self.messages], option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(payload).hexdigest()

    # --- serialisation -------------------------------------------------------------------------------
    def messages_dicts(self) -> list[dict[str, Any]]:
        return [m.to_dict() for m in self.messages]

    def to_record(self) -> dict[str, Any]:
        """The `messages` JSONL record used for training snapshots."""
        return {"messages": self.messages_dicts()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "messages": self.messages_dicts(),
            "tags": list(self.tags),
            "split": self.split,
            "notes": self.notes,
            "source_format": self.source_format,
            "extra": self.extra,
            "original": self.original,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Example:
        return cls(
            messages=[Message.from_dict(m) for m in data["messages"]],
            id=data.get("id") or uuid.uuid4().hex[:12],
            tags=list(data.get("tags") or []),
            split=data.get("split"),
            notes=data.get("notes") or "",
            source_format=data.get("source_format") or "messages",
            extra=dict(data.get("extra") or {}),
            original=data.get("original"),
        )

    @classmethod
    def chat(cls, *turns: tuple[str, str], **kwargs: Any) -> Example:
        """Build from (role, content) pairs: `Example.chat(("user", "hi"), ("assistant", "hello"))`."""
        return cls(messages=[Message(r, c) for r, c in turns], **kwargs)
