"""Quality bar: SmolLM2 (embedded) fine-tuned for a few steps on the sample task (support tickets -> fixed
JSON answer) beats the base model on exact match, as `whetstone eval` measures it on the held-out test split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.core.eval_helpers import train_smollm2_run


@pytest.mark.slow
def test_tuned_smollm2_beats_base_on_exact_match(smollm2_dir: Path, tmp_path: Path) -> None:
    run = train_smollm2_run(
        smollm2_dir, tmp_path / "run", "smollm2-135m-instruct", steps=12, lr=2e-3, batch=4, rank=8
    )
    proc = run_cli(
        "eval", str(run), "--max-new-tokens", "24", "--no-forgetting", "--no-perplexity", "--json", "--quiet"
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["n"] == 12
    assert doc["tuned"]["exact_match"] > doc["base"]["exact_match"]
    assert doc["tuned"]["json_valid"] > doc["base"]["json_valid"]
    assert doc["tuned"]["json_keys_match"] >= 0.9  # the output format is learned
    assert doc["delta"]["exact_match"]["value"] > 0
