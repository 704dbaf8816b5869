"""The spine, end to end through the public CLI with the network blocked: a JSONL file -> `whetstone train`
(the embedded SmolLM2, 12 steps on the sample task: support tickets -> a fixed JSON answer) -> `whetstone
eval` (tuned beats base on exact match on the run's held-out test split) -> `whetstone export --format gguf`
(a verified Q8_0 GGUF with the chat template).

Measured on the 2-core dev box: base EM 0.000, tuned EM 0.417 (95% CI of the difference [0.167, 0.667]);
JSON valid 0.000 -> 1.000."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DATA, run_cli


@pytest.fixture(scope="module")
def trained_run(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("spine") / "run"
    train = run_cli(
        "train", "--data", str(SAMPLE_DATA), "--run-dir", str(run), "--model", "smollm2-135m-instruct",
        "--max-steps", "12", "--lr", "2e-3", "--lora-r", "8", "--quant", "none", "--micro-batch", "4",
        "--grad-accum", "1", "--max-length", "256", "--no-packing", "--json", "--quiet", timeout=3000,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    summary = json.loads(train.stdout)
    assert summary["adapter"] and (Path(summary["adapter"]) / "adapter_config.json").exists()
    return run


@pytest.mark.slow
@pytest.mark.timeout(2400)  # trains SmolLM2 on the CPU: minutes on a busy 2-core machine
def test_tuned_smollm2_beats_base_on_exact_match(trained_run: Path) -> None:
    proc = run_cli(
        "eval",
        str(trained_run),
        "--max-new-tokens",
        "24",
        "--no-forgetting",
        "--no-perplexity",
        "--json",
        "--quiet",
        timeout=3000,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["n"] == 12
    assert doc["tuned"]["exact_match"] > doc["base"]["exact_match"]
    assert doc["tuned"]["json_valid"] > doc["base"]["json_valid"]
    assert doc["tuned"]["json_keys_match"] >= 0.9  # the output format is learned
    assert doc["delta"]["exact_match"]["value"] > 0


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_trained_run_exports_a_verified_gguf_with_its_chat_template(
    trained_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "gguf"
    proc = run_cli(
        "export", str(trained_run), "--format", "gguf", "--quant", "q8_0", "--out", str(out), "--json", "--quiet",
        timeout=3000,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]  # exit 1 when any verification fails
    doc = json.loads(proc.stdout)
    verification = doc["verification"]
    assert verification["passed"] is True
    assert verification["gguf_transformers"]["top1_agreement"] >= 0.9
    gguf_file = next(out.glob("*.gguf"))
    assert (out / "Modelfile").exists()
    from gguf import GGUFReader

    fields = GGUFReader(gguf_file).fields
    template = fields["tokenizer.chat_template"].contents()
    assert "<|im_start|>" in template
    llama = verification.get("llama_cpp", {})
    if "skipped" not in llama:  # llama-cpp-python is part of `make test`'s install
        assert llama["template_match"] and llama["tokens_match"]
