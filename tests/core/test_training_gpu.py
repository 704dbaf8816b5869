"""GPU checks (marked `gpu`: run on the GPU machine, not in CI):
    python3 -m pytest -m gpu tests/core/test_training_gpu.py
QLoRA on random-weight models of real shapes: it trains, and the measured peak stays within the estimate's
stated error (±8%)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu
BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _bench():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH / "peers"))
    spec = importlib.util.spec_from_file_location("bench_train_gpu", BENCH / "bench_train_gpu.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("variant", "max_len"), [("default", 1024), ("nockpt", 1024), ("default", 4096)])
def test_llama32_1b_qlora_peak_within_estimate(variant: str, max_len: int) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.fail("this test needs a CUDA GPU (run it with -m gpu on the GPU machine)")
    bench = _bench()  # puts benchmarks/peers on sys.path
    from qlora_peer import make_model  # type: ignore[import-not-found]

    path = "/tmp/model_llama3.2-1b"
    make_model("llama3.2-1b", path)
    out = bench.run_variant(variant, "llama3.2-1b", path, 3, max_len)
    print(out)
    assert out["last_loss"] == out["last_loss"]  # not NaN
    assert out["tokens_per_s"] > 0
    assert abs(out["estimate_error_pct"]) <= 8.0, out
