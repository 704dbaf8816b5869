"""Attention per document inside packed rows (core.training.packed_attention), on the CPU: document bounds
from position_ids, the transformers plumbing (registered attention + mask functions, the padding-free
collator's keys reaching the attention through PEFT), and the choice of implementation per machine. The
CUDA kernel itself is checked against the same reference in test_training_gpu.py (marked gpu)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.training import packed_attention
from core.training.config import Hardware, TrainingConfig, resolve_for_hardware, with_overrides
from tests.core.packed_helpers import (
    documents,
    packed_batch,
    packed_loss_and_grads,
    reference_loss_and_grads,
    rel_err,
    tiny_lora_model,
    worst_grad_err,
)

GPU = Hardware(True, True, "NVIDIA RTX 4090", 24.0)


def test_document_bounds_from_position_ids() -> None:
    import torch

    pos = torch.tensor([[0, 1, 2, 0, 1, 0, 0, 1, 2, 3]])
    cu, longest = packed_attention.document_bounds(pos)
    assert cu.tolist() == [0, 3, 5, 6, 10]
    assert cu.dtype == torch.int32
    assert longest == 4
    # two rows: each row's first token starts a document even when its position is not 0 (a cut document)
    cu, longest = packed_attention.document_bounds(torch.tensor([[0, 1, 0, 1, 2], [5, 6, 0, 1, 2]]))
    assert cu.tolist() == [0, 2, 5, 7, 10]
    assert longest == 3


def test_bounds_match_the_padding_free_collator() -> None:
    batch = packed_batch(documents(), "cpu")
    cu, longest = packed_attention.document_bounds(batch["position_ids"])
    assert cu.tolist() == batch["cu_seq_lens_q"].tolist()
    assert longest == batch["max_length_q"] == 300


@pytest.mark.parametrize("use_cu_seq_lens", [True, False])
def test_packed_rows_equal_each_document_alone(use_cu_seq_lens: bool) -> None:
    import torch

    name = packed_attention.register()
    rows = documents()
    batch = packed_batch(rows, "cpu")
    if not use_cu_seq_lens:  # bounds worked out from position_ids alone
        batch = {k: batch[k] for k in ("input_ids", "labels", "position_ids")}
    fast = tiny_lora_model(name, torch.float32, "cpu")
    loss, grads = packed_loss_and_grads(fast, batch)
    ref = tiny_lora_model("sdpa", torch.float32, "cpu")
    ref_loss, ref_grads = reference_loss_and_grads(ref, rows, "cpu")
    assert abs(loss - ref_loss) / ref_loss < 1e-5
    err, where = worst_grad_err(grads, ref_grads)
    assert err < 1e-4, where
    # and the comparison can tell: attending across the borders (one long sequence) changes the gradients
    leaky = {k: batch[k] for k in ("input_ids", "labels")}
    leaky["position_ids"] = torch.arange(batch["input_ids"].shape[1])[None]
    _, leak_grads = packed_loss_and_grads(fast, leaky)
    assert worst_grad_err(leak_grads, ref_grads)[0] > 0.05


def test_reference_sdpa_path_keeps_documents_apart_as_trl_calls_it() -> None:
    """The reference path (transformers' sdpa with packed position_ids) builds a block-diagonal mask only when
    no KV cache exists; TRL's SFTTrainer passes use_cache=False, so training is correct there, only slower.
    (With a model config's default use_cache=True a cache is created and the whole flattened row is one
    causal sequence; the per-document path above does not depend on that.)"""
    import torch

    rows = documents()
    model = tiny_lora_model("sdpa", torch.float32, "cpu")
    loss, grads = packed_loss_and_grads(model, packed_batch(rows, "cpu"), use_cache=False)
    ref_loss, ref_grads = reference_loss_and_grads(model, rows, "cpu")
    assert abs(loss - ref_loss) / ref_loss < 1e-5
    assert worst_grad_err(grads, ref_grads)[0] < 1e-4


def test_a_row_holding_one_document_takes_plain_causal_sdpa(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long context: the collator's row holds a single document. SDPA's own causal kernel runs it (faster on a
    GPU than the varlen kernel); the gradients equal the document alone, and a row of two documents still
    goes per document."""
    import torch

    name = packed_attention.register()
    per_document: list[int] = []
    real = packed_attention._per_document

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        per_document.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(packed_attention, "_per_document", spy)
    rows = [[documents()[0][0]]]
    batch = packed_batch(rows, "cpu")
    assert batch["cu_seq_lens_q"].tolist() == [0, len(rows[0][0])]
    fast = tiny_lora_model(name, torch.float32, "cpu")
    loss, grads = packed_loss_and_grads(fast, batch)
    assert per_document == []
    ref_loss, ref_grads = reference_loss_and_grads(tiny_lora_model("sdpa", torch.float32, "cpu"), rows, "cpu")
    assert abs(loss - ref_loss) / ref_loss < 1e-5
    assert worst_grad_err(grads, ref_grads)[0] < 1e-4
    packed_loss_and_grads(fast, packed_batch([documents()[0][:2]], "cpu"))
    assert per_document  # two documents in the row: attention per document again


def test_padded_batches_and_generation_use_sdpa_unchanged() -> None:
    import torch

    name = packed_attention.register()
    fast = tiny_lora_model(name, torch.float32, "cpu").eval()
    ref = tiny_lora_model("sdpa", torch.float32, "cpu").eval()
    ids = torch.tensor([[0, 0, 5, 9, 11, 40], [7, 8, 9, 10, 11, 12]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        a = fast(input_ids=ids, attention_mask=mask).logits
        b = ref(input_ids=ids, attention_mask=mask).logits
        assert rel_err(a[mask.bool()], b[mask.bool()]) < 1e-5
        gen_a = fast.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0
        )
        gen_b = ref.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0
        )
    assert gen_a.tolist() == gen_b.tolist()


def test_gpu_auto_takes_the_packed_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed_attention, "varlen_available", lambda: True)
    cfg = with_overrides(TrainingConfig(), {"train.packing": True})
    assert cfg.model.attn_implementation == "auto"
    assert resolve_for_hardware(cfg, GPU).attention == packed_attention.IMPLEMENTATION
    # an explicit choice is kept, and the CPU keeps the reference path ('auto': core.loader's choice per model)
    sdpa = with_overrides(cfg, {"model.attn_implementation": "sdpa"})
    assert resolve_for_hardware(sdpa, GPU).attention == "sdpa"
    assert resolve_for_hardware(cfg, Hardware(False)).attention == "auto"


def test_gpu_auto_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed_attention, "varlen_available", lambda: True)
    unpacked = resolve_for_hardware(with_overrides(TrainingConfig(), {"train.packing": False}), GPU)
    assert unpacked.attention == "auto"
    # plain words on the page ("Packing is off, so attention runs on SDPA" was jargon); the reason in the log
    assert any(
        "Examples are not packed together" in n and "'Combine short examples'" in n for n in unpacked.notes
    )
    assert not any("SDPA" in n or "flash" in n for n in unpacked.notes)
    assert any("Packing is off: attention runs on SDPA" in n for n in unpacked.log_notes)
    monkeypatch.setattr(packed_attention, "varlen_available", lambda: False)
    old_torch = resolve_for_hardware(with_overrides(TrainingConfig(), {"train.packing": True}), GPU)
    assert old_torch.attention == "auto"
    # the user reads plain words; the technical reason goes to the run log only
    assert any("cannot use the fastest attention for packed examples" in n for n in old_torch.notes)
    assert not any("flash" in n or "SDPA" in n or "PyTorch" in n for n in old_torch.notes)
    assert any("no variable-length flash attention" in n for n in old_torch.log_notes)


def test_model_and_device_fallbacks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    from core.training.trainer import attention_for

    assert packed_attention.unsupported_reason(LlamaConfig()) is None
    assert packed_attention.unsupported_reason(Qwen2Config()) is None  # use_sliding_window is False
    assert packed_attention.unsupported_reason(MistralConfig(sliding_window=4096)) is not None
    assert packed_attention.unsupported_reason(MistralConfig(sliding_window=None)) is None
    assert packed_attention.unsupported_reason({"model_type": "mistral", "sliding_window": 4096}) is not None
    assert packed_attention.unsupported_reason(tmp_path / "no-such-model") is None

    monkeypatch.setattr(packed_attention, "varlen_available", lambda: True)
    resolved = resolve_for_hardware(with_overrides(TrainingConfig(), {"train.packing": True}), GPU)
    MistralConfig(sliding_window=4096).save_pretrained(tmp_path)
    monkeypatch.setattr(packed_attention, "device_unsupported_reason", lambda: None)
    impl, note = attention_for(tmp_path, resolved)
    assert impl == "auto" and note and "sliding-window" in note
    from transformers import Gemma2Config

    Gemma2Config().save_pretrained(tmp_path)  # soft-capped attention
    impl, note = attention_for(tmp_path, resolved)
    assert impl == "auto" and note
    LlamaConfig().save_pretrained(tmp_path)
    impl, note = attention_for(tmp_path, resolved)
    assert impl == packed_attention.IMPLEMENTATION and note and "per document" in note
    monkeypatch.setattr(
        packed_attention, "device_unsupported_reason", lambda: "the flash kernel needs an Ampere"
    )
    impl, note = attention_for(tmp_path, resolved)
    assert impl == "auto" and note and "Ampere" in note


def test_varlen_available_reads_the_installed_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    for version, expected in [
        ("2.11.0", True),
        ("2.13.0+cu130", True),
        ("2.13.0+cpu", False),
        ("2.4.1", False),
    ]:
        monkeypatch.setattr(metadata, "version", lambda _name, v=version: v)
        assert packed_attention.varlen_available() is expected, version


def test_the_model_loader_loads_with_the_packed_implementation(tmp_path: Path) -> None:
    """What load_model asks core.loader for on a GPU reaches transformers unchanged (checked on the CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from core.loader import load_base_model

    name = packed_attention.register()
    cfg = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
    )
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    model = load_base_model(tmp_path, device="cpu", dtype=torch.float32, attn_implementation=name)
    assert model.config._attn_implementation == name
