"""GGUF writer pieces: Ollama template translation, pre-tokenizer detection, other Llama-family archs, CLI,
K-quants through llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import UserError
from core.export.formats import llama_cpp_available
from core.export.modelfile import analyse_template, ollama_modelfile

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA2 = (
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}"
)


def test_chatml_translates_to_go_template() -> None:
    info = ollama_modelfile("m.gguf", CHATML, eos="<|im_end|>", eot="<|im_end|>")
    assert info.style == "chatml"
    assert (
        "{{ range .Messages }}" in info.text and '{{ if eq .Role "system" }}<|im_start|>system\n' in info.text
    )
    assert info.stop == ["<|im_end|>", "<|im_start|>"]
    assert info.default_system is None and "SYSTEM" not in info.text


def test_llama3_translates_and_pieces_reproduce_jinja() -> None:
    pieces = analyse_template(LLAMA3, bos="<|begin_of_text|>", eos="<|eot_id|>")
    assert pieces is not None and pieces.style == "llama3"
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yo"},
        {"role": "user", "content": "?"},
    ]
    expected = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|>"
    assert pieces.render(messages).startswith(expected)
    info = ollama_modelfile("m.gguf", LLAMA3, bos="<|begin_of_text|>", eos="<|eot_id|>", eot="<|eot_id|>")
    assert "<|start_header_id|>" in info.text and 'PARAMETER stop "<|eot_id|>"' in info.text


def test_template_default_system_prompt_is_found_but_never_written(tiny_llama_dir: Path) -> None:
    template = (tiny_llama_dir / "chat_template.jinja").read_text()
    info = ollama_modelfile("m.gguf", template, eos="<|im_end|>", eot="<|im_end|>")
    assert info.style == "chatml"
    assert info.default_system and info.default_system.startswith(
        "You are a helpful AI assistant named SmolLM"
    )
    assert "SYSTEM" not in info.text and "SmolLM" not in info.text and info.system is None


def test_unsupported_template_says_so() -> None:
    info = ollama_modelfile("m.gguf", LLAMA2, bos="<s>", eos="</s>")
    assert info.style is None and "TEMPLATE" not in info.text.replace("no TEMPLATE", "")
    assert info.note and "not a per-message" in info.note
    assert 'PARAMETER stop "</s>"' in info.text


def _tok_json(pre: dict) -> dict:
    return {"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": pre, "decoder": {"type": "ByteLevel"}}


def test_pre_tokenizer_detection() -> None:
    from core.export.gguf_writer import _LLAMA3_PATTERN, _QWEN2_PATTERN, detect_pre_tokenizer

    def split(pattern: str) -> dict:
        return {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated"},
                {"type": "ByteLevel", "use_regex": False},
            ],
        }

    assert detect_pre_tokenizer(_tok_json(split(_LLAMA3_PATTERN))) == "llama-bpe"
    assert detect_pre_tokenizer(_tok_json(split(_QWEN2_PATTERN))) == "qwen2"
    assert detect_pre_tokenizer(_tok_json({"type": "ByteLevel", "use_regex": True})) == "gpt-2"
    smollm = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "use_regex": True},
        ],
    }
    assert detect_pre_tokenizer(_tok_json(smollm)) == "smollm"
    with pytest.raises(UserError, match="pattern"):
        detect_pre_tokenizer(_tok_json(split(r"\w+")))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["qwen2", "mistral"])
def test_other_llama_family_architectures_round_trip(arch: str, tiny_llama_dir: Path, tmp_path: Path) -> None:
    """A tiny Qwen2 (biases, no Q/K permutation) and Mistral (llama arch) export to F16 and reload."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, MistralConfig, Qwen2Config

    from core.export.gguf_writer import GgufExporter

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    common = dict(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=arch == "qwen2",
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    config = Qwen2Config(**common) if arch == "qwen2" else MistralConfig(**common)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    if arch == "qwen2":
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.q_proj.bias.normal_(0, 0.5)
                layer.self_attn.k_proj.bias.normal_(0, 0.5)
    src = tmp_path / "hf"
    model.save_pretrained(src)
    tok.save_pretrained(src)
    out = tmp_path / "m.gguf"
    summary = GgufExporter(src).write(out, "f16")
    assert summary["architecture"] == ("qwen2" if arch == "qwen2" else "llama")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=out.name).eval()
    ids = torch.tensor([tok("Hello, how are you today? 1234")["input_ids"]])
    with torch.no_grad():
        delta = (model(ids).logits - reloaded(ids).logits).abs().max().item()
    assert delta < 1e-2


def test_cli_export_adapter_json(fake_run_dir: Path, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    proc = run_cli("export", str(fake_run_dir), "--format", "adapter", "--out", str(tmp_path / "a"), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["format"] == "adapter" and doc["total_bytes"] > 0
    assert {Path(f["path"]).name for f in doc["files"]} >= {"adapter_config.json", "README.md"}


def test_cli_errors_are_one_line(fake_run_dir: Path, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    proc = run_cli("export", str(tmp_path / "nope"), "--format", "gguf", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "not a run folder" in proc.stderr
    proc = run_cli(
        "export", str(fake_run_dir), "--format", "merged", "--quant", "q8_0", "--out", str(tmp_path / "o")
    )
    assert proc.returncode == 2 and "--quant applies to --format gguf" in proc.stderr


@pytest.mark.slow
def test_cli_gguf_q8_0_with_verification_figures(fake_run_dir: Path, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    proc = run_cli(
        "export",
        str(fake_run_dir),
        "--format",
        "gguf",
        "--quant",
        "q8_0",
        "--out",
        str(tmp_path / "g"),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    names = {Path(f["path"]).name for f in doc["files"]}
    assert "Modelfile" in names and any(n.endswith("q8_0.gguf") for n in names)
    assert doc["system_prompt"]["text"] == "You triage customer support tickets. Answer with JSON only."
    assert [c["command"].split()[:2] for c in doc["commands"]] == [
        ["ollama", "create"],
        ["ollama", "run"],
        ["llama-cli", "-m"],
    ]
    v = doc["verification"]
    assert v["passed"] is True
    assert {"max_abs_logit_delta", "top1_agreement"} <= set(v["gguf_transformers"])
    if llama_cpp_available():
        assert v["llama_cpp"]["template_match"] and v["llama_cpp"]["tokens_match"]
    else:
        assert "skipped" in v["llama_cpp"]


@pytest.mark.slow
def test_k_quant_through_llama_cpp_or_clear_message(fake_run_dir: Path, tmp_path: Path) -> None:
    from core.export.api import export_run

    if not llama_cpp_available():
        with pytest.raises(UserError, match="llama-cpp-python"):
            export_run(fake_run_dir, "gguf", tmp_path / "k", quant="q6_k")
        return
    result = export_run(fake_run_dir, "gguf", tmp_path / "k", quant="q6_k")
    gguf_file = next(Path(result.out_dir).glob("*.gguf"))
    from core.export.gguf_writer import gguf_tensor_types

    types = gguf_tensor_types(gguf_file)
    assert "F16" not in types or types.get("F16", 0) < sum(types.values())  # really quantized by llama.cpp
    assert result.verification and "max_abs_logit_delta" in result.verification["gguf_transformers"]
    assert result.verification["llama_cpp"]["template_match"]
    assert not (Path(result.out_dir) / ".intermediate-f16.gguf").exists()


def _sentencepiece_style_model(folder: Path) -> None:
    """A tiny Llama with a Llama-2-style tokenizer (BPE with byte fallback, "▁" for spaces, BOS added)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from tests.conftest import SAMPLE_DATA

    texts = [json.loads(line)["messages"][1]["content"] for line in SAMPLE_DATA.read_text().splitlines()]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=800, special_tokens=specials, limit_alphabet=100)
    )
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)


@pytest.mark.slow
def test_sentencepiece_vocabulary_tokenizes_like_the_hf_tokenizer(tmp_path: Path) -> None:
    """Llama 2 / Mistral style vocabularies: llama.cpp's SentencePiece tokenizer merges by token score, so
    the scores we derive from the merges must reproduce the HF tokenizer exactly."""
    from gguf import GGUFReader
    from transformers import AutoTokenizer

    from core.export.gguf_writer import GgufExporter

    src = tmp_path / "spm"
    _sentencepiece_style_model(src)
    out = tmp_path / "gguf" / "m.gguf"
    summary = GgufExporter(src).write(out, "f16")
    assert summary["tokenizer"] == {"model": "llama", "pre": None}
    fields = GGUFReader(out).fields
    assert fields["tokenizer.ggml.add_bos_token"].contents() is True
    assert fields["tokenizer.ggml.add_space_prefix"].contents() is True
    types = fields["tokenizer.ggml.token_type"].contents()
    tokens = fields["tokenizer.ggml.tokens"].contents()
    assert types[tokens.index("<0x41>")] == 6 and types[0] == 2  # BYTE and UNKNOWN
    assert types[tokens.index("<s>")] == 3  # CONTROL
    hf = AutoTokenizer.from_pretrained(src)
    texts = [
        "Hello wörld 123 ✓",
        "My invoice was charged twice this month, please refund.",
        "Tabs\tand\nnewlines  x",
    ]
    reread = AutoTokenizer.from_pretrained(out.parent, gguf_file=out.name)
    for text in texts:
        assert reread(text).input_ids == hf(text).input_ids
    if llama_cpp_available():
        import llama_cpp

        llm = llama_cpp.Llama(model_path=str(out), n_ctx=128, verbose=False)
        try:
            for text in [*texts, " leading space"]:
                assert llm.tokenize(text.encode(), add_bos=True, special=False) == hf(text).input_ids
        finally:
            llm.close()


def test_llama3_rope_factors_match_transformers() -> None:
    """Llama 3.1+ rotary scaling goes into GGUF as a `rope_freqs` tensor: base frequencies / factors must
    equal the frequencies transformers computes for the same config."""
    import numpy as np
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from core.export.gguf_writer import _llama3_rope_factors

    rope = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    config = LlamaConfig(
        hidden_size=512, num_attention_heads=4, max_position_embeddings=131072, rope_parameters=rope
    )
    inv_freq, _ = ROPE_INIT_FUNCTIONS["llama3"](config)
    head_dim = 128
    base = 1.0 / (500000.0 ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    factors = _llama3_rope_factors(rope, head_dim, 500000.0)
    assert factors.shape == (head_dim // 2,) and factors.min() == 1.0 and factors.max() == 8.0
    np.testing.assert_allclose(base / factors, inv_freq.numpy(), rtol=1e-5)
