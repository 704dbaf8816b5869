"""Export on the fake run (tiny 2-layer Llama + LoRA): adapter, merged, GGUF F16/Q8_0, metadata, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import Cancelled, UserError
from core.export.api import export_run
from core.runs import RunFolder


def _prompt_ids(run_dir: Path) -> list[list[int]]:
    from transformers import AutoTokenizer

    from core.export import verify as V

    tok = AutoTokenizer.from_pretrained(run_dir / "adapter")
    return V.encode_prompts(tok, V.sample_prompts(RunFolder(run_dir), 3))


@pytest.fixture(scope="module")
def tiny_exports(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> dict[str, object]:
    """One fake run exported once per module as merged, F16 and Q8_0 (the tests below read them)."""
    import importlib

    conftest = importlib.import_module("tests.conftest")
    root = tmp_path_factory.mktemp("exports")
    run_dir = conftest.fake_run_dir.__wrapped__(tiny_llama_dir, root)  # type: ignore[attr-defined]
    out = {"run": run_dir}
    out["merged"] = export_run(run_dir, "merged", root / "merged")
    out["f16"] = export_run(run_dir, "gguf", root / "gguf-f16", quant="f16")
    out["q8_0"] = export_run(run_dir, "gguf", root / "gguf-q8", quant="q8_0")
    return out


def test_adapter_export_has_peft_files_and_model_card(fake_run_dir: Path, tmp_path: Path) -> None:
    result = export_run(fake_run_dir, "adapter", tmp_path / "adapter-out")
    out = Path(result.out_dir)
    assert (out / "adapter_config.json").exists()
    assert (out / "adapter_model.safetensors").exists()
    card = (out / "README.md").read_text()
    sha = RunFolder(fake_run_dir).dataset_sha256()
    assert sha and sha in card
    assert str(json.loads((out / "adapter_config.json").read_text())["r"]) == "8"
    assert "Base model" in card and "lora" in card
    assert not list(tmp_path.glob(".adapter-out.partial-*"))


@pytest.mark.slow
def test_merged_loads_with_plain_transformers_and_matches_peft(
    tiny_exports: dict, tiny_llama_dir: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir: Path = tiny_exports["run"]  # type: ignore[assignment]
    merged = Path(tiny_exports["merged"].out_dir)  # type: ignore[attr-defined]
    assert (merged / "config.json").exists() and list(merged.glob("*.safetensors"))
    assert (merged / "generation_config.json").exists()
    tok = AutoTokenizer.from_pretrained(merged)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    model = AutoModelForCausalLM.from_pretrained(merged).eval()
    peft = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_llama_dir), run_dir / "adapter"
    ).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    ids = torch.tensor([_prompt_ids(run_dir)[0]])
    with torch.no_grad():
        a, b, c = model(ids).logits, peft(ids).logits, base(ids).logits
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-3)  # the adapter really changed the model
    figures = tiny_exports["merged"].verification["merged"]  # type: ignore[attr-defined]
    assert figures["passed"] and figures["max_abs_logit_delta"] < 1e-3


@pytest.mark.slow
def test_gguf_f16_reloads_with_transformers_and_logits_match(tiny_exports: dict) -> None:
    result = tiny_exports["f16"]
    figures = result.verification["gguf_transformers"]  # type: ignore[attr-defined]
    assert figures["next_token_top1_agreement"] == 1.0
    assert figures["top1_agreement"] >= 0.99
    assert figures["max_abs_logit_delta"] < 0.05 * max(figures["logit_std"], 1e-3) + 1e-3
    assert result.verification["passed"]  # type: ignore[attr-defined]
    # independent check here: reload it ourselves and compare with the merged folder
    import torch
    from transformers import AutoModelForCausalLM

    gguf_file = next(Path(result.out_dir).glob("*.gguf"))  # type: ignore[attr-defined]
    gm = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name).eval()
    mm = AutoModelForCausalLM.from_pretrained(tiny_exports["merged"].out_dir).eval()  # type: ignore[attr-defined]
    ids = torch.tensor([_prompt_ids(tiny_exports["run"])[1]])  # type: ignore[arg-type]
    with torch.no_grad():
        delta = (gm(ids).logits - mm(ids).logits).abs().max().item()
    assert delta < 1e-2


@pytest.mark.slow
def test_gguf_q8_0_is_close(tiny_exports: dict) -> None:
    figures = tiny_exports["q8_0"].verification["gguf_transformers"]  # type: ignore[attr-defined]
    f16 = tiny_exports["f16"].verification["gguf_transformers"]  # type: ignore[attr-defined]
    assert figures["max_abs_logit_delta"] > f16["max_abs_logit_delta"]  # really quantized
    assert figures["mean_abs_logit_delta"] < 0.1 * figures["logit_std"]
    assert figures["top1_agreement"] >= 0.8
    sizes = {k: next(Path(tiny_exports[k].out_dir).glob("*.gguf")).stat().st_size for k in ("f16", "q8_0")}  # type: ignore[attr-defined]
    assert sizes["q8_0"] < sizes["f16"]


@pytest.mark.slow
def test_gguf_metadata_has_chat_template_special_tokens_and_types(tiny_exports: dict) -> None:
    from gguf import GGUFReader

    gguf_file = next(Path(tiny_exports["q8_0"].out_dir).glob("*.gguf"))  # type: ignore[attr-defined]
    reader = GGUFReader(gguf_file)
    fields = {k: f for k, f in reader.fields.items()}

    def value(key: str):
        return fields[key].contents()

    assert value("general.architecture") == "llama"
    assert value("tokenizer.ggml.model") == "gpt2"
    assert "<|im_start|>" in value("tokenizer.chat_template")
    tokens = value("tokenizer.ggml.tokens")
    assert tokens[value("tokenizer.ggml.eos_token_id")] == "<|im_end|>"
    assert tokens[value("tokenizer.ggml.eot_token_id")] == "<|im_end|>"
    assert tokens[value("tokenizer.ggml.bos_token_id")] == "<|im_start|>"
    assert "tokenizer.ggml.padding_token_id" in fields
    assert value("llama.attention.head_count_kv") == 2
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "Q8_0"
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" not in types  # tied embeddings are not duplicated
    modelfile = (Path(tiny_exports["q8_0"].out_dir) / "Modelfile").read_text()  # type: ignore[attr-defined]
    assert f"FROM ./{gguf_file.name}" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "TEMPLATE" in modelfile and "<|im_start|>" in modelfile
    # SYSTEM is the system prompt every training row used, not the base template's SmolLM default
    assert 'SYSTEM """You triage customer support tickets. Answer with JSON only."""' in modelfile
    assert "SmolLM" not in modelfile
    result = tiny_exports["q8_0"]
    out = Path(result.out_dir)  # type: ignore[attr-defined]
    readme = (out / "README.md").read_text()
    commands = [c["command"] for c in result.commands]  # type: ignore[attr-defined]
    assert commands[0] == f"ollama create {gguf_file.stem.lower()} -f {out / 'Modelfile'}"
    assert commands[1] == f"ollama run {gguf_file.stem.lower()}"
    assert commands[2].startswith(f"llama-cli -m {gguf_file}") and "-sys 'You triage" in commands[2]
    for command in commands:
        assert command in readme
    assert "All 96 training rows used the same system prompt" in readme


@pytest.mark.slow
def test_qk_permutation_round_trips(tiny_exports: dict) -> None:
    """The Q/K rows are permuted in the file, and transformers' reader un-permutes them back exactly."""
    import numpy as np
    from gguf import GGUFReader
    from safetensors.numpy import load_file

    merged = Path(tiny_exports["merged"].out_dir)  # type: ignore[attr-defined]
    weights = {}
    for file in merged.glob("*.safetensors"):
        weights.update(load_file(file))
    gguf_file = next(Path(tiny_exports["f16"].out_dir).glob("*.gguf"))  # type: ignore[attr-defined]
    tensors = {t.name: np.array(t.data) for t in GGUFReader(gguf_file).tensors}
    hf_q = weights["model.layers.0.self_attn.q_proj.weight"].astype(np.float16)
    hf_v = weights["model.layers.0.self_attn.v_proj.weight"].astype(np.float16)
    assert np.array_equal(tensors["blk.0.attn_v.weight"], hf_v)
    assert not np.array_equal(tensors["blk.0.attn_q.weight"], hf_q)
    assert sorted(tensors["blk.0.attn_q.weight"].ravel().tolist()) == sorted(hf_q.ravel().tolist())


def test_unsupported_architecture_names_supported_ones(tmp_path: Path) -> None:
    from core.export.gguf_writer import GgufExporter

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPTNeoXForCausalLM"]}))
    with pytest.raises(UserError) as err:
        GgufExporter(tmp_path)
    message = str(err.value)
    assert "GPTNeoXForCausalLM" in message
    for name in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "SmolLM"):
        assert name in message


def test_disk_space_check_refuses_before_writing(
    fake_run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    parent = tmp_path / "exports"
    with pytest.raises(UserError, match="Not enough disk space"):
        export_run(fake_run_dir, "gguf", parent / "out", quant="q8_0")
    assert not list(parent.iterdir())


def test_space_estimate_is_about_2_2x_fp16_for_gguf_f16() -> None:
    from core.export.api import space_needed

    params = 1_000_000
    need = space_needed("gguf", params, "float16", "f16")
    assert 2.1 * params * 2 <= need <= 2.3 * params * 2


def test_cancel_leaves_nothing_under_the_final_name(fake_run_dir: Path, tmp_path: Path) -> None:
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    parent = tmp_path / "exports"
    parent.mkdir()
    with pytest.raises(Cancelled):
        export_run(fake_run_dir, "gguf", parent / "out", quant="f16", should_stop=should_stop)
    assert calls["n"] > 3
    assert not list(parent.iterdir())  # neither the final folder nor a temp folder is left


def test_existing_output_is_refused_without_overwrite(fake_run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        export_run(fake_run_dir, "adapter", tmp_path / "out")
    export_run(fake_run_dir, "adapter", tmp_path / "out", overwrite=True)
    assert not (tmp_path / "out" / "keep.txt").exists()
    assert (tmp_path / "out" / "adapter_config.json").exists()


def test_missing_adapter_is_a_user_error(fake_run_dir: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(fake_run_dir / "adapter")
    with pytest.raises(UserError, match="no trained adapter"):
        export_run(fake_run_dir, "merged", tmp_path / "out")


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["bf16", "q5_0", "q4_0"])
def test_other_native_types_reload_with_transformers(tiny_exports: dict, tmp_path: Path, quant: str) -> None:
    from gguf import GGUFReader

    from core.export import verify as V
    from core.export.gguf_writer import GgufExporter

    merged = Path(tiny_exports["merged"].out_dir)  # type: ignore[attr-defined]
    out = tmp_path / f"m-{quant}.gguf"
    GgufExporter(merged).write(out, quant)
    types = {t.name: t.tensor_type.name for t in GGUFReader(out).tensors}
    assert types["blk.0.ffn_up.weight"] == quant.upper()
    if quant != "bf16":
        assert types["token_embd.weight"] == "Q8_0"  # embeddings kept at 8 bits for the 4/5-bit types
    from transformers import AutoModelForCausalLM

    ids = _prompt_ids(tiny_exports["run"])[:2]  # type: ignore[arg-type]
    reference = V.model_logits(AutoModelForCausalLM.from_pretrained(merged).eval(), ids)
    figures = V.verify_gguf_transformers(out, ids, reference, quant)
    assert figures["passed"]
    assert (
        figures["relative_mean_delta"] < {"bf16": 0.01, "q5_0": 0.3, "q4_0": 0.6}[quant]
    )  # sanity bounds on random weights
