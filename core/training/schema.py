"""Typed training configuration (pydantic v2), split by topic: the schema, validation, YAML in/out, overrides.

config.yaml shape (the run folder's contract; Evaluate/Export read `model.name`):

    model: {name, dtype, attn_implementation}
    quant: {mode: 4bit|8bit|none, quant_type, double_quant, compute_dtype}
    lora:  {r, alpha, dropout, target_modules}
    train: {learning_rate, lr_scheduler, warmup_ratio, epochs, max_steps, micro_batch_size, grad_accum,
            max_length, packing, assistant_only_loss, gradient_checkpointing, gpus, shard_model, liger, seed, eval_steps,
            save_steps, logging_steps, weight_decay, max_grad_norm, sample_prompts, sample_max_new_tokens}
    data:  {source, val_ratio, test_ratio, split_seed}

Field titles and descriptions are the form's labels and help text (desktop/pages/train.py builds the form
from them). `json_schema_extra={"advanced": True}` puts a field under the form's "Advanced" fold.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import UserError

ADV: dict[str, Any] = {"advanced": True}
ATTENTION_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class ModelSection(_Section):
    name: str = Field(
        default="smollm2-135m-instruct",
        title="Base model",
        description="The model to fine-tune: an id from the model list or a local folder with safetensors.",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto",
        title="Model precision (dtype)",
        description="How precisely the model's numbers that are not compressed are stored; leave it on "
        "'auto' (bfloat16 on a recent GPU, float16 on an older one, float32 on a CPU).",
        json_schema_extra=ADV,
    )
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        default="auto",
        title="Attention code (attention kernel)",
        description="'auto' picks per model: 'sdpa' (PyTorch's fused attention, fast) where it computes the "
        "model's attention exactly, 'eager' where it cannot (Gemma 2's soft-capped attention); on a GPU with "
        "packing, attention per document inside each packed row (flash varlen, the fastest) where the model "
        "allows it; "
        "'flash_attention_2' needs the flash-attn package and a GPU; 'eager' is the slow reference.",
        json_schema_extra=ADV,
    )


class QuantSection(_Section):
    mode: Literal["4bit", "8bit", "none"] = Field(
        default="4bit",
        title="Memory saving (quantization)",
        description="Stores the base model compressed so a bigger model fits a GPU: 4-bit (QLoRA) uses the "
        "least memory and is the usual choice; 8-bit uses more; Off (plain LoRA) is fastest but needs the "
        "most memory.",
        json_schema_extra={
            "choices": {"4bit": "4-bit (QLoRA)", "8bit": "8-bit", "none": "Off (full precision)"}
        },
    )
    quant_type: Literal["nf4", "fp4"] = Field(
        default="nf4",
        title="4-bit number format (quant type)",
        description="How 4-bit compression stores numbers; keep NF4 (NormalFloat, the QLoRA paper's format), "
        "which is almost always better.",
        json_schema_extra=ADV,
    )
    double_quant: bool = Field(
        default=True,
        title="Compress more (double quantization)",
        description="Also compresses the 4-bit scales: saves about 0.4 GB on an 8B model at no cost in "
        "quality; leave it on.",
        json_schema_extra=ADV,
    )
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto",
        title="Calculation precision (compute dtype)",
        description="How precisely the calculations run; leave it on 'auto': bfloat16 on a GPU that has it, "
        "float32 on a CPU (most CPUs compute bfloat16 about 8x slower).",
        json_schema_extra=ADV,
    )


class LoraSection(_Section):
    r: int = Field(
        default=16,
        ge=1,
        le=1024,
        title="Adapter size (LoRA rank)",
        description="How much the small trained add-on (the adapter) can learn: 8–16 suits most tasks; raise "
        "it only if the model keeps getting the training examples wrong.",
    )
    alpha: int = Field(
        default=32,
        ge=1,
        le=4096,
        title="Adapter strength (LoRA alpha)",
        description="How strongly the adapter's changes count; keep it at about 2× the adapter size.",
        json_schema_extra=ADV,
    )
    dropout: float = Field(
        default=0.05,
        ge=0.0,
        lt=1.0,
        title="Random drop-out (LoRA dropout)",
        description="Randomly ignores part of the adapter's input while training; can help a small dataset "
        "from being learned by heart. "
        "The GPU presets use 0 (Unsloth's default too): dropout copies every adapted layer's input, which "
        "costs about 4% of the speed and 0.5 GiB on an 8B model.",
        json_schema_extra=ADV,
    )
    target_modules: Literal["attention", "all-linear"] | list[str] = Field(
        default="all-linear",
        title="Layers to adapt (target modules)",
        description="Which parts of the model the adapter changes: all linear layers give the best quality "
        "(recommended); attention only (q, k, v, o) makes a smaller adapter and trains a little faster.",
        json_schema_extra={"choices": {"all-linear": "All linear layers", "attention": "Attention only"}},
    )

    @field_validator("target_modules")
    @classmethod
    def _modules(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one layer to adapt, or use 'all-linear'")
        return value

    def peft_target_modules(self) -> str | list[str]:
        if self.target_modules == "attention":
            return list(ATTENTION_MODULES)
        return self.target_modules


class TrainSection(_Section):
    learning_rate: float = Field(
        default=2e-4,
        gt=0.0,
        lt=1.0,
        title="Learning speed (learning rate)",
        description="How big a change each training step makes: 0.0001 to 0.0003 is typical; lower it if the "
        "loss curve jumps around or shows NaN.",
    )
    epochs: float = Field(
        default=1.0,
        ge=0.0,
        le=100.0,
        title="Passes over the data (epochs)",
        description="How many times training reads every example: 1–3 is typical; more can make the model "
        "repeat its examples word for word (ignored when a step limit is set).",
    )
    max_steps: int = Field(
        default=0,
        ge=0,
        title="Step limit (max steps)",
        description="Stop after this many training steps, for a quick trial run; 0 = no limit, train for the "
        "number of passes over the data.",
    )
    micro_batch_size: int = Field(
        default=4,
        ge=1,
        le=1024,
        title="Examples at once (micro-batch)",
        description="How many examples the computer works on at the same time: lower it first when memory "
        "runs out (and raise Batches per update to keep the same result).",
    )
    grad_accum: int = Field(
        default=4,
        ge=1,
        le=1024,
        title="Batches per update (gradient accumulation)",
        description="How many of those batches are added up before the model changes: examples per update = "
        "examples at once × this; raise it instead of Examples at once when memory is short.",
    )
    max_length: int = Field(
        default=2048,
        ge=16,
        le=1_048_576,
        title="Longest example (max length, tokens)",
        description="Examples longer than this many tokens (about ¾ of a word each) are cut short: set it "
        "above your longest examples (the Data page counts them); memory grows with it.",
    )
    packing: bool = Field(
        default=True,
        title="Combine short examples (packing)",
        description="Trains several short examples side by side in one row (each still sees only itself): "
        "much faster on a GPU when most examples are short; the results are the same.",
    )
    assistant_only_loss: bool = Field(
        default=True,
        title="Learn only the answers",
        description="Learn from the assistant's replies only, not from the system prompts and questions "
        "(recommended): the model learns to answer, not to write questions.",
    )
    gradient_checkpointing: bool | None = Field(
        default=None,
        title="Trade speed for memory (gradient checkpointing)",
        description="Recomputes intermediate results instead of keeping them: saves GPU memory, about 30% "
        "slower. Automatic = on for a GPU, off on a CPU.",
        json_schema_extra=ADV,
    )
    gpus: int = Field(
        default=1,
        ge=1,
        le=64,
        title="GPUs",
        description="How many GPUs of this machine train together (data parallel: one process per GPU, each "
        "with a whole copy of the model, the effective batch multiplied by the count). Every GPU must hold "
        "the model and its batch; the time goes down about in proportion.",
        json_schema_extra=ADV,
    )
    shard_model: bool = Field(
        default=False,
        title="Split the model across GPUs",
        description="For a model too big for one GPU: each GPU holds only its share of the (4-bit) weights "
        "and they pass each layer to each other as it runs (FSDP through accelerate). Needs 2 or more GPUs; "
        "slower than each GPU holding a whole copy, so use it only when the model does not fit one card. "
        "The adapter is saved as usual.",
        json_schema_extra=ADV,
    )
    liger: bool | None = Field(
        default=None,
        title="Faster GPU code (Liger kernels)",
        description="Faster, leaner GPU code for parts of the model (Liger's fused Triton kernels); "
        "Automatic = on when a GPU and the liger-kernel package are there.",
        json_schema_extra=ADV,
    )
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        default="cosine",
        title="Speed over the run (learning-rate schedule)",
        json_schema_extra={
            "advanced": True,
            "choices": {
                "cosine": "Cosine",
                "linear": "Linear",
                "constant": "Constant",
                "constant_with_warmup": "Constant + warm-up",
            },
        },
        description="How the learning speed changes over the run after the warm-up; Cosine (slowing down "
        "towards the end) suits most runs.",
    )
    warmup_ratio: float = Field(
        default=0.03,
        ge=0.0,
        le=0.5,
        title="Warm-up share (warmup ratio)",
        description="Share of the run over which the learning speed ramps up from 0 (0.03 = the first 3%); "
        "raise it if the loss jumps at the start.",
        json_schema_extra=ADV,
    )
    weight_decay: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        title="Pull towards zero (weight decay)",
        description="Gently pulls the adapter's numbers towards zero each step (AdamW weight decay); 0 is "
        "fine for most runs.",
        json_schema_extra=ADV,
    )
    max_grad_norm: float = Field(
        default=1.0,
        gt=0.0,
        title="Largest step (gradient clipping)",
        description="Caps how big a single change can be (the gradient norm); 1.0 suits most runs, lower it "
        "if the loss spikes.",
        json_schema_extra=ADV,
    )
    seed: int = Field(
        default=0,
        ge=0,
        title="Random seed",
        description="The same seed with the same data and settings gives the same run; change it to see how "
        "much results vary.",
        json_schema_extra=ADV,
    )
    eval_steps: float = Field(
        default=0.1,
        gt=0.0,
        title="Validate every",
        description="Steps between checks on the held-out validation examples; a value below 1 is a share "
        "of the run (0.1 = ten checks).",
        json_schema_extra=ADV,
    )
    save_steps: float = Field(
        default=0.25,
        gt=0.0,
        title="Save progress every (checkpoint)",
        description="Steps between saved checkpoints that Resume continues from; a value below 1 is a share "
        "of the run.",
        json_schema_extra=ADV,
    )
    logging_steps: int = Field(
        default=1,
        ge=1,
        title="Report every",
        description="Steps between points on the loss chart; raise it to make long runs' logs shorter.",
        json_schema_extra=ADV,
    )
    sample_prompts: int = Field(
        default=3,
        ge=0,
        le=16,
        title="Sample answers",
        description="At each validation the model answers this many fixed validation prompts (greedy), shown "
        "in the Samples tab next to the reference answers; a red flag is raised when the answers get much "
        "longer or shorter than the references or stop ending. 0 = off.",
        json_schema_extra=ADV,
    )
    sample_max_new_tokens: int = Field(
        default=256,
        ge=8,
        le=4096,
        title="Sample answer limit (tokens)",
        description="The longest a sample answer may get. Answers are also cut at 1.5× the longest reference "
        "answer of the sampled prompts, so short answers cost little time.",
        json_schema_extra=ADV,
    )

    @model_validator(mode="after")
    def _check(self) -> TrainSection:
        if self.max_steps == 0 and self.epochs <= 0:
            raise ValueError(
                "set either Epochs (passes over the data, above 0) or a Step limit, otherwise training would do "
                "nothing"
            )
        if self.eval_steps >= 1 and self.eval_steps != int(self.eval_steps):
            raise ValueError("'Validate every' must be a whole number of steps, or a fraction below 1")
        if self.save_steps >= 1 and self.save_steps != int(self.save_steps):
            raise ValueError("'Save progress every' must be a whole number of steps, or a fraction below 1")
        if self.shard_model and self.gpus < 2:
            raise ValueError("splitting the model across GPUs needs 2 or more GPUs; set GPUs to 2 or more")
        return self


class DataSection(_Section):
    source: str = Field(
        default="",
        title="Dataset",
        description="A data file (JSONL etc.) or a workspace (.wsdb). Its snapshot is pinned in the run folder.",
    )
    val_ratio: float = Field(
        default=0.1,
        ge=0.0,
        le=0.5,
        title="Validation share",
        description="Share of examples held out to see whether the model only learns its examples by heart "
        "(used when the data has no splits).",
        json_schema_extra=ADV,
    )
    test_ratio: float = Field(
        default=0.1,
        ge=0.0,
        le=0.5,
        title="Test share",
        description="Share held out for the Evaluate page (used when the data has no splits).",
        json_schema_extra=ADV,
    )
    split_seed: int = Field(
        default=0,
        ge=0,
        title="Split seed",
        description="Seed of the random split into train, validation and test; the same seed gives the same "
        "split.",
        json_schema_extra=ADV,
    )

    @model_validator(mode="after")
    def _check(self) -> DataSection:
        if self.val_ratio + self.test_ratio >= 0.9:
            raise ValueError("validation + test shares leave almost nothing to train on; keep them below 0.9")
        return self


class TrainingConfig(_Section):
    model: ModelSection = Field(default_factory=lambda: ModelSection())
    quant: QuantSection = Field(default_factory=lambda: QuantSection())
    lora: LoraSection = Field(default_factory=lambda: LoraSection())
    train: TrainSection = Field(default_factory=lambda: TrainSection())
    data: DataSection = Field(default_factory=lambda: DataSection())

    @model_validator(mode="after")
    def _cross(self) -> TrainingConfig:
        t = self.train
        if (
            self.quant.mode != "none"
            and self.model.dtype == "float32"
            and self.quant.compute_dtype == "float16"
        ):
            raise ValueError("float16 compute with float32 weights mixes precisions badly; pick 'auto'")
        if self.lora.alpha > 16 * self.lora.r:
            raise ValueError(
                f"LoRA alpha {self.lora.alpha} is far above the rank {self.lora.r}; the adapter would take huge "
                "steps. Use about 2× the rank."
            )
        if t.max_length < 64 and t.assistant_only_loss:
            raise ValueError(
                f"Longest example (max length) {t.max_length} tokens is too short to hold a question and its "
                "answer; use at least 64."
            )
        if t.shard_model and self.quant.mode == "8bit":
            raise ValueError(
                "a model split across GPUs is stored in 4bit (or unquantized); 8bit cannot be split. "
                "Pick 4bit"
            )
        if self.quant.mode == "8bit" and self.quant.quant_type == "fp4":
            raise ValueError("the 4-bit format setting only applies to 4bit quantization; leave it at nf4")
        return self

    # --- convenience --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))

    def effective_batch(self) -> int:
        return self.train.micro_batch_size * self.train.grad_accum


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        msg = str(err.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown setting (check its spelling)"
        parts.append(f"{where}: {msg}" if where else msg)
    return "Invalid training settings — " + "; ".join(parts)


def split_title(title: str) -> tuple[str, str]:
    """("Adapter size", "LoRA rank") from "Adapter size (LoRA rank)"; (title, "") without a term."""
    if title.endswith(")") and " (" in title:
        plain, term = title[:-1].rsplit(" (", 1)
        return plain, term
    return title, ""


def setting_label(path: str) -> str:
    """The plain words the Train form labels a setting with ("train.micro_batch_size" -> "Examples at once"):
    the field title without its bracketed technical term, so messages name settings as the user sees them."""
    section, name = path.split(".", 1)
    field = type(getattr(TrainingConfig(), section)).model_fields[name]
    return split_title(field.title or name)[0]


def config_from_dict(data: dict[str, Any]) -> TrainingConfig:
    try:
        return TrainingConfig.model_validate(data or {})
    except ValidationError as exc:
        raise UserError(_explain(exc)) from None


def load_config(path: str | Path) -> TrainingConfig:
    import yaml

    file = Path(path).expanduser()
    if not file.exists():
        raise UserError(f"Config file not found: {file}")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"Cannot read {file}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{file} must hold a mapping of sections (model, quant, lora, train, data).")
    return config_from_dict(data)


def save_config(config: TrainingConfig, path: str | Path) -> None:
    from core.atomic import atomic_write_text

    atomic_write_text(path, config.to_yaml())


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def with_overrides(config: TrainingConfig, overrides: dict[str, Any]) -> TrainingConfig:
    """Apply dotted overrides {"train.max_steps": 20, ...} and validate again."""
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = nested
        keys = dotted.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return config_from_dict(deep_merge(config.to_dict(), nested))
