"""Attention per document inside a packed row: the GPU engine's attention (issue 17).

With packing, TRL's padding-free collator flattens a micro-batch into one row of several documents, with
`position_ids` that restart at 0 at each document and `cu_seq_lens_q` (the documents' cumulative lengths).
transformers' "sdpa" path turns that into a dense (rows x rows) block-diagonal mask and runs one masked
SDPA over the whole flattened row: correct (no attention across document borders), but its cost grows with
the square of the row (8,192 tokens for 4 x 2,048) although the row holds ~20 short documents, and the mask
rules out the flash kernels (the profile in issue 17: a third of the step).

`packed_attention_forward` is registered in transformers' `AttentionInterface` under `IMPLEMENTATION`. On a
CUDA tensor it runs torch's variable-length flash attention over the documents (each attends only to itself,
causally; no mask is built), so its cost is the sum of the documents' squares. Everything else is handed to
transformers' own "sdpa" function unchanged: padded batches, generation with a KV cache, rows holding one
sequence (also a flattened row that holds a single document: SDPA's own causal kernel is faster there). On a CPU (tests) the packed case runs SDPA once per document, which is the reference semantics.

torch is imported inside functions (core/ imports no heavy library at import time).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from pathlib import Path
from typing import Any

IMPLEMENTATION = "whetstone_packed"
_REGISTERED = False


def document_bounds(position_ids: Any) -> tuple[Any, int]:
    """(cu_seqlens int32 of shape [n_docs + 1], longest document) of the flattened rows, from position_ids
    that restart at 0 at each document start. A row's first token always starts a document."""
    import torch

    pos = position_ids.reshape(position_ids.shape[0], -1)
    starts = pos == 0
    starts[:, 0] = True
    flat = starts.reshape(-1)
    idx = torch.nonzero(flat).reshape(-1).to(torch.int32)
    end = torch.tensor([flat.numel()], dtype=torch.int32, device=idx.device)
    cu = torch.cat([idx, end])
    longest = int((cu[1:] - cu[:-1]).max().item())
    return cu, longest


def _bounds_from_kwargs(batch: int, length: int, kwargs: dict[str, Any]) -> tuple[Any, int] | None:
    """The documents of the flattened (batch x length) tokens, or None when each row is one sequence."""
    import torch

    cu = kwargs.get("cu_seq_lens_q")
    if cu is not None and batch == 1:
        if cu.numel() == 2:
            # one document fills the row (long context): plain causal SDPA, whose kernel on an H200 trains the
            # Llama-3-8B shape at 65,536 tokens at 3,826 tokens/s against 2,826 through varlen (issue 17 call 8)
            return None
        # TRL's padding-free collator: one flattened row, bounds computed on the CPU (no device sync here)
        longest = kwargs.get("max_length_q")
        if longest is None:
            longest = int((cu[1:] - cu[:-1]).max().item())
        return cu.to(torch.int32), int(longest)
    pos = kwargs.get("position_ids")
    if pos is None or pos.shape[-1] != length:
        return None
    if pos.shape[0] != batch:
        pos = pos.expand(batch, -1)
    cu, longest = document_bounds(pos)
    if cu.numel() - 1 == batch:  # one sequence per row: plain causal attention
        return None
    return cu, longest


# --- kernels ---------------------------------------------------------------------------------------------
def _varlen_public() -> Any:
    try:
        from torch.nn.attention import varlen
    except ImportError:
        return None
    return getattr(varlen, "varlen_attn", None)


@functools.lru_cache(maxsize=4)
def _params(fn: Any) -> frozenset[str]:
    return frozenset(inspect.signature(fn).parameters)


def _call_public_varlen(fn: Any, q: Any, k: Any, v: Any, cu: Any, longest: int, scale: float | None) -> Any:
    """torch's varlen_attn, causal, whatever this torch calls the arguments (2.11: window_size; some
    versions: is_causal / enable_gqa)."""
    params = _params(fn)
    kw: dict[str, Any] = {"scale": scale}
    if "is_causal" in params:
        kw["is_causal"] = True
    else:
        kw["window_size"] = (-1, 0)
    if "enable_gqa" in params and q.shape[1] != k.shape[1]:
        kw["enable_gqa"] = True
    return fn(q, k, v, cu, cu, longest, longest, **kw)


def _aten_flash() -> Any:
    """An autograd function over ATen's flash-attention ops with cumulative sequence lengths (the kernel
    behind torch's varlen_attn), for torch builds whose public varlen API differs."""
    import torch

    class _FlashVarlen(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, q: Any, k: Any, v: Any, cu: Any, longest: int, scale: float | None) -> Any:
            out, lse, rng, unused, _ = torch.ops.aten._flash_attention_forward(
                q, k, v, cu, cu, longest, longest, 0.0, True, False, scale=scale
            )
            ctx.save_for_backward(q, k, v, out, lse, cu, rng, unused)
            ctx.longest, ctx.scale = longest, scale
            return out

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            q, k, v, out, lse, cu, rng, unused = ctx.saved_tensors
            dq, dk, dv = torch.ops.aten._flash_attention_backward(
                grad.contiguous(),
                q,
                k,
                v,
                out,
                lse,
                cu,
                cu,
                ctx.longest,
                ctx.longest,
                0.0,
                True,
                rng,
                unused,
                scale=ctx.scale,
            )
            return dq, dk, dv, None, None, None

    return _FlashVarlen.apply


def kernel_name() -> str:
    """Which kernel the CUDA packed path uses: WHETSTONE_PACKED_KERNEL (varlen | aten | loop) for
    measurements, else torch's public varlen_attn when this torch has it, else ATen's flash op."""
    chosen = os.environ.get("WHETSTONE_PACKED_KERNEL", "").strip()
    if chosen:
        return chosen
    return "varlen" if _varlen_public() is not None else "aten"


def varlen_available() -> bool:
    """True when the installed torch is recent enough for the varlen flash kernel (read from the package's
    metadata, without importing torch: the estimate calls this in the GUI process)."""
    from importlib import metadata

    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return False
    if "+cpu" in version:
        return False
    try:
        major, minor = (int(x) for x in version.split("+")[0].split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (2, 5)


def device_unsupported_reason() -> str | None:
    """Why this CUDA device cannot run the flash varlen kernel (it needs an Ampere or newer GPU), or None."""
    import torch

    if not torch.cuda.is_available():
        return "there is no CUDA GPU"
    if torch.cuda.get_device_capability(0) < (8, 0):
        return "the flash kernel needs an Ampere (RTX 30xx) or newer GPU"
    if _varlen_public() is None and not hasattr(torch.ops.aten, "_flash_attention_forward"):
        return "this PyTorch build has no flash-attention kernel"
    return None


def _per_document(q: Any, k: Any, v: Any, cu: Any, scale: float | None, dropout: float) -> Any:
    """SDPA once per document (q, k, v: tokens x heads x dim): the reference semantics, used on a CPU."""
    import torch
    import torch.nn.functional as F

    groups = q.shape[1] // k.shape[1]
    outs = []
    bounds = cu.tolist()
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        qd = q[a:b].transpose(0, 1)
        kd = k[a:b].transpose(0, 1)
        vd = v[a:b].transpose(0, 1)
        if groups > 1:
            kd = kd.repeat_interleave(groups, dim=0)
            vd = vd.repeat_interleave(groups, dim=0)
        outs.append(
            F.scaled_dot_product_attention(qd, kd, vd, dropout_p=dropout, is_causal=True, scale=scale)
        )
    return torch.cat([o.transpose(0, 1) for o in outs], dim=0)


def packed_attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers attention function: query (batch, heads, tokens, dim), key/value (batch, kv heads, tokens,
    dim); returns (batch, tokens, heads, dim). Packed rows go per document; anything else goes to "sdpa"."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    batch, _, length, _ = query.shape
    bounds = None
    if attention_mask is None and key.shape[2] == length and getattr(module, "is_causal", True):
        if kwargs.get("sliding_window") is None and kwargs.get("softcap") is None:
            bounds = _bounds_from_kwargs(batch, length, kwargs)
    if bounds is None:
        sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]
        return sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    cu, longest = bounds
    # (batch, heads, tokens, dim) -> (batch * tokens, heads, dim)
    q = query.transpose(1, 2).reshape(batch * length, query.shape[1], query.shape[3])
    k = key.transpose(1, 2).reshape(batch * length, key.shape[1], key.shape[3])
    v = value.transpose(1, 2).reshape(batch * length, value.shape[1], value.shape[3])
    kernel = kernel_name() if query.is_cuda and dropout == 0.0 else "loop"
    if kernel == "varlen":
        out = _call_public_varlen(_varlen_public(), q, k, v, cu, longest, scaling)
    elif kernel == "aten":
        out = _aten_flash()(q, k, v, cu, longest, scaling)
    else:
        out = _per_document(q, k, v, cu, scaling, dropout)
    return out.reshape(batch, length, query.shape[1], query.shape[3]), None


def packed_attention_mask(*args: Any, **kwargs: Any) -> Any:
    """transformers mask function: no mask at all for an unpadded training-style call (the attention works
    out the documents from position_ids / cu_seq_lens), transformers' SDPA mask for everything else."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    q_length = kwargs.get("q_length")
    if q_length is None and kwargs.get("cache_position") is not None:
        q_length = kwargs["cache_position"].shape[0]
    kv_length = kwargs.get("kv_length")
    if kwargs.get("attention_mask") is None and q_length is not None and q_length == kv_length:
        if not kwargs.get("local_size") and not kwargs.get("sliding_window"):
            return None
    return ALL_MASK_ATTENTION_FUNCTIONS["sdpa"](*args, **kwargs)


def register() -> str:
    """Register the implementation with transformers (idempotent); returns its name for
    `attn_implementation=`."""
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface

        AttentionInterface.register(IMPLEMENTATION, packed_attention_forward)
        AttentionMaskInterface.register(IMPLEMENTATION, packed_attention_mask)
        _REGISTERED = True
    return IMPLEMENTATION


def unsupported_reason(model_config: Any) -> str | None:
    """Why a model cannot take the per-document path (sliding-window or soft-capped attention, whose
    varlen form this module does not implement), or None. `model_config`: a transformers config, a
    config.json dict or a model folder."""
    if isinstance(model_config, (str, Path)):
        try:
            model_config = json.loads((Path(model_config) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            model_config = {}
    if isinstance(model_config, dict):
        data = model_config

        def get(key: str) -> Any:
            return data.get(key)
    else:
        obj = model_config

        def get(key: str) -> Any:
            return getattr(obj, key, None)

    layer_types = get("layer_types") or []
    if any(t != "full_attention" for t in layer_types):
        return "its layers use sliding-window or other non-full attention"
    window = get("sliding_window")
    if window and get("use_sliding_window") is not False:
        return "it uses sliding-window attention"
    if get("attn_logit_softcapping"):
        return "it soft-caps attention logits"
    return None
