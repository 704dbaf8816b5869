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


def _cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.fail("this test needs a CUDA GPU (run it with -m gpu on the GPU machine)")


@pytest.mark.parametrize("kernel", ["varlen", "aten"])
def test_packed_attention_matches_each_document_alone_in_bf16(
    kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path (flash varlen per document inside packed rows) against the reference (every document run
    on its own with SDPA): loss and every LoRA gradient within relative error 1e-2 in bf16."""
    import torch

    from core.training import packed_attention
    from tests.core.packed_helpers import (
        documents,
        packed_batch,
        packed_loss_and_grads,
        reference_loss_and_grads,
        tiny_lora_model,
        worst_grad_err,
    )

    _cuda()
    assert packed_attention.device_unsupported_reason() is None
    monkeypatch.setenv("WHETSTONE_PACKED_KERNEL", kernel)
    name = packed_attention.register()
    rows = documents()
    fast = tiny_lora_model(name, torch.bfloat16, "cuda")
    loss, grads = packed_loss_and_grads(fast, packed_batch(rows, "cuda"))
    ref = tiny_lora_model("sdpa", torch.bfloat16, "cuda")
    ref_loss, ref_grads = reference_loss_and_grads(ref, rows, "cuda")
    err, where = worst_grad_err(grads, ref_grads)
    print(f"{kernel}: loss {loss:.6f} vs {ref_loss:.6f}; worst LoRA gradient rel. error {err:.2e} ({where})")
    assert abs(loss - ref_loss) / ref_loss <= 1e-2
    assert err <= 1e-2, where
    # the reference path as TRL runs it (sdpa, packed position_ids, use_cache=False) on this transformers
    sdpa_loss, sdpa_grads = packed_loss_and_grads(ref, packed_batch(rows, "cuda"), use_cache=False)
    sdpa_err, _ = worst_grad_err(sdpa_grads, ref_grads)
    print(f"sdpa packed (reference path): loss {sdpa_loss:.6f}; worst gradient rel. error {sdpa_err:.2e}")
    assert abs(sdpa_loss - ref_loss) / ref_loss <= 1e-2 and sdpa_err <= 1e-2


@pytest.mark.parametrize(
    ("kept", "offload", "tile"),
    [(1, True, 64), (0, True, 100), (0, False, 0)],
    ids=["kept1-tile64", "offload-tile100", "recompute"],
)
def test_memory_plan_matches_each_document_alone_in_bf16(kept: int, offload: bool, tile: int) -> None:
    """The memory plan on the GPU (inputs copied to pinned CPU memory on a side stream and back, tiled MLP,
    recomputation) with per-document attention, against every document run on its own: loss and every LoRA
    gradient within relative error 1e-2 in bf16; a second step through the same plan gives the same."""
    import torch

    from core.training import packed_attention
    from core.training.memory_plan import MemoryPlan, install
    from tests.core.packed_helpers import (
        documents,
        packed_batch,
        packed_loss_and_grads,
        reference_loss_and_grads,
        tiny_lora_model,
        worst_grad_err,
    )

    _cuda()
    name = packed_attention.register()
    rows = documents()
    fast = tiny_lora_model(name, torch.bfloat16, "cuda")
    fast.train()
    assert install(fast, MemoryPlan(kept=kept, offload=offload, mlp_tile=tile)) == 3
    loss, grads = packed_loss_and_grads(fast, packed_batch(rows, "cuda"), use_cache=False)
    loss2, grads2 = packed_loss_and_grads(fast, packed_batch(rows, "cuda"), use_cache=False)
    ref = tiny_lora_model("sdpa", torch.bfloat16, "cuda")
    ref_loss, ref_grads = reference_loss_and_grads(ref, rows, "cuda")
    err, where = worst_grad_err(grads, ref_grads)
    err2, _ = worst_grad_err(grads2, ref_grads)
    print(
        f"plan kept={kept} offload={offload} tile={tile}: loss {loss:.6f} vs {ref_loss:.6f}; worst LoRA "
        f"gradient rel. error {err:.2e} ({where}), second step {err2:.2e}"
    )
    assert abs(loss - ref_loss) / ref_loss <= 1e-2 and abs(loss2 - ref_loss) / ref_loss <= 1e-2
    assert err <= 1e-2 and err2 <= 1e-2, where
