"""Sentence embeddings for near-duplicate search.

`Embedder` wraps a local sentence-transformers folder (default: the embedded `all-minilm-l6-v2`) and runs
the model's own modules (so any pooling / dense / normalise pipeline of a local folder works), but batches
rows itself: rows are sorted by token length and cut into batches of (nearly) equal length under a token
budget, so almost no padding is computed, under `torch.inference_mode`.

Precision:
- "fp32": the model as trained (reference).
- "bf16" (CPU with AVX512-BF16/AMX) or "fp16" (CUDA): the linear layers run in reduced precision while
  layer norms, softmax and the residual stream stay fp32 (autocast). About 2x faster on CPU; scores move by
  a few thousandths, so the finder re-scores pairs near the threshold with fp32 embeddings
  (`NearDuplicateFinder`). "auto" picks the fast one where the hardware has it.

Texts longer than the model's limit are truncated to it (as sentence-transformers does) and counted.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError, WhetstoneError
from core.progress import ProgressFn, StopFn, check_stop, no_progress

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class EmbedResult:
    vectors: np.ndarray  # float32 [n, dim], unit length
    truncated: list[int] = field(default_factory=list)  # indices of rows cut to the model's limit
    precision: str = "fp32"
    seconds: float = 0.0  # time spent embedding (model loading excluded)


def _torch() -> Any:
    import torch

    return torch


class Embedder:
    """Embeds texts with a local sentence-transformers model. The model loads on first use."""

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        precision: str = "auto",
        device: str | None = None,
        token_budget: int = 8192,
        max_batch: int = 256,
        registry: Any = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise UserError(f"Unknown precision '{precision}' (choose from {', '.join(PRECISIONS)}).")
        from core.models import resolve_embedding_model

        self.model_ref = model
        self.folder: Path = resolve_embedding_model(model, registry=registry)
        if not (self.folder / "config.json").exists() and not (self.folder / "modules.json").exists():
            raise UserError(f"{self.folder} is not a sentence-transformers model folder (no config.json).")
        self.requested_precision = precision
        self._device = device
        self.token_budget = token_budget
        self.max_batch = max_batch
        self._models: dict[str, Any] = {}

    # --- identity ------------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """Cache key of the model: its registry id, or the resolved folder for a path."""
        ref = Path(self.model_ref).expanduser()
        return str(ref.resolve()) if ref.exists() else self.model_ref

    @property
    def device(self) -> str:
        if self._device is None:
            from core.loader import pick_device

            self._device = pick_device()
        return self._device

    @property
    def fast_precision(self) -> str:
        """The reduced precision this hardware runs faster than fp32 ("fp32" when there is none)."""
        if self.device.startswith("cuda"):
            return "fp16"
        torch = _torch()
        try:
            if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return "bf16"
        except (AttributeError, RuntimeError):
            pass
        return "fp32"

    @property
    def precision(self) -> str:
        """The precision `embed()` uses by default."""
        if self.requested_precision == "auto":
            return self.fast_precision
        return self.requested_precision

    # --- loading -------------------------------------------------------------------------------------
    def _load(self, precision: str) -> Any:
        if precision in self._models:
            return self._models[precision]
        if "fp32" not in self._models:
            from core.offline import enforce_offline

            enforce_offline()
            try:
                import transformers
                from sentence_transformers import SentenceTransformer

                transformers.logging.disable_progress_bar()

                st = SentenceTransformer(
                    str(self.folder), device=self.device, local_files_only=True, trust_remote_code=False
                )
            except Exception as exc:  # a broken folder: one line for the user
                raise UserError(f"Cannot load the embedding model in {self.folder}: {exc}") from None
            st.float().eval()  # weights stored in half precision still compute in fp32 here
            self._models["fp32"] = st
        if precision != "fp32":
            torch = _torch()
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            reduced = copy.deepcopy(self._models["fp32"])
            for module in reduced.modules():  # only the matrix products go to reduced precision
                if isinstance(module, torch.nn.Linear):
                    module.to(dtype)
            self._models[precision] = reduced
        return self._models[precision]

    @property
    def max_seq_length(self) -> int:
        st = self._load("fp32")
        limit = st.max_seq_length or getattr(st.tokenizer, "model_max_length", 512)
        return int(min(limit, 100_000))

    @property
    def dimension(self) -> int:
        st = self._load("fp32")
        getter = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(getter())

    # --- embedding -----------------------------------------------------------------------------------
    def truncated_rows(self, texts: Sequence[str]) -> list[int]:
        """Indices of texts longer than the model's token limit (checked with the tokenizer only where
        the text's UTF-8 length could exceed it)."""
        st = self._load("fp32")
        limit = self.max_seq_length
        suspects = [i for i, t in enumerate(texts) if 4 * len(t) + 2 > limit]
        if not suspects:
            return []
        out: list[int] = []
        quiet = logging.getLogger("transformers.tokenization_utils_base")  # "longer than the maximum"
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            for start in range(0, len(suspects), 256):
                part = suspects[start : start + 256]
                encoded = st.tokenizer([texts[i] for i in part], add_special_tokens=True, truncation=False)
                out += [i for i, ids in zip(part, encoded["input_ids"], strict=True) if len(ids) > limit]
        finally:
            quiet.setLevel(level)
        return out

    def embed(
        self,
        texts: Sequence[str],
        precision: str | None = None,
        progress: ProgressFn = no_progress,
        should_stop: StopFn | None = None,
        chunk_rows: int = 2048,
    ) -> EmbedResult:
        """Unit-length float32 embeddings of `texts` (in order)."""
        precision = precision or self.precision
        if precision == "auto":
            precision = self.fast_precision
        torch = _torch()
        st = self._load(precision)
        n = len(texts)
        dim = self.dimension
        out = np.zeros((n, dim), dtype=np.float32)
        if n == 0:
            return EmbedResult(out, [], precision)
        start = time.monotonic()
        limit = self.max_seq_length
        at_limit: list[int] = []  # rows whose (truncated) length reached the limit: maybe cut
        order = sorted(range(n), key=lambda i: len(texts[i]))
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        done = 0
        with torch.inference_mode():
            for c0 in range(0, n, chunk_rows):
                check_stop(should_stop)
                chunk = order[c0 : c0 + chunk_rows]
                prepare = getattr(st, "preprocess", None) or st.tokenize
                features = prepare([texts[i] for i in chunk])
                mask = features["attention_mask"]
                lengths = mask.sum(dim=1).tolist()
                at_limit += [chunk[r] for r, length in enumerate(lengths) if length >= limit]
                inner = sorted(range(len(chunk)), key=lambda r: lengths[r])
                tensors = {k: v.to(self.device) for k, v in features.items() if isinstance(v, torch.Tensor)}
                chunk_out = torch.empty((len(chunk), dim), dtype=torch.float32, device=self.device)
                for batch in self._batches(inner, lengths):
                    check_stop(should_stop)
                    width = int(max(lengths[r] for r in batch))
                    index = torch.tensor(batch, dtype=torch.long, device=self.device)
                    sub = {k: (v[index, :width] if v.dim() == 2 else v[index]) for k, v in tensors.items()}
                    if autocast_dtype is not None:
                        with torch.autocast(device_type, dtype=autocast_dtype):
                            emb = st(sub)["sentence_embedding"]
                    else:
                        emb = st(sub)["sentence_embedding"]
                    chunk_out[index] = torch.nn.functional.normalize(emb.float(), dim=-1)
                    done += len(batch)
                    progress(done / n, f"Reading what each example means: {done:,} of {n:,}")
                out[chunk] = chunk_out.cpu().numpy()
        suspects = self.truncated_rows([texts[i] for i in at_limit]) if at_limit else []
        truncated = sorted(at_limit[k] for k in suspects)
        if not np.isfinite(out).all():
            raise WhetstoneError("The embedding model produced invalid numbers (NaN/inf) for some rows.")
        return EmbedResult(out, truncated, precision, time.monotonic() - start)

    def _batches(self, rows: list[int], lengths: list[int]) -> list[list[int]]:
        """Consecutive rows (sorted by length) under the token budget; a batch also ends where the length
        changes once it holds enough rows, so padding stays near zero."""
        batches: list[list[int]] = []
        current: list[int] = []
        for r in rows:
            length = lengths[r]
            if current:
                too_big = (len(current) + 1) * length > self.token_budget or len(current) >= self.max_batch
                length_step = length != lengths[current[-1]] and len(current) >= 32
                if too_big or length_step:
                    batches.append(current)
                    current = []
            current.append(r)
        if current:
            batches.append(current)
        return batches
