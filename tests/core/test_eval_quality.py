"""Quality bar: the embedded SmolLM2 fine-tuned for 12 steps on the sample task (support tickets -> a fixed
JSON answer) with `whetstone train` beats the base model on exact match, as `whetstone eval` measures it on
the run's held-out test split (12 examples). Measured on the 2-core dev box: base EM 0.000, tuned EM 0.417
(95% CI of the difference [0.167, 0.667]); JSON valid 0.000 -> 1.000."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DATA, run_cli


@pytest.mark.slow
@pytest.mark.timeout(2400)  # trains SmolLM2 on the CPU: minutes on a busy 2-core machine
def test_tuned_smollm2_beats_base_on_exact_match(smollm2_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train = run_cli(
        "train", "--data", str(SAMPLE_DATA), "--run-dir", str(run), "--model", "smollm2-135m-instruct",
        "--max-steps", "12", "--lr", "2e-3", "--lora-r", "8", "--quant", "none", "--micro-batch", "4",
        "--grad-accum", "1", "--max-length", "256", "--no-packing", "--json", "--quiet", timeout=3000,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    proc = run_cli(
        "eval",
        str(run),
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
