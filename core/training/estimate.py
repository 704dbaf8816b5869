"""Predict peak GPU memory and time per epoch before training, from the model's config.json alone.

Memory model (bytes; T = tokens in one micro-batch, h = hidden, i = MLP width, L = layers, V = vocab):
  weights      linear layers at 4.5 bits/param for NF4 with double quant (0.5 B + 1/64 B absmax + fp32
               second-level scales), 4.5+0.5 bits without it, 1 B (+ fp32 row scales) for 8-bit,
               2 or 4 B unquantized; embeddings and lm_head stay in the compute dtype (bitsandbytes does not
               quantize them), norms are negligible
  LoRA         r·(in+out) per adapted linear; params + grads + two AdamW moments (QLoRA keeps them in bf16
               under TRL, plain LoRA in fp32)
  activations  on one CUDA GPU with checkpointing on, the memory plan (core/training/memory_plan.py,
               `choose_plan`: the fastest plan under PLAN_FILL of the card): K layers keep their saved
               tensors (KEPT_LAYER_SHARE of a layer's peak each), the other L-K keep their input (T·h), plus
               one layer's saved tensors while it is recomputed; at long context the inputs wait in CPU
               memory and the MLP runs MLP_TILE tokens at a time, and the GPU holds LONG_VECTORS·T·h plus
               one tile's MLP intermediates. With transformers' gradient checkpointing (several GPUs): the L
               layer inputs plus one layer's saved tensors during its recomputation; without checkpointing:
               every layer's saved tensors. A layer saves about
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
settings vary up to 8% from run to run).
Memory plan (issue 17, H200 under a 24 GiB cap, benchmarks/results/TRAIN_GPU.md): fitted (in-sample) to the
Llama-3-8B shape at 4 x 2,048 tokens keeping 10 of 32 layers, 18.28 GiB vs 18.42 (+0.8%, KEPT_LAYER_SHARE),
and at 65,536 tokens with the layer inputs in CPU memory, 13.24 vs 13.26 (LONG_VECTORS). Held out (the
constants were not fitted to them): Llama-3-8B shape at 32,768 tokens 9.49 vs 9.91 (+4.4%) and at 131,072
tokens 20.80 vs 19.96 (-4.0%); Qwen3-8B shape at 4 x 2,048 tokens 19.73 vs 18.90 (-4.2%, predicted before it
ran); Llama-3.2-1B shape at 4 x 2,048 tokens keeping every layer 10.78 vs 9.61 (-10.9%); Qwen2.5-32B shape
on one card at 2 x 2,048 tokens 22.82 vs 20.86 (-8.6%), and split across 2 GPUs (FSDP, transformers'
checkpointing) at 4 x 2,048 tokens 17.77 per GPU vs 19.00 (+6.9%). Stated error: ±9% (the 1B shape with
every layer kept: -11%). `fits` counts that error (PEAK_ERROR, 8%) and 1 GiB for the CUDA context and
allocator slack: the 32B shape at 4 x 2,048 tokens on one card (22.23 GiB estimated) does not "fit", and it
ran out of memory there.
Time: training FLOPs per token ≈ (4 + 2·share of layers recomputed)·N (frozen weights need no weight gradients) +
ATTENTION_FLOPS·layers·hidden·attention span, divided by a sustained throughput. On a GPU that throughput comes
from measured tokens/s of our default QLoRA recipe on an H200 (MEASURED_GPU: Llama-3.2-1B shape 28,088
tokens/s, Llama-3-8B shape 10,853 tokens/s with its memory plan), as FLOP/s interpolated by parameter count
between the two measured sizes (a 1B model uses the GPU less well), then scaled to the target card by a rough
relative training speed (GPU_CLASSES; not measured here: ±50%). ATTENTION_FLOPS was fitted to the 65,536-token
run (3,840 tokens/s). Held out on the H200: Llama-3-8B shape at 32,768 tokens 5,248 tokens/s vs 5,599
estimated (+6.7%), at 131,072 tokens 2,467 vs 2,365 (-4.2%); Qwen3-8B shape 10,120 / 10,283 vs 10,555
(+4.3% / +2.6%); Llama-3.2-1B shape keeping every layer 39,461 / 39,162 vs 40,550 (+2.8% / +3.5%). Stated
error on the H200: ±7%.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.training.config import Hardware, TrainingConfig, resolve_for_hardware, with_overrides
from core.training.memory_plan import MemoryPlan

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
# The stated error of the peak (see the module docstring): "fits" only when the peak plus this share of it
# fits, so a run the estimate under-counts by that much still does not run out of memory. (Without it the
# Qwen2.5-32B shape at 4 x 2,048 tokens on one 24 GiB card was "fits" at 22.45 GiB and ran out of memory.)
PEAK_ERROR = 0.08
# Memory plan (core/training/memory_plan.py): layer inputs on the GPU while offloaded ones are copied out
# and back; tokens per MLP tile and the length from which the MLP is tiled; the share of the card the plan
# may fill when it keeps layers' activations to save recomputation (the rest absorbs the estimate's error).
OFFLOAD_IN_FLIGHT = 2
MLP_TILE = 8192
PLAN_FILL = 0.83
# What a layer that keeps its activations holds through the backward pass, as a share of one layer's peak
# (fitted: 10 kept layers of the Llama-3-8B shape at 8,192 tokens measured 18.28 GiB, TRAIN_GPU.md call 3)
KEPT_LAYER_SHARE = 0.85
# Long context (layer inputs in CPU memory): hidden-size vectors per token on the GPU at the peak (fitted to
# one run: the Llama-3-8B shape at 65,536 tokens with the MLP in 8,192-token tiles, 13.25 GiB; issue 17 call 6)
LONG_VECTORS = 13.4
# Sustained training throughput of a CPU (FLOP/s; GPUs: measured, see MEASURED_GPU).
SUSTAINED_FLOPS = {"cpu": 25e9}
# A measured CPU speed below this share of that rough throughput is not trusted for an estimate: the run shared
# the computer with other work (5 tokens/s for SmolLM2-135M on 2 busy cores, a quarter of the rough figure).
CPU_MEASURED_FLOOR = 0.25


# Measured tokens/s of our default QLoRA recipe (NF4, r16 all-linear, len 2048, packing with attention per
# document) on an H200 (24 GiB cap; benchmarks/results/TRAIN_GPU.md, 12 steps): (what was measured, total
# parameters, tokens/s, share of the layers recomputed in that run, layers x hidden). FLOP/s = tokens/s x
# ((4 + 2 x share) x parameters + ATTENTION_FLOPS x layers x hidden x MEASURED_ATTN_LEN).
MEASURED_GPU = (
    # issue 17 call 2: transformers' checkpointing of every layer, LoRA dropout 0.05 (16 layers x 2,048 wide)
    ("a Llama-3.2-1B-shaped model", 1.236e9, 28_088.0, 1.0, 16 * 2048),
    # issue 17 call 3: memory plan keeping 10 of 32 layers, dropout 0 (10,841 and 10,864 in two orders)
    ("a Llama-3-8B-shaped model", 8.03e9, 10_853.0, 22 / 32, 32 * 4096),
)
# The attention length of those runs as the estimate counts it (rows packed to 2,048, no dataset given).
MEASURED_ATTN_LEN = 2048
# Attention FLOPs per token, per layer, per hidden unit and per token of attention span: forward 2 (causal
# QK and PV), backward 5 (flash attention recomputes the scores), the layer's recomputation 2 = 9 at the
# GEMMs' speed. Fitted to one run (the Llama-3-8B shape at 65,536 tokens, one document per row through SDPA's
# causal kernel: 3,840 tokens/s, issue 17 call 9) with the calibration above: 9.4.
ATTENTION_FLOPS = 9.4
# Training speed relative to the measured H100/H200 class (rough: from public bf16 throughput and training
# benchmarks of these cards; not measured by us). Memory targets on the Train page map to a typical card.
GPU_CLASSES: dict[str, tuple[str, float]] = {
    "h200": ("an H200", 1.0),
    "h100": ("an H100", 1.0),
    "a100": ("an A100", 0.5),
    "l40": ("an L40S", 0.45),
    "l4": ("an L4", 0.12),  # after "l40": matched in this order
    "t4": ("a T4", 0.06),
    "6000 ada": ("an RTX 6000 Ada", 0.45),
    "a6000": ("an RTX A6000", 0.3),
    "4090": ("an RTX 4090", 0.35),
    "3090": ("an RTX 3090", 0.2),
    "4080": ("an RTX 4080", 0.25),
    "4070": ("an RTX 4070", 0.16),
    "3060": ("an RTX 3060", 0.08),
    "4060": ("an RTX 4060", 0.09),
}
TARGET_CLASSES: dict[int, tuple[str, float]] = {
    8: ("an 8 GB RTX 4060-class GPU", 0.09),
    12: ("a 12 GB RTX 4070-class GPU", 0.16),
    16: ("a 16 GB RTX 4080-class GPU", 0.25),
    24: ("a 24 GB RTX 4090-class GPU", 0.35),
    48: ("a 48 GB RTX 6000 Ada / L40S-class GPU", 0.45),
    80: ("an 80 GB A100-class GPU", 0.5),
}
# The model sizes each preset was made for (total parameters); outside them the page warns.
PRESET_SIZES: dict[str, tuple[float, float, str]] = {
    "Quick test (CPU)": (0, 0.6e9, "a small model such as the embedded SmolLM2-135M"),
    "QLoRA 7–8B on 24 GB": (5e9, 9.5e9, "7–8B models"),
    "LoRA ≤ 3B on 24 GB": (0, 3.5e9, "models up to about 3B"),
}


def gpu_class(hw: Hardware | None = None, target_gib: float | None = None) -> tuple[str, float]:
    """(card in words, speed relative to an H100/H200) for the detected GPU, or a typical card of that memory."""
    if hw is not None and hw.cuda:
        name = hw.name.lower()
        for key, found in GPU_CLASSES.items():
            if key in name:
                return found
        target_gib = target_gib or hw.total_gib
    gib = target_gib or 24.0
    size = min(TARGET_CLASSES, key=lambda k: (abs(k - gib), k))
    return TARGET_CLASSES[size]


def measured_gpu_flops(params: float) -> tuple[float, str]:
    """Sustained training FLOP/s on an H100/H200 for a model of `params`, and which measurement it rests on."""
    (small_name, small_n, small_tok, small_r, small_lh), (big_name, big_n, big_tok, big_r, big_lh) = (
        MEASURED_GPU
    )
    attn = ATTENTION_FLOPS * MEASURED_ATTN_LEN
    small = ((4 + 2 * small_r) * small_n + attn * small_lh) * small_tok
    big = ((4 + 2 * big_r) * big_n + attn * big_lh) * big_tok
    if params <= small_n:
        return small, small_name
    if params >= big_n:
        return big, big_name
    t = (math.log(params) - math.log(small_n)) / (math.log(big_n) - math.log(small_n))
    nearest = small_name if t < 0.5 else big_name
    return math.exp(math.log(small) + t * (math.log(big) - math.log(small))), nearest


RECENT_CPU_RUNS = 5  # measured CPU runs of a model the estimate looks at (the fastest one counts)


def measured_cpu_speed(model_name: str, runs_root: Path | None = None) -> tuple[float, str] | None:
    """(tokens/s, which run) of this model on this computer: the fastest of its newest CPU runs (up to
    RECENT_CPU_RUNS), each run's median step speed; None when there is none.

    This computer's own measurement beats any rule of thumb for a CPU (cores, memory bandwidth and other load
    vary far more than between GPUs of one class). A run counts when it logged at least 3 steps on the CPU
    (no VRAM figure); its first step (warm-up) is left out. The fastest run counts, not the newest: one run
    on a computer busy with other work measured 5 tokens/s and made every later estimate read hours.
    """
    from core.runs import list_runs

    try:
        runs = list_runs(runs_root)
    except OSError:
        return None
    found: list[tuple[float, str]] = []
    for run in runs:  # newest first
        if len(found) >= RECENT_CPU_RUNS:
            break
        try:
            if (run.read_config().get("model") or {}).get("name") != model_name:
                continue
            steps = [e for e in run.curve() if e.get("type") == "step" and e.get("tokens_per_s")]
        except (UserError, OSError, ValueError, AttributeError):
            continue
        if len(steps) < 3 or any(e.get("vram_gib") is not None for e in steps):
            continue
        speeds = sorted(float(e["tokens_per_s"]) for e in steps[1:])
        found.append((speeds[len(speeds) // 2], run.path.name))
    if not found:
        return None
    speed, name = max(found, key=lambda f: f[0])
    if len(found) > 1:
        name += f" (the fastest of your last {len(found)} CPU runs of this model)"
    return speed, name


def preset_warnings(preset: str | None, shape: ModelShape) -> list[str]:
    """Plain warnings when a named preset does not suit the chosen model's size."""
    if not preset or preset not in PRESET_SIZES:
        return []
    low, high, made_for = PRESET_SIZES[preset]
    params = shape.total_params()
    size = f"{params / 1e9:.1f}B" if params >= 1e9 else f"{params / 1e6:.0f}M"
    if params > high:
        advice = {
            "LoRA ≤ 3B on 24 GB": "its unquantized weights alone take "
            f"{params * 2 / GIB:.0f} GiB; use 'QLoRA 7–8B on 24 GB' for a model this size",
            "Quick test (CPU)": "a run would be very slow and large; use a GPU preset",
        }.get(preset, "expect it not to fit the card it was made for")
        return [f"The preset '{preset}' is made for {made_for}; this model has {size} parameters: {advice}."]
    if params < low:
        return [
            f"The preset '{preset}' is made for {made_for}; this model has only {size} parameters, so 4-bit "
            "quantization costs quality for no need: 'LoRA ≤ 3B on 24 GB' suits it better."
        ]
    return []


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
    time_device: str = ""  # where the time is for: "this CPU", "a 24 GB RTX 4090-class GPU", "an H100"
    time_basis: str = ""  # what the speed rests on, in words
    warnings: list[str] = field(default_factory=list)  # the preset does not suit the model
    # the fewest GPUs of the target's size the run fits when the model is split across them (FSDP), when it
    # does not fit one; None when it fits one or needs more than 8
    split_gpus: int | None = None
    memory_plan: str = ""  # what the memory plan does (layers kept / recomputed, CPU memory, tiled MLP)

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
    plan: MemoryPlan | None = None,
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
    if ckpt and plan is not None and plan.offload:
        # long context: every layer input in CPU memory; what grows with the tokens on the GPU is a fixed
        # number of hidden-size vectors (the inputs in flight, one layer's recomputation, the final norm and
        # the loss around the LM head) plus one MLP tile's intermediates
        tile = min(tokens, plan.mlp_tile) if plan.mlp_tile else tokens
        acts = LONG_VECTORS * tokens * h * cb + tile * ai * i * cb
    elif ckpt and plan is not None:
        # our own recomputation (core/training/memory_plan.py): kept layers hold their activations, the others
        # their input (on the GPU, or only the ones in flight to and from CPU memory), plus one layer's
        # activations while it is recomputed; a tiled MLP holds one tile's intermediates
        if plan.mlp_tile and tokens > plan.mlp_tile:
            per_layer = tokens * ah * h * cb + plan.mlp_tile * ai * i * cb
        recomputed = max(0, shape.layers - plan.kept)
        inputs = (min(recomputed, OFFLOAD_IN_FLIGHT) if plan.offload else recomputed) * tokens * h * cb
        kept = min(shape.layers, plan.kept) * per_layer * KEPT_LAYER_SHARE
        acts = inputs + kept + (per_layer if recomputed else 0)
    elif ckpt:
        acts = shape.layers * tokens * h * cb + per_layer
    else:
        acts = shape.layers * per_layer
    if chunked_logits and plan is not None and plan.offload:
        logits: float = min(tokens, LOGIT_CHUNK) * shape.vocab * 4 * 2  # head vectors: in LONG_VECTORS
    elif chunked_logits:
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


def fits_card(peak_gib: float, target_gib: float) -> bool:
    """Whether an estimated peak fits a card of `target_gib`, with the estimate's error and the CUDA runtime."""
    return peak_gib * (1 + PEAK_ERROR) + RUNTIME_OVERHEAD_GIB <= target_gib


def choose_plan(
    cfg: TrainingConfig,
    shape: ModelShape,
    compute: str,
    tokens: int,
    chunked_logits: bool,
    liger: bool,
    target_gib: float,
) -> MemoryPlan:
    """The fastest memory plan that fits `target_gib` with gradient checkpointing on: as many layers keeping
    their activations as fit (no recomputation for them), else every layer recomputed, then a tiled MLP, then
    the layer inputs in CPU memory. When nothing fits, the plan that needs least."""
    budget = target_gib * PLAN_FILL - RUNTIME_OVERHEAD_GIB

    def peak(plan: MemoryPlan) -> float:
        return sum(_memory(cfg, shape, compute, True, tokens, chunked_logits, liger, plan).values())

    tile = MLP_TILE if tokens > 2 * MLP_TILE else 0
    for kept in range(shape.layers, -1, -1):
        plan = MemoryPlan(kept=kept)
        if peak(plan) <= budget:
            return plan
    for plan in (MemoryPlan(mlp_tile=tile), MemoryPlan(offload=True, mlp_tile=tile)):
        if plan.mlp_tile or plan.offload:
            if peak(plan) <= budget:
                return plan
    return MemoryPlan(offload=True, mlp_tile=MLP_TILE if tokens > MLP_TILE else 0)


def own_checkpointing(resolved: Any, hw: Hardware) -> bool:
    """Whether the run recomputes layers with our memory plan (one CUDA GPU with gradient checkpointing on)
    rather than transformers' gradient checkpointing (CPU: none; several GPUs: DDP's, left as it is)."""
    return bool(hw.cuda and resolved.gradient_checkpointing and resolved.config.train.gpus <= 1)


def format_duration(seconds: float) -> str:
    """ "about 2 h 10 min", "about 12 min", "under a minute"."""
    minutes = int(round(seconds / 60))
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"about {minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours >= 48:
        return f"about {round(minutes / 1440)} days"
    return f"about {hours} h {rest} min" if rest else f"about {hours} h"


def trl_chunks_logits() -> bool:
    """TRL ≥ 1.16 computes the loss from chunks of the LM head output (never the full logits)."""
    try:
        from importlib.metadata import version

        major, minor = (int(p) for p in version("trl").split(".")[:2])
        return (major, minor) >= (1, 16)
    except Exception:  # noqa: BLE001
        return False


# Throughput of each GPU in a data-parallel run relative to the same GPU alone (gradient all-reduce, the
# slowest rank setting the pace), measured on 2 x H200 with the same global batch (benchmarks/bench_ddp_gpu.py,
# results/ddp_h200x2_session3.jsonl): 0.978 for the 8B shape, 0.826 for the 1B shape (its steps are short,
# so the exchange weighs more). Between them by log-parameters, like MEASURED_GPU.
DDP_EFFICIENCY = ((1.236e9, 0.826), (8.03e9, 0.978))


# Tokens/s of a run split across 2 GPUs (FSDP2) over 2 x one GPU's, same global batch, same call: 2,081.7 vs
# 1,179.9 tokens/s on the Qwen2.5-32B shape (NF4, micro-batch 2, 2048 tokens; benchmarks/bench_fsdp_gpu.py,
# results/fsdp_h200x2_issue12.jsonl).
SPLIT_EFFICIENCY = 0.88


def ddp_efficiency(params: float) -> float:
    (small_n, small), (big_n, big) = DDP_EFFICIENCY
    t = (math.log(max(params, 1.0)) - math.log(small_n)) / (math.log(big_n) - math.log(small_n))
    return small + min(1.0, max(0.0, t)) * (big - small)


def estimate(
    cfg: TrainingConfig,
    shape: ModelShape,
    hw: Hardware,
    *,
    target_gib: float | None = None,
    dataset_tokens: int | None = None,
    dataset_examples: int | None = None,
    chunked_logits: bool | None = None,
    cpu_target: bool = False,
    preset: str | None = None,
    cpu_measured: tuple[float, str] | None = None,
) -> Estimate:
    """Peak GPU memory on the target card and the time: on this machine's GPU, on this CPU (`cpu_target`, a
    machine without a GPU) or, on a machine without a GPU, on a typical card with `target_gib` of memory."""
    on_cpu = cpu_target and not hw.cuda
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
    plan = None
    if own_checkpointing(resolved, mem_hw):
        plan = choose_plan(rc, shape, resolved.compute_dtype, tokens, chunked, resolved.liger, target)
    parts = _memory(
        rc,
        shape,
        resolved.compute_dtype,
        resolved.gradient_checkpointing,
        tokens,
        chunked,
        resolved.liger,
        plan,
    )
    if t.shard_model and t.gpus > 1:
        parts = _split_across(parts, rc, shape, t.gpus)
    vram = sum(parts.values())
    fits = fits_card(vram, target)

    # time: on this CPU, or on the GPU the run is sized for (the detected one or the target card)
    timed = here if on_cpu else resolved
    # the recipe that will run there: a CPU does not pack (resolve_for_hardware) but batches by length
    packing = timed.config.train.packing
    # attention spans one example: packed with per-document attention, or length-grouped batches on a CPU
    attn_len = mean_len if packing or on_cpu else t.max_length
    recomputed = 1.0 if timed.gradient_checkpointing else 0.0
    if plan is not None and timed is resolved:
        recomputed = max(0, shape.layers - plan.kept) / shape.layers
    flops_token = (4 + 2 * recomputed) * shape.total_params()
    flops_token += ATTENTION_FLOPS * shape.layers * shape.hidden * attn_len
    rough_cpu = SUSTAINED_FLOPS["cpu"] * (0.5 if rc.quant.mode == "4bit" else 1.0)
    if on_cpu and cpu_measured and cpu_measured[0] * flops_token < rough_cpu * CPU_MEASURED_FLOOR:
        # far below what any CPU does: that run shared the computer with other work; not a fair figure
        speed = rough_cpu
        time_device = "this CPU"
        basis = (
            f"a rough guess for a typical CPU (25 GFLOP/s): your run {cpu_measured[1]} measured only "
            f"{cpu_measured[0]:,.0f} tokens/s, too slow to be this computer's usual speed (it was probably "
            "busy with other work)"
        )
    elif on_cpu and cpu_measured:
        speed = cpu_measured[0] * flops_token  # this computer's own tokens/s for this model
        time_device = "this CPU"
        basis = (
            f"from {cpu_measured[0]:,.0f} tokens/s measured in your run {cpu_measured[1]} on this computer"
        )
    elif on_cpu:
        speed = rough_cpu
        time_device = "this CPU"
        basis = (
            "a rough guess for a typical CPU (25 GFLOP/s); after a first run here it uses that run's speed"
        )
    else:
        measured, measured_on = measured_gpu_flops(shape.total_params())
        # the detected card, unless another card's memory was asked for (planning for a smaller GPU)
        card, relative = gpu_class(hw if hw.cuda and target_gib is None else None, target)
        speed = measured * relative
        time_device = card
        basis = f"from measured throughput of {measured_on} on an H200"
        if relative != 1.0:
            basis += f", scaled by this card's rough relative speed ({relative:g}x)"
    tok_s = speed / flops_token
    gpus = 1 if on_cpu else t.gpus
    if gpus > 1 and t.shard_model:
        # Split (FSDP): each GPU also gathers every layer's weights from the others, twice per step.
        tok_s *= gpus * SPLIT_EFFICIENCY
        basis += (
            f"; {gpus} GPUs holding the model split between them, each at {SPLIT_EFFICIENCY:.0%} of one GPU's "
            "speed (measured)"
        )
    elif gpus > 1:
        # Data parallel: every GPU trains its own micro-batches; the gradient exchange costs a little of each.
        efficiency = ddp_efficiency(shape.total_params())
        tok_s *= gpus * efficiency
        basis += f"; {gpus} GPUs, each at {efficiency:.0%} of one GPU's speed (measured data parallel)"
    steps = time_s = None
    if dataset_tokens:
        real = min(dataset_tokens, (dataset_examples or 1) * t.max_length)
        per_step = t.micro_batch_size * t.grad_accum * gpus * (t.max_length if packing else mean_len)
        steps = (
            max(1, math.ceil(real / per_step))
            if packing
            else max(1, math.ceil((dataset_examples or 1) / (t.micro_batch_size * t.grad_accum * gpus)))
        )
        epoch_tokens = real
        time_s = epoch_tokens / tok_s
        if t.max_steps:
            time_s = time_s * t.max_steps / steps
    elif t.max_steps:
        time_s = t.max_steps * t.micro_batch_size * t.grad_accum * gpus * t.max_length / tok_s

    est = Estimate(
        vram_gib=round(vram, 2),
        fits=fits,
        target_gib=round(target, 1),
        time_s=None if time_s is None else round(time_s, 1),
        steps_per_epoch=steps,
        tokens_per_s=round(tok_s, 1),
        breakdown_gib={k: round(v, 3) for k, v in parts.items()},
        notes=list(here.notes if (on_cpu or hw.cuda) else resolved.notes),
        device=hw.name if hw.cuda else f"{hw.name}; memory shown for a {target:g} GiB GPU",
        time_device=time_device,
        time_basis=basis,
        warnings=preset_warnings(preset, shape),
    )
    if plan is not None:
        est.memory_plan = plan.describe(shape.layers)
    if not fits:
        est.suggestions = _suggestions(rc, shape, mem_hw, target, resolved.gradient_checkpointing, chunked)
        if not t.shard_model:  # (a split run's own estimate does not look further)
            _suggest_split(est, rc, shape, mem_hw, target, chunked)
    return est


SPLIT_MAX_GPUS = 8


def _suggest_split(
    est: Estimate, cfg: TrainingConfig, shape: ModelShape, hw: Hardware, target: float, chunked: bool
) -> None:
    """When the run fits GPUs of the target's size only if the model is split across several: say how many
    (`split_gpus`) and suggest it, first when the weights alone fill one card (nothing else can help)."""
    n = _split_gpus_needed(cfg, shape, hw, target, chunked)
    est.split_gpus = n
    if n is None:
        return
    split = with_overrides(cfg, {"train.gpus": n, "train.shard_model": True})
    per_gpu = estimate(split, shape, hw, target_gib=target, chunked_logits=chunked).vram_gib
    text = (
        f"This model does not fit one {target:g} GiB GPU, but it fits split across {n} GPUs: set GPUs to {n} "
        f"and tick 'Split the model across GPUs' (≈{per_gpu:.1f} GiB on each; whetstone train --gpus {n} "
        "--shard)."
    )
    if _weights_alone_too_big(cfg, shape, target):
        est.suggestions = [text] + [x for x in est.suggestions if not x.startswith("Even 4-bit")]
    else:
        est.suggestions.append(text)


def _split_across(
    parts: dict[str, float], cfg: TrainingConfig, shape: ModelShape, gpus: int
) -> dict[str, float]:
    """Per-GPU memory when FSDP splits the model across `gpus`: each holds 1/gpus of the weights, the adapter
    and its optimizer state, plus the whole weights of the layer that runs and of the next one (fetched
    ahead); the activations and logits of its own micro-batch stay whole."""
    out = dict(parts)
    layer = (parts["weights"] * GIB - shape.embed_params() * 2) / max(1, shape.layers) / GIB
    out["weights"] = parts["weights"] / gpus + 2 * max(0.0, layer)
    out["lora_and_optimizer"] = parts["lora_and_optimizer"] / gpus
    return out


def _weights_alone_too_big(cfg: TrainingConfig, shape: ModelShape, target: float) -> bool:
    """Whether the 4-bit weights alone leave no room on one card (nothing but splitting can help)."""
    four = with_overrides(cfg, {"quant.mode": "4bit"}) if cfg.quant.mode == "8bit" else cfg
    weights = _memory(four, shape, "bfloat16", True, 1, True)["weights"]
    return weights + RUNTIME_OVERHEAD_GIB >= target * 0.8


def _split_gpus_needed(
    cfg: TrainingConfig, shape: ModelShape, hw: Hardware, target: float, chunked: bool
) -> int | None:
    """The fewest GPUs (2..8) of `target` GiB that hold the run when the model is split across them (4-bit),
    or None when even 8 do not, or the settings cannot be split."""
    if cfg.quant.mode == "8bit":
        return None
    for n in range(max(2, cfg.train.gpus), SPLIT_MAX_GPUS + 1):
        split = with_overrides(cfg, {"train.gpus": n, "train.shard_model": True})
        if estimate(split, shape, hw, target_gib=target, chunked_logits=chunked).fits:
            return n
    return None


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
        plan = None
        if ck and own_checkpointing(resolved, hw):
            plan = choose_plan(c, shape, compute, tokens, chunked, resolved.liger, target)
        return sum(_memory(c, shape, compute, ck, tokens, chunked, resolved.liger, plan).values()) + (
            RUNTIME_OVERHEAD_GIB
        )

    def ok(c: TrainingConfig, ck: bool) -> bool:
        return fits_card(peak(c, ck) - RUNTIME_OVERHEAD_GIB, target)

    from core.training.config import with_overrides
    from core.training.schema import setting_label

    ckpt_on = f"turn on '{setting_label('train.gradient_checkpointing')}' (gradient checkpointing)"
    memory, length_label = setting_label("quant.mode"), setting_label("train.max_length")
    per_update = t.grad_accum * t.micro_batch_size

    def batch(mb: int) -> str:
        return (
            f"'{setting_label('train.micro_batch_size')}' (micro-batch) to {mb} and "
            f"'{setting_label('train.grad_accum')}' (gradient accumulation) to {per_update // mb}"
        )

    def smaller_batch(ck: bool) -> tuple[int, TrainingConfig] | None:
        """The largest smaller micro-batch (halving, the same examples per update) that fits with `ck`."""
        mb = t.micro_batch_size
        while mb > 1:
            mb //= 2
            c = with_overrides(cfg, {"train.micro_batch_size": mb, "train.grad_accum": per_update // mb})
            if ok(c, ck):
                return mb, c
        return None

    if not ckpt and ok(cfg, True):
        out.append(f"{ckpt_on[0].upper()}{ckpt_on[1:]}: ≈{peak(cfg, True):.1f} GiB.")
    found = smaller_batch(ckpt)
    if found:
        out.append(f"Set {batch(found[0])}: the same examples per update, ≈{peak(found[1], ckpt):.1f} GiB.")
    length = t.max_length
    while length > 256:
        length //= 2
        c = with_overrides(cfg, {"train.max_length": length})
        if ok(c, ckpt):
            out.append(f"Set '{length_label}' (max length) to {length} tokens: ≈{peak(c, ckpt):.1f} GiB.")
            break
    if cfg.quant.mode != "4bit":
        c = with_overrides(cfg, {"quant.mode": "4bit"})
        if ok(c, ckpt):
            out.append(f"Set '{memory}' to 4-bit (QLoRA quantization): ≈{peak(c, ckpt):.1f} GiB.")
        elif ok(c, True):
            out.append(f"Set '{memory}' to 4-bit (QLoRA quantization) and {ckpt_on}.")
    if not out and not ckpt:
        # checkpointing alone is not enough, nor a smaller micro-batch alone: both together may be
        found = smaller_batch(True)
        if found:
            out.append(
                f"{ckpt_on[0].upper()}{ckpt_on[1:]} and set {batch(found[0])}: ≈{peak(found[1], True):.1f} GiB."
            )
    if not out:
        least = {"quant.mode": "4bit", "train.micro_batch_size": 1, "train.grad_accum": per_update}
        c = with_overrides(cfg, {**least, "train.max_length": min(512, t.max_length)})
        if ok(c, True):
            out.append(
                f"Set '{memory}' to 4-bit, {batch(1)}, '{length_label}' (max length) to "
                f"{c.train.max_length} tokens and {ckpt_on}: ≈{peak(c, True):.1f} GiB."
            )
        else:
            out.append(
                f"Even 4-bit, one example at once and {c.train.max_length} tokens need ≈{peak(c, True):.1f} "
                "GiB: pick a smaller model."
            )
    return out


def dataset_token_stats(path: str | Path) -> tuple[int, int]:
    """(approximate tokens, examples) of a data file: characters / 3.6 plus chat-template overhead."""
    from core.data.formats import read_dataset

    p = Path(path)
    if p.suffix == ".wsdb":  # the desktop's usual dataset: a workspace; its live rows are what training reads
        import sqlite3

        from core.data.workspace import DatasetWorkspace

        try:
            workspace = DatasetWorkspace.open(p)
            try:
                examples = workspace.examples()
            finally:
                workspace.close()
        except sqlite3.Error:  # busy with a long change elsewhere: no size for now (an estimate, not a check)
            return 0, 0
    else:
        examples = read_dataset(p).examples
    tokens = 0
    for ex in examples:
        tokens += int(sum(len(m.content) for m in ex.messages) / 3.6) + 8 * len(ex.messages) + 20
    return tokens, len(examples)
