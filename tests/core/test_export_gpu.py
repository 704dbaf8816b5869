"""GPU checks of the product path after training (marked `gpu`: run on the GPU machine, not in CI):
    WHETSTONE_GPU_TOKENIZER=DIR python3 -m pytest -m gpu tests/core/test_export_gpu.py
A tiny Llama (random weights, the tokenizer + chat template in DIR) is QLoRA-trained through `whetstone train`
on CUDA, then exported merged (the base loaded unquantized on the GPU, merged in bf16) and as a verified
F16 GGUF: the code paths the CPU tests cannot reach."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DATA, run_cli, save_tiny_llama

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    if not torch.cuda.is_available():
        pytest.fail("this test needs a CUDA GPU (run it with -m gpu on the GPU machine)")
    tokenizer_dir = os.environ.get("WHETSTONE_GPU_TOKENIZER")
    if not tokenizer_dir:
        pytest.fail("set WHETSTONE_GPU_TOKENIZER to a folder with a tokenizer and chat template")
    root = tmp_path_factory.mktemp("gpu-export")
    save_tiny_llama(root / "base", Path(tokenizer_dir), hidden=256, dtype=torch.bfloat16)
    run = root / "run"
    proc = run_cli(
        "train", "--data", str(SAMPLE_DATA), "--run-dir", str(run), "--model", str(root / "base"),
        "--max-steps", "6", "--quant", "4bit", "--max-length", "256", "--lr", "5e-3", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 6
    env = json.loads((run / "env.json").read_text())
    assert env["gpu"] and env["gpu"]["name"]  # trained with the GPU the run recorded
    return run


def test_merged_export_on_gpu_is_verified(gpu_run: Path, tmp_path: Path) -> None:
    from core.export.api import export_run

    result = export_run(gpu_run, "merged", tmp_path / "merged")
    figures = result.verification["merged"]
    print("merged", figures)
    assert figures["passed"] and figures["top1_agreement"] >= 0.95
    card = (Path(result.out_dir) / "README.md").read_text()
    assert "cuda" in card  # merged on the GPU, not quietly on the CPU
    config = json.loads((Path(result.out_dir) / "config.json").read_text())
    assert (config.get("dtype") or config.get("torch_dtype")) == "bfloat16"
    assert "quantization_config" not in config  # merged into an unquantized base


def test_gguf_export_on_gpu_is_verified(gpu_run: Path, tmp_path: Path) -> None:
    from gguf import GGUFReader

    from core.export.api import export_run

    result = export_run(gpu_run, "gguf", tmp_path / "gguf", quant="f16")
    print("gguf", result.verification)
    assert result.verification["passed"]
    (path,) = Path(result.out_dir).glob("*.gguf")
    reader = GGUFReader(path)
    template = reader.fields["tokenizer.chat_template"]
    assert "<|im_start|>" in bytes(template.parts[template.data[0]]).decode()
