"""The dataset snapshot a run trains on, and its tokenization with the base model's own chat template.

Snapshot rows (RUN_DIR/dataset.jsonl): {"id", "messages", "split"} with split in train|validation|test.
Tokenization marks exactly the assistant turns (their content and the end-of-turn token) as trained tokens.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

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


@dataclass
class Tokenized:
    input_ids: list[int]
    assistant_mask: list[int]


def _render(tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool = False) -> str:
    return str(
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    )


def assistant_spans(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
    """The conversation rendered by the model's chat template and the character spans of assistant turns.

    A span covers what the model must produce for that turn: from the end of the generation prompt to the end
    of the turn's end-of-turn marker (trailing whitespace excluded).
    """
    full = _render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    for k, msg in enumerate(messages):
        if msg.get("role") != "assistant":
            continue
        prefix = _render(tokenizer, messages[:k], generation_prompt=True) if k else ""
        upto = _render(tokenizer, messages[: k + 1])
        if not full.startswith(upto) or not upto.startswith(prefix):
            # A template that rewrites earlier turns (e.g. drops reasoning): train the final reply only.
            if k == len(messages) - 1:
                prefix = _render(tokenizer, messages[:k], generation_prompt=True)
                if full.startswith(prefix):
                    spans.append((len(prefix), len(full.rstrip())))
            continue
        end = len(upto.rstrip())
        if end > len(prefix):
            spans.append((len(prefix), end))
    return full, spans


def tokenize_conversation(
    tokenizer: Any, messages: list[dict[str, Any]], max_length: int | None = None, assistant_only: bool = True
) -> Tokenized:
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    mask: list[int] = []
    for start, end in enc["offset_mapping"]:
        inside = any(s <= start < e for s, e in spans) if end > start else False
        mask.append(1 if inside or not assistant_only else 0)
    if max_length is not None and len(ids) > max_length:
        ids, mask = ids[:max_length], mask[:max_length]
    return Tokenized(ids, mask)


def build_datasets(
    tokenizer: Any, rows: list[dict[str, Any]], max_length: int, assistant_only: bool
) -> tuple[Any, Any, dict[str, int]]:
    """(train Dataset, validation Dataset or None, stats) with columns input_ids + assistant_masks."""
    from datasets import Dataset

    out: dict[str, dict[str, list[Any]]] = {
        "train": {"input_ids": [], "assistant_masks": []},
        "validation": {"input_ids": [], "assistant_masks": []},
    }
    stats = {"train": 0, "validation": 0, "dropped": 0, "truncated": 0, "train_tokens": 0}
    for row in rows:
        split = row.get("split") or "train"
        if split not in out:
            continue
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in row["messages"]]
        tok = tokenize_conversation(tokenizer, messages, None, assistant_only)
        if len(tok.input_ids) > max_length:
            stats["truncated"] += 1
            tok = Tokenized(tok.input_ids[:max_length], tok.assistant_mask[:max_length])
        if not any(tok.assistant_mask):
            stats["dropped"] += 1
            continue
        out[split]["input_ids"].append(tok.input_ids)
        out[split]["assistant_masks"].append(tok.assistant_mask)
        stats[split] += 1
        if split == "train":
            stats["train_tokens"] += len(tok.input_ids)
    if not out["train"]["input_ids"]:
        raise UserError(
            "No training examples are left (check the splits and that replies fit in max length)."
        )
    train = Dataset.from_dict(out["train"])
    val = Dataset.from_dict(out["validation"]) if out["validation"]["input_ids"] else None
    return train, val, stats
