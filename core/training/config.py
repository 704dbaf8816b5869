"""Typed training configuration (pydantic v2), split by topic, with presets, YAML in/out and CLI overrides.

The API the rest of the app imports; the work is done in core.training.schema (the sections, their checks,
YAML, dotted overrides; the config.yaml shape), core.training.presets, core.training.hardware (what the
'auto' settings become on this machine) and core.training.flags (the CLI's flags).
"""

from __future__ import annotations

from core.training.flags import FLAG_PATHS, config_from_args
from core.training.hardware import Hardware, Resolved, liger_available, resolve_for_hardware
from core.training.presets import PRESETS, preset_config
from core.training.schema import (
    ADV,
    ATTENTION_MODULES,
    DataSection,
    LoraSection,
    ModelSection,
    QuantSection,
    TrainingConfig,
    TrainSection,
    config_from_dict,
    deep_merge,
    load_config,
    save_config,
    with_overrides,
)

__all__ = [
    "ADV",
    "ATTENTION_MODULES",
    "DataSection",
    "FLAG_PATHS",
    "Hardware",
    "LoraSection",
    "ModelSection",
    "PRESETS",
    "QuantSection",
    "Resolved",
    "TrainSection",
    "TrainingConfig",
    "config_from_args",
    "config_from_dict",
    "deep_merge",
    "liger_available",
    "load_config",
    "preset_config",
    "resolve_for_hardware",
    "save_config",
    "with_overrides",
]
