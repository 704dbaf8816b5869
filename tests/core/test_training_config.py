"""Typed training config: presets, validation messages, YAML round trip, CLI overrides, CPU choices."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from core.errors import UserError
from core.training.config import (
    PRESETS,
    Hardware,
    TrainingConfig,
    config_from_args,
    config_from_dict,
    load_config,
    preset_config,
    resolve_for_hardware,
    save_config,
    with_overrides,
)


def test_defaults_have_the_contract_shape() -> None:
    data = TrainingConfig().to_dict()
    assert set(data) == {"model", "quant", "lora", "train", "data"}
    assert data["model"]["name"] == "smollm2-135m-instruct"
    assert data["quant"]["mode"] == "4bit"
    assert data["train"]["assistant_only_loss"] is True
    assert data["train"]["packing"] is True


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid(name: str) -> None:
    cfg = preset_config(name)
    assert cfg.train.max_length >= 256
    if "QLoRA" in name:
        assert cfg.quant.mode == "4bit" and cfg.lora.target_modules == "all-linear"
    if "CPU" in name:
        assert cfg.train.max_steps > 0


def test_preset_keeps_the_chosen_model() -> None:
    base = with_overrides(TrainingConfig(), {"model.name": "/models/llama-8b"})
    assert preset_config("QLoRA 7–8B on 24 GB", base).model.name == "/models/llama-8b"


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = with_overrides(TrainingConfig(), {"lora.r": 32, "lora.alpha": 64, "train.max_steps": 7})
    file = tmp_path / "c.yaml"
    save_config(cfg, file)
    assert yaml.safe_load(file.read_text())["model"]["name"] == cfg.model.name
    assert load_config(file) == cfg


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"train.epochs": 0, "train.max_steps": 0}, "either Epochs"),
        ({"lora.r": 4, "lora.alpha": 512}, "far above the rank"),
        ({"train.max_length": 32}, "too short"),
        ({"data.val_ratio": 0.5, "data.test_ratio": 0.45}, "almost nothing to train"),
        ({"train.learning_rate": 0}, "learning_rate"),
        ({"quant.mode": "3bit"}, "quant.mode"),
    ],
)
def test_validation_messages_are_plain(overrides: dict, words: str) -> None:
    with pytest.raises(UserError) as info:
        with_overrides(TrainingConfig(), overrides)
    text = str(info.value)
    assert words in text
    assert "\n" not in text and "pydantic" not in text.lower()


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="train.lerning_rate: unknown setting"):
        config_from_dict({"train": {"lerning_rate": 1e-4}})


def test_cpu_resolution_is_fp32_without_checkpointing(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.training import packed_attention

    monkeypatch.setattr(packed_attention, "varlen_available", lambda: True)  # a CUDA torch on the GPU machine
    cfg = with_overrides(
        TrainingConfig(), {"train.gradient_checkpointing": True, "quant.compute_dtype": "bfloat16"}
    )
    r = resolve_for_hardware(cfg, Hardware(False, False, "CPU"))
    assert r.compute_dtype == "float32" and r.weights_dtype == "float32"
    assert r.gradient_checkpointing is False and r.liger is False
    assert any("float32" in n for n in r.notes)
    g = resolve_for_hardware(TrainingConfig(), Hardware(True, True, "RTX 4090", 24.0))
    assert g.compute_dtype == "bfloat16" and g.gradient_checkpointing is True and not g.notes


def test_cpu_notes_speak_plain_words_with_the_terms_only_in_parentheses() -> None:
    """The Estimate box and `whetstone estimate` show these notes to people who do not write code: every CPU
    note explains itself in plain words; float32, bf16 or gradient checkpointing appear only in parentheses."""
    import re

    cfg = with_overrides(
        TrainingConfig(),
        {
            "train.gradient_checkpointing": True,
            "quant.compute_dtype": "bfloat16",
            "model.attn_implementation": "flash_attention_2",
        },
    )
    notes = resolve_for_hardware(cfg, Hardware(False, False, "CPU")).notes
    assert len(notes) == 5  # CPU, precision replaced, recomputing off, attention code, batched by length
    jargon = ("float32", "bf16", "bfloat16", "gradient checkpointing", "cuda", "dtype", "flash_attention")
    for note in notes:
        plain = re.sub(r"\([^()]*\)", "", note).lower()
        assert not [w for w in jargon if w in plain], note
        assert len(note) <= 200, note  # short enough to read in the Estimate box
    assert "(float32, no gradient checkpointing)" in notes[0]  # the precise terms stay, after the words


def test_cpu_batches_by_length_instead_of_packing() -> None:
    """Packed rows make attention span the whole row on a CPU (no variable-length kernels): off there."""
    from core.training.trainer import sft_config

    cpu = resolve_for_hardware(TrainingConfig(), Hardware(False, False, "CPU"))
    assert cpu.config.train.packing is False and any("batched by length" in n for n in cpu.notes)
    args = sft_config(cpu, Hardware(False, False, "CPU"), "/tmp/unused", has_eval=True)
    assert args.train_sampling_strategy == "group_by_length" and not args.padding_free
    for ckpt in (True, False):  # set under transformers' current name for it, read back under either
        on = sft_config(
            replace(cpu, gradient_checkpointing=ckpt), Hardware(False, False, "CPU"), "/tmp/u", True
        )
        assert on.gradient_checkpointing is ckpt and getattr(on, "activation_checkpointing", ckpt) is ckpt
        # a caller's own setting wins (the memory plan turns checkpointing off: it recomputes instead)
        off = sft_config(cpu, Hardware(False, False, "CPU"), "/tmp/u", True, gradient_checkpointing=not ckpt)
        assert off.gradient_checkpointing is (not ckpt)
    gpu = resolve_for_hardware(TrainingConfig(), Hardware(True, True, "RTX 4090", 24.0))
    assert gpu.config.train.packing is True


def test_validation_is_sized_to_the_run() -> None:
    """A fraction of the run becomes whole steps with a minimum gap, so a short run validates only at its end."""
    from types import SimpleNamespace

    from core.training.trainer import size_validation

    def trainer(rows: int) -> SimpleNamespace:
        return SimpleNamespace(train_dataset=list(range(rows)), args=SimpleNamespace(eval_steps=0.25))

    t = TrainingConfig().train.model_copy(update={"eval_steps": 0.25, "micro_batch_size": 4, "grad_accum": 1})
    short = trainer(28)  # 7 steps
    message = size_validation(short, t, cuda=False)
    assert short.args.eval_steps == 7 and message and "once, at the end" in message and "7-step" in message
    mid = trainer(200)  # 50 steps on a CPU: 2 checks
    assert "2 times" in (size_validation(mid, t, cuda=False) or "") and mid.args.eval_steps == 25
    long = trainer(800)  # 200 steps: the 4 checks asked for
    assert size_validation(long, t, cuda=False) is None and long.args.eval_steps == 50
    gpu = trainer(200)
    assert size_validation(gpu, t, cuda=True) is None and gpu.args.eval_steps == 13
    fixed = trainer(28)
    t_fixed = t.model_copy(update={"eval_steps": 3.0})
    assert size_validation(fixed, t_fixed, cuda=False) is None and fixed.args.eval_steps == 0.25  # kept


def test_cpu_validation_takes_a_small_share_of_the_run() -> None:
    """On a CPU the checks with their sample answers stay within about a tenth of the run: the benchmark's
    50-step run with 20 validation rows validates once; a long run keeps the 4 checks asked for; a large
    validation split is checked once, and the message says what a check costs."""
    from types import SimpleNamespace

    from core.training.trainer import size_validation

    def trainer(rows: int, val_rows: int) -> SimpleNamespace:
        return SimpleNamespace(
            train_dataset=list(range(rows)),
            eval_dataset=list(range(val_rows)),
            args=SimpleNamespace(eval_steps=0.25),
        )

    t = TrainingConfig().train.model_copy(update={"eval_steps": 0.25, "micro_batch_size": 4, "grad_accum": 1})
    bench = trainer(200, 20)  # 50 steps; 2 sample prompts of up to 41 tokens
    message = size_validation(bench, t, cuda=False, sample_tokens=41)
    assert bench.args.eval_steps == 50 and message and "once, at the end" in message
    long = trainer(800, 20)  # 200 steps
    assert size_validation(long, t, cuda=False, sample_tokens=41) is None and long.args.eval_steps == 50
    big = trainer(800, 400)
    message = size_validation(big, t, cuda=False, sample_tokens=41)
    assert big.args.eval_steps == 200 and message and "costs about 46 training steps" in message
    gpu = trainer(200, 20)  # a GPU keeps its own minimum gap only
    assert size_validation(gpu, t, cuda=True, sample_tokens=41) is None and gpu.args.eval_steps == 13


def test_cli_flags_override_config_file(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(
        yaml.safe_dump({"train": {"max_steps": 50, "learning_rate": 1e-4}, "lora": {"r": 4, "alpha": 8}})
    )
    ns = argparse.Namespace(
        config=str(file),
        preset=None,
        model="/m",
        max_steps=3,
        epochs=None,
        lr=None,
        lora_r=None,
        quant="none",
        max_length=None,
        seed=None,
    )
    cfg = config_from_args(ns)
    assert cfg.train.max_steps == 3 and cfg.train.learning_rate == 1e-4
    assert cfg.lora.r == 4 and cfg.quant.mode == "none" and cfg.model.name == "/m"


def test_form_metadata_comes_from_the_model() -> None:
    fields = TrainingConfig.model_fields["train"].annotation.model_fields  # type: ignore[union-attr]
    assert all(f.description for f in fields.values())
    assert (fields["seed"].json_schema_extra or {}).get("advanced") is True


def test_split_the_model_needs_two_gpus_and_no_8bit() -> None:
    cfg = with_overrides(TrainingConfig(), {"train.gpus": 2, "train.shard_model": True})
    assert cfg.train.shard_model and cfg.quant.mode == "4bit"
    with pytest.raises(UserError, match="needs 2 or more GPUs"):
        with_overrides(TrainingConfig(), {"train.shard_model": True})
    with pytest.raises(UserError, match="8bit cannot be split"):
        with_overrides(TrainingConfig(), {"train.gpus": 2, "train.shard_model": True, "quant.mode": "8bit"})
    ns = argparse.Namespace(config=None, preset=None, gpus=2, shard=True)
    assert config_from_args(ns).train.shard_model is True
