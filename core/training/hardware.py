"""What the training settings' 'auto' values become on this machine (dtype, checkpointing, Liger, attention),
with notes that say what was picked and why; `Hardware` describes the machine without importing torch when
no NVIDIA GPU is visible."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.training.schema import TrainingConfig, with_overrides


@dataclass(frozen=True)
class Hardware:
    cuda: bool
    bf16: bool = False
    name: str = "CPU"
    total_gib: float = 0.0

    @classmethod
    def from_device(cls, dev: Any) -> Hardware:
        """From core.device.ComputeDevice (nvidia-smi, no torch import): GPUs are assumed to have bf16."""
        if getattr(dev, "kind", "cpu") == "cuda":
            return cls(True, True, dev.name, float(dev.total_gib))
        return cls(False, False, getattr(dev, "name", "CPU"))

    @classmethod
    def detect(cls) -> Hardware:
        """Without importing torch when no NVIDIA GPU is visible (fast); torch decides bf16 support."""
        from core.device import detect_device

        dev = detect_device()
        if dev.kind != "cuda":
            return cls(False, False, dev.name)
        try:
            import torch

            if torch.cuda.is_available():
                return cls(
                    True,
                    bool(torch.cuda.is_bf16_supported()),
                    torch.cuda.get_device_name(0),
                    torch.cuda.get_device_properties(0).total_memory / 2**30,
                )
        except Exception:  # noqa: BLE001 - a broken CUDA install means CPU
            pass
        return cls(False, False, dev.name)


@dataclass
class Resolved:
    """The concrete choices for one machine, and the notes that say what 'auto' picked and why."""

    config: TrainingConfig
    compute_dtype: str
    weights_dtype: str
    gradient_checkpointing: bool
    liger: bool
    notes: list[str] = field(default_factory=list)
    # the technical reasons behind some notes: written to the run log only (the notes are for the user)
    log_notes: list[str] = field(default_factory=list)
    # what load_model asks core.loader for: "whetstone_packed" (core.training.packed_attention) for 'auto'
    # on a GPU with packing, else the configured one ('auto': sdpa or eager per model)
    attention: str = "auto"


def liger_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("liger_kernel") is not None


def resolve_for_hardware(config: TrainingConfig, hw: Hardware) -> Resolved:
    """Fill the 'auto' settings for this machine. On a CPU: float32 compute, no gradient checkpointing."""
    notes: list[str] = []
    log_notes: list[str] = []
    q, t = config.quant, config.train
    if hw.cuda:
        best = "bfloat16" if hw.bf16 else "float16"
        compute = best if q.compute_dtype == "auto" else q.compute_dtype
        weights = best if config.model.dtype == "auto" else config.model.dtype
        ckpt = True if t.gradient_checkpointing is None else t.gradient_checkpointing
        liger = (
            liger_available() if t.liger is None else t.liger
        ) and config.model.attn_implementation != "eager"
        if t.liger and not liger_available():
            notes.append(
                "Liger kernels were asked for but the liger-kernel package is missing; running without."
            )
            liger = False
        attention = _gpu_attention(config, notes, log_notes)
    else:
        compute = "float32"
        weights = "float32"
        ckpt = False
        liger = False
        # (most CPUs compute bfloat16 ~8x slower than float32; recomputing to save memory only costs time)
        notes.append(
            "No GPU here: training runs on the processor, in full precision and without recomputing to "
            "save memory, the fastest way on a CPU (float32, no gradient checkpointing)."
        )
        if q.compute_dtype not in ("auto", "float32") or config.model.dtype not in ("auto", "float32"):
            notes.append(
                "The half precision you chose becomes full precision on a CPU, where it is faster (float32)."
            )
        if t.gradient_checkpointing:
            notes.append(
                "Recomputing to save memory is off on a CPU, where it only costs time (gradient checkpointing)."
            )
        if config.model.attn_implementation == "flash_attention_2":
            notes.append(
                "The attention code you chose needs a GPU (flash_attention_2); the model's usual one is used."
            )
            config = with_overrides(config, {"model.attn_implementation": "auto"})
        attention = config.model.attn_implementation  # 'auto': core.loader picks sdpa or eager per model
        if t.packing:
            # Without flash-attention's variable-length kernels, attention over a packed row covers the whole
            # row (its mask only hides the other examples): on SmolLM2 with 512-token rows that is slower than
            # padding and holds GBs of attention weights for the backward pass.
            notes.append(
                "On a CPU, examples of similar length are trained together instead of combined into one "
                "row, which is faster there (batched by length, not packed)."
            )
            config = with_overrides(config, {"train.packing": False})
    resolved_cfg = with_overrides(
        config,
        {
            "quant.compute_dtype": compute,
            "model.dtype": weights,
            "train.gradient_checkpointing": ckpt,
            "train.liger": liger,
        },
    )
    return Resolved(resolved_cfg, compute, weights, ckpt, liger, notes, log_notes, attention)


def _gpu_attention(config: TrainingConfig, notes: list[str], log_notes: list[str]) -> str:
    """The attention implementation on a CUDA GPU; a note says when 'auto' cannot take the fast path."""
    chosen = config.model.attn_implementation
    if chosen != "auto":
        return chosen
    from core.training.packed_attention import IMPLEMENTATION, varlen_available

    if not config.train.packing:
        notes.append(
            "Examples are not packed together, so training uses the standard attention (fast, but the "
            "fastest kind needs 'Combine short examples' on)."
        )
        log_notes.append(
            "Packing is off: attention runs on SDPA (the per-document flash-attention varlen path needs packing)."
        )
        return "auto"
    if not varlen_available():
        notes.append(
            "Training here cannot use the fastest attention for packed examples; it will run, somewhat "
            "slower, with the same results."
        )
        log_notes.append(
            "This PyTorch has no variable-length flash attention kernel: attention runs on SDPA over each "
            "whole packed row (slower; same results)."
        )
        return "auto"
    return IMPLEMENTATION  # load_model says so in the run log, or why it falls back (model, GPU)
