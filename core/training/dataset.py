"""The dataset snapshot a run trains on, and its tokenization with the base model's own chat template
(core.data.chat_template, whose names are re-exported here).

Snapshot rows (RUN_DIR/dataset.jsonl): {"id", "messages", "split"} with split in train|validation|test.
Tokenization marks exactly the assistant turns (their content and the end-of-turn token) as trained tokens.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson

from core.data.chat_template import (
    FOLD_NOTE as FOLD_NOTE,
)
from core.data.chat_template import (
    RowProbe as RowProbe,
)
from core.data.chat_template import (
    Tokenized as Tokenized,
)
from core.data.chat_template import (
    assistant_spans as assistant_spans,
)
from core.data.chat_template import (
    carries_reasoning as carries_reasoning,
)
from core.data.chat_template import (
    fold_note as fold_note,
)
from core.data.chat_template import (
    prepare_messages as prepare_messages,
)
from core.data.chat_template import (
    probe_row as probe_row,
)
from core.data.chat_template import (
    render_kwargs as render_kwargs,
)
from core.data.chat_template import (
    render_prompt as render_prompt,
)
from core.data.chat_template import (
    strip_reasoning as strip_reasoning,
)
from core.data.chat_template import (
    system_mode as system_mode,
)
from core.data.chat_template import (
    tokenize_conversation as tokenize_conversation,
)
from core.data.chat_template import (
    untrained_rows_error as untrained_rows_error,
)
from core.data.chat_template import (
    zero_trained_reason as zero_trained_reason,
)
from core.errors import UserError


def write_snapshot(
    source: str | Path, out_path: Path, *, val_ratio: float = 0.1, test_ratio: float = 0.1, seed: int = 0
) -> str:
    """Pin `source` (a data file or a .wsdb workspace) as out_path; returns the sha256 (also written beside)."""
    src = Path(source).expanduser()
    if not src.exists():
        raise UserError(f"Dataset not found: {src}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sha_file = out_path.with_name(out_path.stem + ".sha256")
    if src.suffix == ".wsdb":
        # The workspace writes its live rows ({id, messages, split, tags}); splits are then kept or assigned
        # exactly as for a data file, so every run folder holds the same {id, messages, split} rows.
        try:
            from core.data.workspace import DatasetWorkspace
        except ImportError:
            raise UserError(
                "Workspaces (.wsdb) cannot be read by this version; export the data to JSONL."
            ) from None
        import tempfile

        workspace = DatasetWorkspace.open(src)
        with tempfile.TemporaryDirectory(prefix="snapshot-", dir=out_path.parent) as tmp:
            raw = Path(tmp) / "workspace.jsonl"
            try:
                workspace.write_snapshot(raw)
            finally:
                close = getattr(workspace, "close", None)
                if close:
                    close()
            return write_snapshot(raw, out_path, val_ratio=val_ratio, test_ratio=test_ratio, seed=seed)
    from core.data.formats import read_dataset
    from core.data.splits import assign_splits

    result = read_dataset(src)
    examples = [e for e in result.examples if any(m.role == "assistant" and m.content for m in e.messages)]
    if not examples:
        raise UserError(f"{src} has no usable examples (each needs at least one assistant reply).")
    if len(examples) < len(result.examples) or result.errors:
        pass  # bad rows are reported by `whetstone data check`; the snapshot holds the valid ones
    seen: set[str] = set()
    for n, ex in enumerate(examples):
        rid = str(ex.extra.get("id") or (ex.original or {}).get("id") or "") or f"ex{n:05d}"
        while rid in seen:
            rid = f"{rid}_{n}"
        seen.add(rid)
        ex.id = rid
        if ex.split is None:
            split = (ex.original or {}).get("split")
            ex.split = split if split in ("train", "validation", "test") else None
    if not any(ex.split for ex in examples):
        train_ratio = max(0.0, 1.0 - val_ratio - test_ratio)
        mapping = assign_splits(examples, (train_ratio, val_ratio, test_ratio), seed=seed)
        for ex in examples:
            ex.split = mapping[ex.id]
    else:
        for ex in examples:
            ex.split = ex.split or "train"
    lines = [
        orjson.dumps({"id": ex.id, "messages": ex.messages_dicts(), "split": ex.split}) for ex in examples
    ]
    data = b"\n".join(lines) + b"\n"
    from core.atomic import atomic_write_bytes

    atomic_write_bytes(out_path, data)
    digest = hashlib.sha256(data).hexdigest()
    sha_file.write_text(f"{digest}  {out_path.name}\n", encoding="utf-8")
    return digest


def build_datasets(
    tokenizer: Any, rows: list[dict[str, Any]], max_length: int, assistant_only: bool
) -> tuple[Any, Any, dict[str, int]]:
    """(train Dataset, validation Dataset or None, stats) with columns input_ids + assistant_masks."""
    from datasets import Dataset

    out: dict[str, dict[str, list[Any]]] = {
        "train": {"input_ids": [], "assistant_masks": []},
        "validation": {"input_ids": [], "assistant_masks": []},
    }
    stats = {"train": 0, "validation": 0, "dropped": 0, "truncated": 0, "train_tokens": 0, "folded": 0}
    probes: list[RowProbe] = []
    for n, row in enumerate(rows):
        split = row.get("split") or "train"
        if split not in out:
            continue
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in row["messages"]]
        probe = probe_row(tokenizer, messages, max_length, n, str(row.get("id") or ""))
        probes.append(probe)
        stats["folded"] += int(probe.folded)
        if not probe.trained:
            stats["dropped"] += 1
            continue
        tok = probe.tokenized if assistant_only and probe.tokenized is not None else None
        if tok is None:  # the probe's tokenization is reused: each row is rendered once
            tok = tokenize_conversation(tokenizer, messages, None, assistant_only)
        if len(tok.input_ids) > max_length:
            stats["truncated"] += 1
            tok = Tokenized(tok.input_ids[:max_length], tok.assistant_mask[:max_length])
        out[split]["input_ids"].append(tok.input_ids)
        out[split]["assistant_masks"].append(tok.assistant_mask)
        stats[split] += 1
        if split == "train":
            stats["train_tokens"] += len(tok.input_ids)
    if stats["dropped"]:
        raise UserError(untrained_rows_error(probes))
    if not out["train"]["input_ids"]:
        raise UserError(
            "No training examples are left (check the splits and that replies fit in max length)."
        )
    train = Dataset.from_dict(out["train"])
    val = Dataset.from_dict(out["validation"]) if out["validation"]["input_ids"] else None
    return train, val, stats
