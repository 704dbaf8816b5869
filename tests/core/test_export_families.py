"""Export stage of the family matrix: merged export and GGUF F16 / Q8_0 for every family, each GGUF loaded and
run by llama.cpp with the verification gate (transformers reload, llama.cpp template + tokens + greedy).

The models are tiny random-weight models built in tmp dirs (tests/core/export_families.py); the adapter is made
with PEFT directly (non-zero LoRA weights), without training, to keep it fast."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DATA
from tests.core.export_families import FAMILIES, build_family_model


def make_run(model_dir: Path, run: Path) -> Path:
    """A run folder as Train leaves it, with a LoRA adapter (non-zero B) on `model_dir`."""
    import orjson
    import torch
    import yaml
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (run / "checkpoints").mkdir(parents=True)
    (run / "logs").mkdir()
    config = {
        "model": {"name": str(model_dir)},
        "quant": {"mode": "none"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {"max_steps": 1, "max_length": 256, "seed": 0},
        "data": {"source": str(SAMPLE_DATA)},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    lines = []
    for i, line in enumerate(SAMPLE_DATA.read_text(encoding="utf-8").splitlines()[:40]):
        row = orjson.loads(line)
        split = "test" if i % 10 == 0 else "validation" if i % 10 == 1 else "train"
        lines.append(orjson.dumps({"id": f"ex{i}", "messages": row["messages"], "split": split}))
    data = b"\n".join(lines) + b"\n"
    (run / "dataset.jsonl").write_bytes(data)
    (run / "dataset.sha256").write_text(hashlib.sha256(data).hexdigest() + "  dataset.jsonl\n")
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(
        model,
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False),
    )
    peft_model.save_pretrained(run / "adapter")
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(run / "adapter")
    (run / "events.jsonl").write_text('{"type": "done", "step": 1, "message": "finished"}\n')
    return run


def _llama_cpp() -> bool:
    from core.export.formats import llama_cpp_available

    return llama_cpp_available()


needs_llama_cpp = pytest.mark.skipif(
    not _llama_cpp(), reason="llama-cpp-python is not installed (`make llama-cpp` builds it)"
)

# Families whose GGUF comes from our own writer; the others from llama.cpp's convert_hf_to_gguf.
WRITER_FAMILIES = {"llama3", "mistral", "mistral-tekken", "qwen2.5"}
FAST_FAMILIES = {"qwen3"}  # one converter family stays out of `slow`, so a quick run covers the converter


@pytest.fixture(scope="module")
def family_model(tmp_path_factory: pytest.TempPathFactory):
    """family -> its tiny model folder, built once per module."""
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_family_model(family, tmp_path_factory.mktemp(f"fam-{family}"))
        return built[family]

    return get


@needs_llama_cpp
@pytest.mark.parametrize(
    "family",
    [f if f in FAST_FAMILIES else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES],
)
def test_family_export_stage(family: str, family_model, tmp_path: Path) -> None:
    """Merged export, then GGUF F16 and Q8_0 written to `--out NAME.gguf`, each loaded and run by llama.cpp:
    the chat template from the GGUF renders the training prompt, the tokens are the same, llama.cpp's scores
    on them match the merged model, and it generates."""
    from gguf import GGUFReader
    from transformers import AutoTokenizer

    from core.export.api import export_run
    from core.export.formats import verification_status

    base = family_model(family)
    run = make_run(base, tmp_path / "run")
    merged = export_run(run, "merged", tmp_path / "merged", verify=True)
    assert merged.verification and merged.verification["merged"]["passed"]
    merged_dir = Path(merged.out_dir)
    # the merged folder keeps the base's tokenizer files and class (llama.cpp's converter reads them)
    if (base / "tokenizer.model").exists():
        assert (merged_dir / "tokenizer.model").read_bytes() == (base / "tokenizer.model").read_bytes()
    base_cls = json.loads((base / "tokenizer_config.json").read_text())["tokenizer_class"]
    merged_config = json.loads((merged_dir / "tokenizer_config.json").read_text())
    assert merged_config["tokenizer_class"] == base_cls
    # the chat tokens stay listed, so llama.cpp's converter marks them special (Gemma's <start_of_turn>)
    added = {entry["content"] for entry in merged_config["added_tokens_decoder"].values()}
    assert added >= set(AutoTokenizer.from_pretrained(base).get_added_vocab())

    for quant in ("f16", "q8_0"):
        out = tmp_path / f"{family}-{quant}.gguf"
        result = export_run(run, "gguf", out, quant=quant)
        route = "writer" if family in WRITER_FAMILIES else "converter"
        assert result.gguf and result.gguf["route"] == route
        lc = result.verification["llama_cpp"]
        failed = {k: v for k, v in lc.items() if k != "prompts"}
        assert lc["template_match"] and lc["tokens_match"], (family, quant, failed, lc["prompts"][:1])
        assert lc["logits"]["passed"], (family, quant, lc["logits"])
        assert all(len(row["llama_cpp_text"]) >= 0 and row["compared_tokens"] > 0 for row in lc["prompts"])
        assert verification_status(result.verification) in ("verified", "partial"), result.verification
        assert Path(result.out_dir) == out and out.is_file()
        assert out.with_name(f"{family}-{quant}.Modelfile").is_file()
        assert out.with_name(f"{family}-{quant}.README.md").is_file()
        types = {t.tensor_type.name for t in GGUFReader(out).tensors}
        assert ("Q8_0" in types) == (quant == "q8_0") and ("F16" in types) == (quant == "f16"), types
    assert not list(tmp_path.glob(".*partial*"))


@needs_llama_cpp
def test_mistral_v03_chat_prompt_tokenizes_the_same_in_llama_cpp(family_model, tmp_path: Path) -> None:
    """Mistral v0.3 as transformers 5 saves it (Metaspace, prepend only at the start of the text): llama.cpp
    must not put an extra "\u2581" after [INST] (its add_space_prefix adds one after every special token), or the
    GGUF sees other tokens than training did: "[INST] You" is ["[INST]", "\u2581You"], not ["[INST]", "\u2581",
    "\u2581You"]."""
    import llama_cpp
    from transformers import AutoTokenizer

    from core.export.gguf_writer import GgufExporter

    model = family_model("mistral")
    tok = AutoTokenizer.from_pretrained(model)
    messages = [
        {"role": "system", "content": "You triage tickets."},
        {"role": "user", "content": "Ticket: Sync stopped working."},
        {"role": "assistant", "content": "technical"},
        {"role": "user", "content": "Ticket: refund please"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    out = tmp_path / "mistral.gguf"
    GgufExporter(model).write(out, "f16")
    llm = llama_cpp.Llama(model_path=str(out), n_ctx=256, verbose=False)
    try:
        assert (
            llm.tokenize(text.encode(), add_bos=False, special=True)
            == tok(text, add_special_tokens=False).input_ids
        )
    finally:
        llm.close()
