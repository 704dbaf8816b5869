"""Named starting points for the training settings (the Train page's preset menu, `whetstone train --preset`)."""

from __future__ import annotations

from typing import Any

from core.errors import UserError
from core.training.schema import TrainingConfig, config_from_dict, deep_merge

PRESETS: dict[str, dict[str, Any]] = {
    "Quick test (CPU)": {
        "model": {"name": "smollm2-135m-instruct"},
        "quant": {"mode": "none"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {
            "learning_rate": 1e-3,
            "max_steps": 20,
            # 2 rows a pass, 2 passes a step (the same 4 rows a step): half the activations held for the
            # backward pass keeps a SmolLM2 worker under 2 GB (benchmarks/results/worker_memory_cpu.txt)
            "micro_batch_size": 2,
            "grad_accum": 2,
            "max_length": 512,
            "packing": True,
            "warmup_ratio": 0.05,
            "eval_steps": 0.25,
            "save_steps": 0.5,
            "sample_prompts": 2,
            "sample_max_new_tokens": 64,
        },
    },
    "QLoRA 7–8B on 24 GB": {
        "quant": {"mode": "4bit", "quant_type": "nf4", "double_quant": True},
        # dropout 0: no dropout copies of each adapted input (+4% tokens/s, -0.5 GiB on the 8B shape,
        # benchmarks/results/TRAIN_GPU.md); the field's description says so to the user
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {
            "learning_rate": 2e-4,
            "epochs": 1.0,
            "max_steps": 0,
            "micro_batch_size": 4,
            "grad_accum": 4,
            "max_length": 2048,
            "packing": True,
            "gradient_checkpointing": True,
            "sample_prompts": 3,
            "sample_max_new_tokens": 256,
        },
    },
    "LoRA ≤ 3B on 24 GB": {
        "quant": {"mode": "none"},
        "model": {"dtype": "bfloat16"},
        # dropout 0: no dropout copies of each adapted input (+4% tokens/s, -0.5 GiB on the 8B shape,
        # benchmarks/results/TRAIN_GPU.md); the field's description says so to the user
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {
            "learning_rate": 2e-4,
            "epochs": 1.0,
            "max_steps": 0,
            "micro_batch_size": 2,
            "grad_accum": 8,
            "max_length": 2048,
            "packing": True,
            "gradient_checkpointing": True,
            "sample_prompts": 3,
            "sample_max_new_tokens": 256,
        },
    },
}


def preset_config(name: str, base: TrainingConfig | None = None) -> TrainingConfig:
    """The preset applied over `base` (keeping its model and data unless the preset names them)."""
    if name not in PRESETS:
        raise UserError(f"Unknown preset '{name}' (known: {', '.join(PRESETS)}).")
    start = (base or TrainingConfig()).to_dict()
    return config_from_dict(deep_merge(start, PRESETS[name]))
