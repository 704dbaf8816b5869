"""The one model-loading layer: every stage (token counting, training, evaluation, merge, export) loads the
tokenizer, the base model and base + adapter here, so they all see the same model.

- `load_tokenizer(model_dir)`: the fast tokenizer with its chat template.
- `load_base_model(model_dir, device=, dtype=, quant=)`: the base, optionally 4/8-bit (bitsandbytes), with
  the attention kernel `attention_implementation` picks for that model.
- `load_with_adapter(run_folder)` (or base_dir + adapter_dir): the unquantized base with the run's adapter,
  the embeddings resized to the trained tokenizer; Evaluate and Export both use it.
- `pick_device`, `compute_dtype`, `detect_hardware`: where and in what precision.
- `trust_remote_code`: off unless the model's registry entry allows it (the user ticked "Allow this model's
  own code" when adding it); `None` means "what the registry says for this folder".

torch/transformers/peft are imported inside the functions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError, WhetstoneError

if TYPE_CHECKING:
    from core.runs import RunFolder
    from core.training.config import Hardware

# Model types whose attention PyTorch's fused sdpa kernel cannot compute exactly: Gemma 2 soft-caps the
# attention logits (transformers recommends eager for training it), and these architectures' own code has no
# sdpa path.
_EAGER_MODEL_TYPES = {"gemma2", "cohere2"}


# --- device -----------------------------------------------------------------------------------------------
def pick_device(device: str | None = None) -> str:
    """`device` if given, else "cuda" when torch sees a GPU, else "cpu"."""
    if device:
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def compute_dtype(device: str) -> Any:
    """bfloat16 on a GPU that has it, float16 on an older GPU, float32 on the CPU."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def torch_dtype(name: str) -> Any:
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def detect_hardware() -> Hardware:
    """torch's view of the device. WHETSTONE_GPU_CAP_GIB=24 makes a bigger card behave like a 24 GiB one
    (allocations past it fail), for checking what fits a user's GPU."""
    import torch

    from core.training.config import Hardware

    if torch.cuda.is_available():
        # each rank of a multi-GPU run has its own GPU (accelerate's LOCAL_RANK); the cap applies to that one
        index = int(os.environ.get("LOCAL_RANK", "0") or 0) % max(1, torch.cuda.device_count())
        props = torch.cuda.get_device_properties(index)
        total = props.total_memory / 2**30
        cap = float(os.environ.get("WHETSTONE_GPU_CAP_GIB") or 0)
        if 0 < cap < total:
            torch.cuda.set_per_process_memory_fraction(cap / total, index)
            total = cap
        return Hardware(True, bool(torch.cuda.is_bf16_supported()), torch.cuda.get_device_name(index), total)
    return Hardware(False, False, "CPU")


# --- trust ------------------------------------------------------------------------------------------------
def registry_allows_code(model_dir: str | Path) -> bool:
    """Whether the user allowed this model's own code: its registry entry (by id or folder) says so."""
    try:
        from core.models import ModelRegistry

        target = Path(model_dir).expanduser()
        resolved = target.resolve() if target.exists() else None
        for entry in ModelRegistry().list():
            if entry.id == str(model_dir) or (resolved is not None and Path(entry.path) == resolved):
                return bool(entry.trust_remote_code)
    except (OSError, ValueError):
        return False
    return False


def _trust(model_dir: str | Path, trust_remote_code: bool | None) -> bool:
    return registry_allows_code(model_dir) if trust_remote_code is None else bool(trust_remote_code)


def _read_config(model_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- tokenizer --------------------------------------------------------------------------------------------
def load_tokenizer(
    model_dir: str | Path,
    *,
    trust_remote_code: bool | None = None,
    require_chat_template: bool = False,
    set_pad: bool = False,
) -> Any:
    """The tokenizer saved in `model_dir` (a model or adapter folder). `set_pad`: use the end-of-text token
    for padding when the model has no pad token (training and batched generation need one)."""
    from transformers import AutoTokenizer

    folder = Path(model_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder), trust_remote_code=_trust(folder, trust_remote_code)
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"The tokenizer of {folder} cannot be loaded: {first}") from None
    if require_chat_template and not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{folder} has no chat template; choose an instruct/chat model.")
    if set_pad and tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# --- attention --------------------------------------------------------------------------------------------
def attention_implementation(config: Any, device: str, requested: str = "auto") -> str:
    """The attention kernel for this model on this device.

    `config` is the model's config (a transformers PretrainedConfig, a config.json dict or a model folder).
    "auto": sdpa where it computes the model's attention exactly, eager where it cannot (Gemma 2's soft-capped
    attention logits; architectures without an sdpa path). flash_attention_2 only on a GPU."""
    if isinstance(config, (str, Path)):
        config = _read_config(Path(config))
    get = (
        config.get if isinstance(config, dict) else (lambda key, default=None: getattr(config, key, default))
    )
    model_type = str(get("model_type", "") or "")
    softcap = get("attn_logit_softcapping", None)
    needs_eager = model_type in _EAGER_MODEL_TYPES or bool(softcap) or not _class_supports_sdpa(get)
    if requested == "flash_attention_2" and not device.startswith("cuda"):
        requested = "auto"
    if requested == "sdpa" and needs_eager:
        return "eager"
    if requested != "auto":
        return requested
    return "eager" if needs_eager else "sdpa"


def _class_supports_sdpa(get: Any) -> bool:
    architectures = get("architectures", None) or []
    if not architectures:
        return True
    try:
        import transformers

        cls = getattr(transformers, str(architectures[0]), None)
    except ImportError:
        return True
    return bool(getattr(cls, "_supports_sdpa", True)) if cls is not None else True


# --- base model -------------------------------------------------------------------------------------------
def quantization_config(
    quant: str | None, compute: Any, quant_type: str = "nf4", double_quant: bool = True
) -> Any:
    """BitsAndBytesConfig for "4bit"/"8bit", None for no quantization."""
    if quant in (None, "none"):
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if quant == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant_type,
            bnb_4bit_use_double_quant=double_quant,
            bnb_4bit_compute_dtype=compute,
            bnb_4bit_quant_storage=compute if compute != torch.float32 else torch.uint8,
        )
    if quant == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise UserError(f"Unknown quantization {quant!r}; choose 4bit, 8bit or none.")


def load_base_model(
    model_dir: str | Path,
    *,
    device: str | None = None,
    dtype: Any = None,
    quant: str | None = None,
    trust_remote_code: bool | None = None,
    attn_implementation: str = "auto",
    quantization: Any = None,
    keep_on_cpu: bool = False,
) -> Any:
    """The base model from `model_dir` on `device` (default: pick_device()). `quant` "4bit"/"8bit" loads it
    through bitsandbytes (or pass a ready `quantization` config); `dtype` defaults to compute_dtype(device).
    `keep_on_cpu`: the (quantized) weights stay in CPU memory although the model is set up for `device`:
    for a model split across GPUs, which FSDP moves there one shard per GPU (no GPU holds it whole)."""
    from transformers import AutoModelForCausalLM

    folder = Path(model_dir)
    device = pick_device(device)
    dtype = dtype if dtype is not None else compute_dtype(device)
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "attn_implementation": attention_implementation(folder, device, attn_implementation),
        "trust_remote_code": _trust(folder, trust_remote_code),
    }
    qconfig = quantization if quantization is not None else quantization_config(quant, dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        # One GPU per process: accelerate's launcher gives each rank of a multi-GPU run its LOCAL_RANK.
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0")) if device == "cuda" else device}
        if keep_on_cpu:
            kwargs["device_map"] = {"": "cpu"}
    model: Any = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    if keep_on_cpu:
        keep_4bit_trainable_on_cpu(model)
        return model
    if qconfig is None:
        model = model.to(f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if device == "cuda" else device)
    elif not device.startswith("cuda"):
        keep_4bit_trainable_on_cpu(model)
    return model


def keep_4bit_trainable_on_cpu(model: Any) -> int:
    """bitsandbytes' 4-bit layers on a CPU with AVX512-BF16 repack their weights for a faster inference
    kernel the first time they run in eval mode without gradients (e.g. a validation pass). That kernel has
    no autograd: once repacked, every later training step goes through it, and in layers with a bias
    (Qwen2.5's q/k/v, GPT-NeoX) its in-place `result += bias` raises "a view of a leaf Variable that requires
    grad is being used in an in-place operation". Turning the repacking off keeps the autograd path; returns
    the number of layers changed."""
    changed = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


# --- base + adapter ---------------------------------------------------------------------------------------
def adapter_tokenizer_source(adapter_dir: Path, base_dir: Path) -> Path:
    """The tokenizer the run trained with (saved beside the adapter), else the base model's."""
    return adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else base_dir


def load_with_adapter(
    run_or_base: RunFolder | str | Path,
    adapter_dir: str | Path | None = None,
    *,
    device: str | None = None,
    dtype: Any = None,
    trust_remote_code: bool | None = None,
) -> tuple[Any, Any]:
    """(PeftModel, tokenizer): the base unquantized (full precision for merging and evaluating) with the
    run's adapter applied, in eval mode. Give a run folder, or a base folder and an adapter folder. The input
    embeddings are resized when the trained tokenizer is longer than the base's vocabulary."""
    import logging

    from peft import PeftModel

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # peft imports it; its CPU notice is noise
    if adapter_dir is None:
        from core.models import resolve_base_model
        from core.runs import RunFolder

        run = run_or_base if isinstance(run_or_base, RunFolder) else RunFolder.open(run_or_base)
        base_dir = resolve_base_model(run.base_model())
        adapter = run.adapter_dir
        if trust_remote_code is None:
            trust_remote_code = registry_allows_code(run.base_model())
    else:
        base_dir, adapter = Path(str(run_or_base)), Path(adapter_dir)
    if not (adapter / "adapter_config.json").exists():
        raise UserError(f"{adapter} holds no adapter (adapter_config.json); has the run finished?")
    trust = _trust(base_dir, trust_remote_code)
    tokenizer = load_tokenizer(adapter_tokenizer_source(adapter, base_dir), trust_remote_code=trust)
    try:
        base = load_base_model(base_dir, device=device, dtype=dtype, trust_remote_code=trust)
        rows = base.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > rows:
            base.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(base, str(adapter), is_trainable=False)
    except (OSError, ValueError) as exc:
        raise WhetstoneError(f"Cannot load the model with its adapter: {exc}") from exc
    model.eval()
    return model, tokenizer
