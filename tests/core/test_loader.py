"""core.loader: one load for every stage (attention per model, trust_remote_code from the registry, the same
base + adapter for Evaluate and Export)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import loader
from core.errors import UserError
from core.models import ModelRegistry


def test_attention_is_chosen_per_model() -> None:
    llama = {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
    gemma2 = {"model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"], "attn_logit_softcapping": 50.0}
    assert loader.attention_implementation(llama, "cpu") == "sdpa"
    # Gemma 2 soft-caps attention logits; transformers refuses sdpa for it, so a forced sdpa becomes eager.
    assert loader.attention_implementation(gemma2, "cpu") == "eager"
    assert loader.attention_implementation(gemma2, "cpu", "sdpa") == "eager"
    assert loader.attention_implementation(llama, "cpu", "eager") == "eager"
    assert loader.attention_implementation(llama, "cpu", "flash_attention_2") == "sdpa"


def test_trust_remote_code_comes_from_the_registry_entry(tmp_path: Path) -> None:
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "x", "auto_map": {"AutoConfig": "a.B"}}))
    (folder / "model.safetensors").write_bytes(b"")
    registry = ModelRegistry()
    with pytest.raises(UserError, match=r"Allow this model's own code \(trust_remote_code\)"):
        registry.add_local(folder)
    assert loader.registry_allows_code(folder) is False
    entry = registry.set_trust_remote_code(str(folder), True)
    assert entry is not None and entry.trust_remote_code
    assert loader.registry_allows_code(folder) is True
    assert loader.registry_allows_code(entry.id) is True
    # given by path, the registered folder keeps its permission (training resolves it by path)
    assert ModelRegistry().get(str(folder)).trust_remote_code is True
    ModelRegistry().set_trust_remote_code(entry.id, False)
    assert loader.registry_allows_code(folder) is False


def test_embedded_model_has_no_code_to_allow() -> None:
    registry = ModelRegistry()
    if not registry.embedded():
        pytest.fail("the embedded SmolLM2 package is not installed")
    with pytest.raises(UserError, match="no code of its own"):
        registry.set_trust_remote_code(registry.embedded()[0].id, True)


def test_evaluate_and_export_load_the_same_model(fake_run_dir: Path, tiny_llama_dir: Path) -> None:
    """A run whose tokenizer grew a token: both the Evaluate pair and Export's merge load resize the
    embeddings and give the same logits."""
    import torch

    from core.evaluation.generate import ModelPair
    from core.export.merge import load_peft_model
    from core.runs import RunFolder

    run = RunFolder.open(fake_run_dir)
    tokenizer = loader.load_tokenizer(run.adapter_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|extra|>"]})
    tokenizer.save_pretrained(run.adapter_dir)
    pair = ModelPair(tiny_llama_dir, run.adapter_dir)
    merged = load_peft_model(run, tiny_llama_dir, "cpu")
    assert pair.model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert merged.get_input_embeddings().weight.shape[0] == len(tokenizer)
    ids = torch.tensor([tokenizer("Hello there", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        a = pair.model(input_ids=ids).logits
        b = merged(input_ids=ids).logits
    rows = len(tokenizer) - 1  # the new token's row is freshly initialised by each resize
    assert torch.equal(a[..., :rows], b[..., :rows])
