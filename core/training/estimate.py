"""Predict peak GPU memory and time per epoch before training, from the model's config.json alone.

Memory model (bytes; T = tokens in one micro-batch, h = hidden, i = MLP width, L = layers, V = vocab):
  weights      linear layers at 4.5 bits/param for NF4 with double quant (0.5 B + 1/64 B absmax + fp32
               second-level scales), 4.5+0.5 bits without it, 1 B (+ fp32 row scales) for 8-bit,
               2 or 4 B unquantized; embeddings and lm_head stay in the compute dtype (bitsandbytes does not
               quantize them), norms are negligible
  LoRA         r·(in+out) per adapted linear; params + grads + two AdamW moments (QLoRA keeps them in bf16
               under TRL, plain LoRA in fp32)
  activations  with gradient checkpointing: the L layer inputs (T·h) plus one layer's saved tensors during
               its recomputation; without it: every layer's saved tensors. A layer saves about
               ACT_H·h + ACT_I·i values per token (norms in fp32, q/k/v/o inputs, LoRA dropout copies,
               SwiGLU's gate/up/product), calibrated on an H100 (see benchmarks/bench_train_gpu.py)
  logits       chunked by TRL's fused LM head (TRL ≥ 1.16): a few chunks of T·V; older TRL: T·V in fp32 twice
  workspace    bitsandbytes dequantizes one weight at a time in the compute dtype (largest linear, ×2)
Measured error of the peak (H100 under a 24 GiB cap, random-weight models, NF4 r16 all-linear, bs 4 x GA 4
unless said; benchmarks/bench_train_gpu.py and benchmarks/results/TRAIN_GPU.md); the constants were fitted to
these seven runs (in-sample):
Llama-3-8B shape, 2048 tokens, checkpointing: 9.99 / 10.92 / 9.84 GiB (the last through `whetstone train`) vs
10.34 GiB estimated (+3.5%, -5.3%, +5.1%); bs 1 x 16 without checkpointing: 15.40 vs 14.84 (-3.6%);
Llama-3.2-1B shape: 1024 tokens 1.97 vs 2.06 (+4.6%), 1024 tokens bs 1 without checkpointing 2.47 vs 2.40
(-2.8%), 2048 tokens 2.92 vs 2.95 (+1.0%). Held out (not used for the fit): Llama-3.2-1B at 4096 tokens
5.11 vs 4.73 (-7.5%); a repeat of the 1024-token run measured 2.12 (-2.6%). Stated error: ±8% (the same
settings vary up to 8% from run to run); `fits` also keeps 1 GiB for the CUDA context and allocator slack.
Time: training FLOPs per token ≈ (4 + 2·checkpointing)·N (frozen weights need no weight gradients) +
attention, divided by a sustained throughput per device class (measured).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.training.config import Hardware, TrainingConfig, resolve_for_hardware

GIB = 2**30
# Per-token saved activation values per layer (units of h and i), calibrated on an H100 with Liger kernels
# (benchmarks/bench_train_gpu.py): 7h + 3i, plus 6h + i for the LoRA dropout copies of the adapted inputs,
# plus 4h + i without Liger (fp32 RMSNorm inputs, the separate SiLU output).
ACT_H = 7.0
ACT_I = 3.0
ACT_DROPOUT = (6.0, 1.0)
ACT_NO_LIGER = (4.0, 1.0)
# Chunked loss: live logits chunk (tokens) and per-token hidden-size vectors around the LM head (fitted).
LOGIT_CHUNK = 64
HEAD_VECTORS = 12.0
# The CUDA context, cuBLAS workspaces and allocator slack that torch's peak counter does not see.
RUNTIME_OVERHEAD_GIB = 1.0
# Sustained training throughput (FLOP/s) by device class; the GPU figure is measured QLoRA on an H100.
# Measured on an H100 (Llama-3-8B shape, ≈50 GFLOP/token): 5,263 tokens/s = ~260 TFLOP/s warm, 3,963 tokens/s
# = ~200 TFLOP/s in a process's first run (Triton compiles); we use the latter. Others scaled by bf16 peak.
SUSTAINED_FLOPS = {
    "h100": 200e12,
    "h200": 220e12,
    "a100": 100e12,
    "4090": 70e12,
    "3090": 30e12,
    "gpu": 40e12,
    "cpu": 25e9,
}


@dataclass(frozen=True)
class ModelShape:
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool

    @classmethod
    def from_config_json(cls, data: dict[str, Any]) -> ModelShape:
        data = data.get("text_config", data) if "hidden_size" not in data else data
        try:
            hidden = int(data["hidden_size"])
            heads = int(data["num_attention_heads"])
            return cls(
                vocab=int(data["vocab_size"]),
                hidden=hidden,
                intermediate=int(data.get("intermediate_size") or 4 * hidden),
                layers=int(data["num_hidden_layers"]),
                heads=heads,
                kv_heads=int(data.get("num_key_value_heads") or heads),
                head_dim=int(data.get("head_dim") or hidden // heads),
                tied=bool(data.get("tie_word_embeddings", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"The model's config.json lacks a field the estimate needs: {exc}") from None

    def linears(self) -> dict[str, tuple[int, int]]:
        h, i, q, kv = (
            self.hidden,
            self.intermediate,
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
        )
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linears().values())

    def embed_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    def total_params(self) -> int:
        return self.linear_params() + self.embed_params()


def shape_for_model(name: str) -> ModelShape:
    """Read config.json (or the GGUF's converted config) without loading any weights."""
    from core.models import ModelRegistry, resolve_base_model

    quick = shape_for_model_quick(name)
    if quick is not None:
        return quick
    entry = ModelRegistry().get(name)
    if entry.format == "gguf":
        folder = resolve_base_model(name)
    else:
        folder = Path(entry.path)
    file = folder / "config.json"
    if not file.exists():
        raise UserError(f"{folder} has no config.json; cannot estimate.")
    return ModelShape.from_config_json(json.loads(file.read_text(encoding="utf-8")))


# The embedded SmolLM2-135M-Instruct (known without converting its GGUF first).
SMOLLM2_135M = ModelShape(
    vocab=49152, hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, head_dim=64, tied=True
)


def shape_for_model_quick(name: str) -> ModelShape | None:
    """The shape when it can be read at once (config.json on disk); None when it cannot (no conversion)."""
    from core.models import EMBEDDED_BASE_ID, ModelRegistry, _gguf_cache_dir

    try:
        entry = ModelRegistry().get(name)
        folder = _gguf_cache_dir(entry) if entry.format == "gguf" else Path(entry.path)
        file = folder / "config.json"
        if file.exists():
            return ModelShape.from_config_json(json.loads(file.read_text(encoding="utf-8")))
    except (UserError, OSError, ValueError):
        pass
    if name == EMBEDDED_BASE_ID:
        return SMOLLM2_135M
    return None


@dataclass
class Estimate:
    vram_gib: float
    fits: bool
    target_gib: float
    time_s: float | None
    steps_per_epoch: int | None
    tokens_per_s: float
    breakdown_gib: dict[str, float]
    suggestions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    device: str = ""

    def public(self) -> dict[str, Any]:
        return asdict(self)


def _dtype_bytes(name: str) -> int:
    return 4 if name == "float32" else 2


def _memory(
    cfg: TrainingConfig,
    shape: ModelShape,
    compute: str,
    ckpt: bool,
    tokens: int,
    chunked_logits: bool,
    liger: bool = True,
) -> dict[str, float]:
    cb = _dtype_bytes(compute)
    lin = shape.linear_params()
    mode = cfg.quant.mode
    if mode == "4bit":
        per = 0.5 + (1 / 64 + 4 / (64 * 256) if cfg.quant.double_quant else 4 / 64)
    elif mode == "8bit":
        per = 1.0 + 4 / 4096
    else:
        per = float(cb)
    weights = lin * per + shape.embed_params() * cb
    targets = shape.linears()
    if cfg.lora.target_modules == "attention":
        targets = {k: v for k, v in targets.items() if k in ("q_proj", "k_proj", "v_proj", "o_proj")}
    elif isinstance(cfg.lora.target_modules, list):
        targets = {k: v for k, v in targets.items() if k in cfg.lora.target_modules}
    lora_params = shape.layers * sum(cfg.lora.r * (a + b) for a, b in targets.values())
    lora_bytes = 2 if (mode == "4bit" and cb == 2) else 4
    lora = lora_params * lora_bytes * 4  # params, grads, exp_avg, exp_avg_sq
    h, i = shape.hidden, shape.intermediate
    ah, ai = ACT_H, ACT_I
    if cfg.lora.dropout > 0:
        ah, ai = ah + ACT_DROPOUT[0], ai + ACT_DROPOUT[1]
    if not liger:
        ah, ai = ah + ACT_NO_LIGER[0], ai + ACT_NO_LIGER[1]
    per_layer = tokens * (ah * h + ai * i) * cb
    if ckpt:
        acts = shape.layers * tokens * h * cb + per_layer
    else:
        acts = shape.layers * per_layer
    if chunked_logits:
        # TRL's fused LM head keeps only a chunk of logits alive; what grows with the tokens is the final
        # hidden state, its fp32 copies and gradients around the head (fitted: 12 hidden vectors per token)
        logits = min(tokens, LOGIT_CHUNK) * shape.vocab * 4 * 2 + HEAD_VECTORS * tokens * shape.hidden * cb
    else:
        logits = tokens * shape.vocab * (cb + 4 + 4)
    biggest = max(a * b for a, b in shape.linears().values())
    workspace = biggest * cb * 2 if mode != "none" else 0
    return {
        "weights": weights / GIB,
        "lora_and_optimizer": lora / GIB,
        "activations": acts / GIB,
        "logits": logits / GIB,
        "workspace": workspace / GIB,
    }


def _sustained_flops(hw: Hardware) -> float:
    if not hw.cuda:
        return SUSTAINED_FLOPS["cpu"]
    name = hw.name.lower()
    for key in ("h200", "h100", "a100", "4090", "3090"):
        if key in name:
            return SUSTAINED_FLOPS[key]
    return SUSTAINED_FLOPS["gpu"]


def trl_chunks_logits() -> bool:
    """TRL ≥ 1.16 computes the loss from chunks of the LM head output (never the full logits)."""
    try:
        from importlib.metadata import version

        major, minor = (int(p) for p in version("trl").split(".")[:2])
        return (major, minor) >= (1, 16)
    except Exception:  # noqa: BLE001
        return False


def estimate(
    cfg: TrainingConfig,
    shape: ModelShape,
    hw: Hardware,
    *,
    target_gib: float | None = None,
    dataset_tokens: int | None = None,
    dataset_examples: int | None = None,
    chunked_logits: bool | None = None,
) -> Estimate:
    target = target_gib if target_gib is not None else (hw.total_gib if hw.cuda else 24.0)
    # Memory is always predicted for a GPU: the detected one, or (on a CPU-only machine) the target card.
    mem_hw = hw if hw.cuda else Hardware(True, True, f"{target:g} GiB GPU", target)
    resolved = resolve_for_hardware(cfg, mem_hw)
    here = resolve_for_hardware(cfg, hw)
    rc = resolved.config
    t = rc.train
    chunked = trl_chunks_logits() if chunked_logits is None else chunked_logits
    mean_len = t.max_length
    if dataset_tokens and dataset_examples:
        mean_len = min(t.max_length, max(1, dataset_tokens // dataset_examples))
    tokens = t.micro_batch_size * (t.max_length if t.packing or not dataset_tokens else mean_len)
    parts = _memory(
        rc, shape, resolved.compute_dtype, resolved.gradient_checkpointing, tokens, chunked, resolved.liger
    )
    vram = sum(parts.values())
    fits = vram + RUNTIME_OVERHEAD_GIB <= target

    # time
    flops_token = (4 + (2 if here.gradient_checkpointing else 0)) * shape.total_params()
    flops_token += 6 * shape.layers * shape.hidden * (mean_len if t.packing else t.max_length)
    speed = _sustained_flops(hw)
    if rc.quant.mode == "4bit" and not hw.cuda:
        speed *= 0.5
    tok_s = speed / flops_token
    steps = time_s = None
    if dataset_tokens:
        real = min(dataset_tokens, (dataset_examples or 1) * t.max_length)
        per_step = t.micro_batch_size * t.grad_accum * (t.max_length if t.packing else mean_len)
        steps = (
            max(1, math.ceil(real / per_step))
            if t.packing
            else max(1, math.ceil((dataset_examples or 1) / (t.micro_batch_size * t.grad_accum)))
        )
        epoch_tokens = real
        time_s = epoch_tokens / tok_s
        if t.max_steps:
            time_s = time_s * t.max_steps / steps
    elif t.max_steps:
        time_s = t.max_steps * t.micro_batch_size * t.grad_accum * t.max_length / tok_s

    est = Estimate(
        vram_gib=round(vram, 2),
        fits=fits,
        target_gib=round(target, 1),
        time_s=None if time_s is None else round(time_s, 1),
        steps_per_epoch=steps,
        tokens_per_s=round(tok_s, 1),
        breakdown_gib={k: round(v, 3) for k, v in parts.items()},
        notes=list(here.notes),
        device=hw.name if hw.cuda else f"{hw.name}; memory shown for a {target:g} GiB GPU",
    )
    if not fits:
        est.suggestions = _suggestions(rc, shape, mem_hw, target, resolved.gradient_checkpointing, chunked)
    return est


def _suggestions(
    cfg: TrainingConfig, shape: ModelShape, hw: Hardware, target: float, ckpt: bool, chunked: bool
) -> list[str]:
    """Concrete changes, each checked against the same memory model, cheapest first."""
    out: list[str] = []
    resolved = resolve_for_hardware(cfg, hw)
    compute = resolved.compute_dtype
    t = cfg.train

    def peak(c: TrainingConfig, ck: bool) -> float:
        tokens = c.train.micro_batch_size * c.train.max_length
        return sum(_memory(c, shape, compute, ck, tokens, chunked).values()) + RUNTIME_OVERHEAD_GIB

    from core.training.config import with_overrides

    if not ckpt and peak(cfg, True) <= target:
        out.append(f"Turn on gradient checkpointing (≈{peak(cfg, True):.1f} GiB).")
    mb = t.micro_batch_size
    while mb > 1:
        mb //= 2
        c = with_overrides(
            cfg, {"train.micro_batch_size": mb, "train.grad_accum": t.grad_accum * t.micro_batch_size // mb}
        )
        if peak(c, ckpt) <= target:
            out.append(
                f"Lower the micro-batch size to {mb} and raise gradient accumulation to "
                f"{c.train.grad_accum} (same effective batch, ≈{peak(c, ckpt):.1f} GiB)."
            )
            break
    length = t.max_length
    while length > 256:
        length //= 2
        c = with_overrides(cfg, {"train.max_length": length})
        if peak(c, ckpt) <= target:
            out.append(f"Shorten max length to {length} tokens (≈{peak(c, ckpt):.1f} GiB).")
            break
    if cfg.quant.mode != "4bit":
        c = with_overrides(cfg, {"quant.mode": "4bit"})
        if peak(c, ckpt) <= target:
            out.append(f"Use 4-bit quantization (QLoRA) (≈{peak(c, ckpt):.1f} GiB).")
        elif peak(c, True) <= target:
            out.append("Use 4-bit quantization and gradient checkpointing.")
    if not out:
        c = with_overrides(cfg, {"quant.mode": "4bit", "train.micro_batch_size": 1, "train.max_length": 512})
        out.append(
            f"Even 4-bit, micro-batch 1 and 512 tokens need ≈{peak(c, True):.1f} GiB: pick a smaller model."
        )
    return out


def dataset_token_stats(path: str | Path) -> tuple[int, int]:
    """(approximate tokens, examples) of a data file: characters / 3.6 plus chat-template overhead."""
    from core.data.formats import read_dataset

    p = Path(path)
    if p.suffix == ".wsdb":
        return 0, 0
    result = read_dataset(p)
    tokens = 0
    for ex in result.examples:
        tokens += int(sum(len(m.content) for m in ex.messages) / 3.6) + 8 * len(ex.messages) + 20
    return tokens, len(result.examples)
