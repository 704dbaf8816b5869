from __future__ import annotations

import json


def test_converted_smollm2_keeps_the_digit_split_of_its_gguf(smollm2_dir) -> None:
    """The GGUF says `tokenizer.ggml.pre = smollm` (digits split one by one, as in pretraining);
    the converted tokenizer must tokenize numbers the same way, and llama.cpp's GGUF export reads it back."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    assert tok.tokenize(" 2024 tickets")[:5] == ["Ġ", "2", "0", "2", "4"]
    pre = json.loads((smollm2_dir / "tokenizer.json").read_text())["pre_tokenizer"]
    assert [step["type"] for step in pre["pretokenizers"]] == ["Digits", "ByteLevel"]
    from core.export.gguf_writer import detect_pre_tokenizer

    assert detect_pre_tokenizer(json.loads((smollm2_dir / "tokenizer.json").read_text())) == "smollm"


def test_converted_model_is_cached(smollm2_dir) -> None:
    from core.models import resolve_base_model

    calls = []
    assert resolve_base_model("smollm2-135m-instruct", progress=lambda f, m: calls.append(m)) == smollm2_dir
    assert calls == ["Base model ready"]
