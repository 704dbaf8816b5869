"""Two GPUs through `whetstone train --gpus 2` (marked `gpu`: run on a two-GPU machine, not in CI):
    WHETSTONE_GPU_TOKENIZER=DIR python3 -m pytest -m gpu tests/core/test_training_multigpu_gpu.py
A tiny Llama (random weights, the tokenizer + chat template in DIR) is QLoRA-trained on both GPUs (NCCL), with
one event stream from rank 0 carrying both GPUs' speed and memory, then resumed after a Stop."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DATA, run_cli, save_tiny_llama

pytestmark = pytest.mark.gpu


def test_two_gpus_train_stop_and_resume(tmp_path: Path) -> None:
    import torch

    if torch.cuda.device_count() < 2:
        pytest.fail("this test needs two CUDA GPUs (run it with -m gpu on the two-GPU machine)")
    tokenizer_dir = os.environ.get("WHETSTONE_GPU_TOKENIZER")
    if not tokenizer_dir:
        pytest.fail("set WHETSTONE_GPU_TOKENIZER to a folder with a tokenizer and chat template")
    save_tiny_llama(tmp_path / "base", Path(tokenizer_dir), hidden=256, dtype=torch.bfloat16)
    run = tmp_path / "run"
    proc = run_cli(
        "train", "--data", str(SAMPLE_DATA), "--run-dir", str(run), "--model", str(tmp_path / "base"),
        "--max-steps", "6", "--quant", "4bit", "--max-length", "256", "--lr", "5e-3", "--gpus", "2",
        "--save-steps", "3", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["steps"] == 6
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["type"] == "step"]
    print("steps", steps[-1])
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    assert all(e["gpus"] == 2 and len(e["vram_gib_per_gpu"]) == 2 for e in steps)
    assert all(v > 0 for v in steps[-1]["vram_gib_per_gpu"])
    assert json.loads((run / "env.json").read_text())["processes"] == 2
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    # Resume from the step-3 checkpoint of the same run: the curve continues after step 3.
    import shutil

    shutil.rmtree(run / "checkpoints" / "checkpoint-6")
    proc = run_cli("train", "--run-dir", str(run), "--resume", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert any(e.get("resumed_from") == 3 for e in events)
