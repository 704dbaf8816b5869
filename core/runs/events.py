"""The run event: one JSON object per line of RUN_DIR/events.jsonl (and of the worker's stdout).

`RunEvent` is the one definition of the schema. The worker writes events through `RunFolder.append_event`,
which refuses one that breaks it (`check_event`); the desktop reads them as `RunEvent`s; the CLI prints them
with `describe_event`. The fields of ARCHITECTURE.md (`EVENT_FIELDS`) come first, then the optional extras
the worker adds:

    time                  epoch seconds (every event)
    max_steps             step: the run's planned steps
    best                  eval/checkpoint: the best validation loss so far
    flag                  log: a red flag (overfitting | nan | exploding | length_drift; see core.runs.FLAG_LABELS)
    resumed_from          log: a resume restarts after this step; readers drop later steps (fold_resumed)
    samples, sample_stats log: sample answers after an evaluation (core/training/samples.py)
    status                done: finished | stopped
    exit_code, rank       error: the worker's exit code; the GPU of a multi-GPU run that failed first
    cancelled             error: written by a Cancel
    gpus, tokens_per_s_per_gpu, vram_gib_per_gpu    step: a multi-GPU run's processes and per-GPU figures
    sharded               log: the model is split across the GPUs (FSDP); the message says each one's share

Reading is lenient, so events written by any earlier version still read: a missing field is None (step 0,
message ""), a number written as text is read as a number, a value of the wrong kind is dropped, and keys this
version does not know are kept in `extra`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

EVENT_TYPES = ("step", "eval", "log", "checkpoint", "done", "error")


@dataclass(frozen=True)
class RunEvent:
    type: str
    step: int = 0
    epoch: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    vram_gib: float | None = None
    eta_s: float | None = None
    message: str = ""
    # extras
    time: float | None = None
    max_steps: int | None = None
    best: bool | None = None
    flag: str | None = None
    resumed_from: int | None = None
    samples: list[dict[str, Any]] | None = None
    sample_stats: dict[str, Any] | None = None
    status: str | None = None
    exit_code: int | None = None
    rank: int | None = None
    cancelled: bool | None = None
    gpus: int | None = None
    tokens_per_s_per_gpu: float | None = None
    vram_gib_per_gpu: list[float] | None = None
    sharded: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunEvent:
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            kind = _KINDS.get(name)
            if kind is None or value is None:
                continue
            read = _read(kind, value)
            if read is not None:
                kwargs[name] = read
        kwargs["type"] = str(data.get("type") or "log")
        kwargs["step"] = kwargs.get("step") or 0
        kwargs["message"] = str(data.get("message") or "")
        kwargs["extra"] = {k: v for k, v in data.items() if k not in _KINDS}
        return cls(**kwargs)


_FIELDS = [f for f in fields(RunEvent) if f.name != "extra"]
EVENT_FIELDS = tuple(f.name for f in _FIELDS[: [f.name for f in _FIELDS].index("message") + 1])
"""The fields of ARCHITECTURE.md's schema, in its order."""
_KINDS: dict[str, str] = {
    f.name: str(f.type).replace(" | None", "").split("[")[0] for f in _FIELDS
}  # name -> "str" | "int" | "float" | "bool" | "list" | "dict"
assert set(_KINDS.values()) <= {"str", "int", "float", "bool", "list", "dict"}, (
    "a RunEvent field of a new kind"
)


def _read(kind: str, value: Any) -> Any:
    """`value` as `kind`, or None when it is not one (a bool is no number; "1.5" is)."""
    if kind == "str":
        return value if isinstance(value, str) else None
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if kind in ("list", "dict"):
        return value if isinstance(value, list if kind == "list" else dict) else None
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if kind == "int":
        return int(number) if math.isfinite(number) else None
    return number


def check_event(event: Mapping[str, Any]) -> list[str]:
    """What in `event` breaks the schema (for the writer): an unknown type, a key the schema does not name, or a
    value of the wrong kind (None is fine: writers leave such keys out)."""
    problems = []
    if event.get("type") not in EVENT_TYPES:
        problems.append(f"type {event.get('type')!r} is not one of {', '.join(EVENT_TYPES)}")
    for key, value in event.items():
        kind = _KINDS.get(key)
        if kind is None:
            problems.append(f"unknown field {key!r}")
        elif value is not None and not _is_kind(kind, value):
            problems.append(f"{key}={value!r} should be {kind}")
    return problems


def _is_kind(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("list", "dict"):
        return isinstance(value, list if kind == "list" else dict)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    return isinstance(value, int | float)


def describe_event(event: RunEvent | Mapping[str, Any]) -> str | None:
    """The line `whetstone train` prints on stderr for an event (None: nothing to print)."""
    ev = event if isinstance(event, RunEvent) else RunEvent.from_dict(event)
    if ev.type == "step":
        parts = [
            f"step {ev.step}/{ev.max_steps if ev.max_steps is not None else '?'}",
            f"loss {ev.loss or 0:.4f}",
        ]
        if ev.tokens_per_s:
            parts.append(f"{ev.tokens_per_s:.0f} tok/s")
        if ev.vram_gib:
            parts.append(f"{ev.vram_gib:.1f} GiB")
        if ev.eta_s is not None:
            parts.append(f"ETA {ev.eta_s:.0f}s")
        return "  ".join(parts)
    if ev.type == "eval":
        return f"step {ev.step}: validation loss {ev.eval_loss or 0:.4f}"
    if ev.type in ("log", "checkpoint"):
        return ev.message
    if ev.type == "done":
        return ev.message or "done"
    return None
