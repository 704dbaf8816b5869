"""CPU training figures (prints, never asserts): seconds per LoRA/QLoRA step on the embedded SmolLM2-135M
with float32 compute (what the app picks on a CPU) vs bfloat16 (TRL's default), plus the estimate's
tokens/s for the same setting. Timings on a shared machine drift: compare figures from one invocation.

    OMP_NUM_THREADS=2 python benchmarks/bench_train.py [STEPS]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def one_step_times(model_dir: Path, dtype_name: str, steps: int, quant: bool, tokens: int = 256) -> float:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute = torch.bfloat16 if dtype_name == "bfloat16" else torch.float32
    kwargs = {}
    if quant:
        kwargs = {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute
            ),
            "device_map": {"": "cpu"},
        }
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=compute if quant else torch.float32, **kwargs
    )
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(100, 40000, (1, tokens))
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype_name == "bfloat16" and not quant):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    return sum(times[1:]) / steps


def main() -> None:
    from core.models import resolve_base_model
    from core.training.config import Hardware, preset_config
    from core.training.estimate import estimate, shape_for_model_quick

    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    model_dir = resolve_base_model("smollm2-135m-instruct")
    out: dict = {}
    for quant in (True, False):
        for dtype in ("float32", "bfloat16"):
            s = one_step_times(model_dir, dtype, steps, quant)
            key = f"{'qlora' if quant else 'lora'}_{dtype}"
            out[key] = {"s_per_step_256_tokens": round(s, 2), "tokens_per_s": round(256 / s, 1)}
    cfg = preset_config("Quick test (CPU)")
    shape = shape_for_model_quick("smollm2-135m-instruct")
    assert shape is not None
    est = estimate(cfg, shape, Hardware(False, False, "CPU"))
    out["estimate_tokens_per_s"] = est.tokens_per_s
    for mode in ("qlora", "lora"):
        slow = (
            out[f"{mode}_bfloat16"]["s_per_step_256_tokens"] / out[f"{mode}_float32"]["s_per_step_256_tokens"]
        )
        out[f"{mode}_bf16_slowdown"] = round(slow, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
