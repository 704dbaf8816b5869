"""`whetstone train`/`estimate` flags -> training settings: --preset, then --config, then single flags."""

from __future__ import annotations

from typing import Any

from core.training.presets import preset_config
from core.training.schema import TrainingConfig, config_from_dict, deep_merge, load_config, with_overrides

FLAG_PATHS = {
    "model": "model.name",
    "max_steps": "train.max_steps",
    "epochs": "train.epochs",
    "lr": "train.learning_rate",
    "lora_r": "lora.r",
    "quant": "quant.mode",
    "max_length": "train.max_length",
    "seed": "train.seed",
    "micro_batch": "train.micro_batch_size",
    "grad_accum": "train.grad_accum",
    "packing": "train.packing",
    "gradient_checkpointing": "train.gradient_checkpointing",
    "target_modules": "lora.target_modules",
    "eval_steps": "train.eval_steps",
    "save_steps": "train.save_steps",
    "gpus": "train.gpus",
    "shard": "train.shard_model",
}


def config_from_args(args: Any) -> TrainingConfig:
    """--preset, then --config, then individual flags (flags win)."""
    config = TrainingConfig()
    preset = getattr(args, "preset", None)
    if preset:
        config = preset_config(preset, config)
    if getattr(args, "config", None):
        loaded = load_config(args.config)
        config = config_from_dict(deep_merge(config.to_dict(), loaded.model_dump(exclude_unset=True)))
    overrides = {path: getattr(args, flag, None) for flag, path in FLAG_PATHS.items()}
    if overrides.get("train.max_steps") is not None and getattr(args, "epochs", None) is None:
        pass  # max_steps wins over epochs anyway
    if overrides.get("train.epochs") is not None and overrides.get("train.max_steps") is None:
        overrides["train.max_steps"] = 0  # --epochs on the command line means "train by epochs"
    return with_overrides(config, overrides)
