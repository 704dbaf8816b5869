"""Merged export: reload the base model unquantized, apply the adapter, merge, save sharded safetensors.

The base is never the 4-bit training copy: it is loaded again from its own folder in bf16/fp16 on a GPU
(fp32 on the CPU), so the LoRA deltas are added to full-precision weights. The folder written here loads
with plain `transformers` (no Whetstone, no PEFT): config, generation config, tokenizer and chat template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import loader
from core.errors import UserError
from core.export.adapter import require_adapter
from core.loader import compute_dtype, pick_device
from core.progress import ProgressFn, StopFn, check_stop, no_progress
from core.runs import RunFolder

__all__ = ["compute_dtype", "pick_device", "load_tokenizer", "load_peft_model", "merge_run", "base_model_dir"]

MAX_SHARD_SIZE = "2GB"
_DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class MergeResult:
    path: Path
    base_dir: Path
    dtype: str
    device: str
    files: list[Path]


def base_save_dtype(base_dir: Path) -> str | None:
    """The dtype the base model was published in (config.json `dtype`/`torch_dtype`)."""
    try:
        config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("dtype") or config.get("torch_dtype")
    return value if value in _DTYPES else None


def base_model_dir(run: RunFolder, progress: ProgressFn = no_progress) -> Path:
    from core.models import resolve_base_model

    return resolve_base_model(run.base_model(), progress=progress)


def load_tokenizer(run: RunFolder, base_dir: Path) -> Any:
    """The tokenizer the run trained with (saved beside the adapter), else the base model's."""
    return loader.load_tokenizer(loader.adapter_tokenizer_source(run.adapter_dir, base_dir))


def load_peft_model(run: RunFolder, base_dir: Path, device: str, dtype: Any = None) -> Any:
    """The base model (unquantized) with the run's adapter applied, not merged yet: the same load as
    Evaluate's (core.loader.load_with_adapter)."""
    model, _ = loader.load_with_adapter(base_dir, require_adapter(run), device=device, dtype=dtype)
    return model


# Tokenizer files transformers 5 no longer writes on save (it saves tokenizer.json only) but converters read:
# llama.cpp's converter builds SentencePiece vocabularies (Gemma, Llama 2, Mistral, Phi-3) from tokenizer.model.
_TOKENIZER_SOURCE_FILES = ("tokenizer.model", "tekken.json", "vocab.json", "merges.txt", "spiece.model")


def _added_tokens_decoder(tokenizer: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for token_id, token in sorted((getattr(tokenizer, "added_tokens_decoder", None) or {}).items()):
        out[str(int(token_id))] = {
            "content": str(token.content),
            "lstrip": bool(getattr(token, "lstrip", False)),
            "normalized": bool(getattr(token, "normalized", False)),
            "rstrip": bool(getattr(token, "rstrip", False)),
            "single_word": bool(getattr(token, "single_word", False)),
            "special": bool(getattr(token, "special", False)),
        }
    return out


def keep_tokenizer_files(source: Path, base_dir: Path, out_dir: Path, tokenizer: Any = None) -> list[str]:
    """Copy the base's tokenizer source files the save did not write, keep the base's tokenizer class
    (llama.cpp's converter picks the vocabulary reader by it, e.g. Phi-4's GPT2Tokenizer), and keep
    `added_tokens_decoder` in tokenizer_config.json: transformers 5 no longer writes it, and llama.cpp's
    converter reads it to mark chat tokens (Gemma's <start_of_turn>) as special; without it llama.cpp
    spells "<start_of_turn>" out letter by letter."""
    import shutil

    copied = []
    for name in _TOKENIZER_SOURCE_FILES:
        for folder in (source, base_dir):
            if (folder / name).is_file() and not (out_dir / name).exists():
                shutil.copy2(folder / name, out_dir / name)
                copied.append(name)
                break
    saved_file = out_dir / "tokenizer_config.json"
    try:
        base_config = json.loads((base_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        base_config = {}
    try:
        saved = json.loads(saved_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return copied
    changed = False
    base_cls = base_config.get("tokenizer_class")
    if base_cls and saved.get("tokenizer_class") != base_cls:
        saved["tokenizer_class"] = base_cls
        changed = True
    if not saved.get("added_tokens_decoder"):
        added = _added_tokens_decoder(tokenizer) if tokenizer is not None else {}
        added = added or base_config.get("added_tokens_decoder") or {}
        if added:
            saved["added_tokens_decoder"] = added
            changed = True
    if changed:
        saved_file.write_text(json.dumps(saved, indent=2, ensure_ascii=False), encoding="utf-8")
    return copied


def merge_run(
    run: RunFolder,
    out_dir: Path,
    *,
    device: str | None = None,
    save_dtype: str | None = None,
    progress: ProgressFn = no_progress,
    should_stop: StopFn | None = None,
    peft_model: Any = None,
) -> MergeResult:
    """Merge the run's adapter into its base model and save it (sharded safetensors) in `out_dir`."""
    import torch
    from transformers import GenerationConfig

    device = pick_device(device)
    progress(0.02, "Locating the base model")
    base_dir = base_model_dir(run)
    tokenizer = load_tokenizer(run, base_dir)
    check_stop(should_stop)
    progress(0.1, f"Loading the base model unquantized on {device}")
    model = peft_model if peft_model is not None else load_peft_model(run, base_dir, device)
    check_stop(should_stop)
    progress(0.45, "Merging the adapter")
    with torch.no_grad():
        merged = model.merge_and_unload()
    dtype_name = save_dtype or base_save_dtype(base_dir) or str(compute_dtype(device)).replace("torch.", "")
    if dtype_name not in _DTYPES:
        raise UserError(f"Unknown dtype {dtype_name!r}; choose one of {', '.join(_DTYPES)}.")
    merged.to(getattr(torch, dtype_name))
    check_stop(should_stop)
    progress(0.6, "Saving safetensors")
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.config.use_cache = True
    merged.save_pretrained(out_dir, safe_serialization=True, max_shard_size=MAX_SHARD_SIZE)
    check_stop(should_stop)
    progress(0.85, "Saving tokenizer, chat template and generation config")
    tokenizer.save_pretrained(out_dir)
    source = run.adapter_dir if (run.adapter_dir / "tokenizer_config.json").exists() else base_dir
    keep_tokenizer_files(source, base_dir, out_dir, tokenizer)
    if tokenizer.chat_template and not (out_dir / "chat_template.jinja").exists():
        (out_dir / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")
    try:
        generation = GenerationConfig.from_pretrained(base_dir)
    except OSError:
        generation = GenerationConfig.from_model_config(merged.config)
    eos = generation.eos_token_id
    eos_ids = list(eos) if isinstance(eos, list) else ([eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
        eos_ids.append(tokenizer.eos_token_id)
    if eos_ids:
        generation.eos_token_id = eos_ids[0] if len(eos_ids) == 1 else eos_ids
    if generation.pad_token_id is None and tokenizer.pad_token_id is not None:
        generation.pad_token_id = tokenizer.pad_token_id
    generation.save_pretrained(out_dir)
    progress(1.0, "Merged model saved")
    files = sorted(p for p in out_dir.iterdir() if p.is_file())
    return MergeResult(out_dir, base_dir, dtype_name, device, files)
