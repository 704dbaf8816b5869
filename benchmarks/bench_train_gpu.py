"""GPU benchmark: our QLoRA trainer vs the peers (benchmarks/peers/qlora_peer.py), same model, same data.

Runs on the GPU machine (see ../shared/gpu/README.md):
    CAP_GIB=24 python benchmarks/bench_train_gpu.py llama3-8b 5 2048 [VARIANT,...]
VARIANTs: default (the "QLoRA 7–8B on 24 GB" preset as the app runs it: on CUDA, attention per document
inside packed rows, LoRA dropout 0, our memory plan), sdpa (the same with the reference attention: one SDPA
over each whole flattened row), drop (LoRA dropout 0.05, the presets' old value), hfckpt (transformers'
gradient checkpointing instead of the memory plan), nodrop (LoRA dropout 0), nockpt (micro-batch 1 × GA 16
without gradient checkpointing). Env BS / GA override
the micro-batch and gradient accumulation (a context probe: FIXED_LEN=1 BS=1 GA=1, as for the peers). Prints one JSON line per variant with
tokens/s (real tokens, counted like the peer script), peak allocated/reserved GiB and our estimate of the
peak for the same settings, so the estimate's error is measured in the same run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run_variant(variant: str, shape: str, path: str, steps: int, max_len: int) -> dict:
    import torch
    from qlora_peer import SHAPES, Clock, make_dataset, make_tokenizer
    from trl import SFTTrainer

    from core.loader import detect_hardware
    from core.training.config import (
        Hardware,
        TrainingConfig,
        preset_config,
        resolve_for_hardware,
        with_overrides,
    )
    from core.training.estimate import ModelShape, estimate
    from core.training.trainer import (
        apply_memory_plan,
        load_model,
        lora_config,
        sft_config,
        uses_memory_plan,
    )

    hw = detect_hardware()
    cap = float(os.environ.get("CAP_GIB", "0") or 0)
    cfg = preset_config("QLoRA 7–8B on 24 GB", TrainingConfig())
    over: dict = {"model.name": path, "train.max_steps": steps, "train.max_length": max_len}
    if variant in ("nodrop", "nockpt"):
        over["lora.dropout"] = 0.0
    if variant == "sdpa":
        over["model.attn_implementation"] = "sdpa"
    if variant == "drop":
        over["lora.dropout"] = 0.05
    os.environ.pop("WHETSTONE_MEMORY_PLAN", None)
    if variant == "hfckpt":  # transformers' gradient checkpointing instead of our memory plan
        os.environ["WHETSTONE_MEMORY_PLAN"] = "off"
    if os.environ.get("BS"):
        over["train.micro_batch_size"] = int(os.environ["BS"])
    if os.environ.get("GA"):
        over["train.grad_accum"] = int(os.environ["GA"])
    if variant == "nockpt":
        over.update(
            {"train.micro_batch_size": 1, "train.grad_accum": 16, "train.gradient_checkpointing": False}
        )
    cfg = with_overrides(cfg, over)
    resolved = resolve_for_hardware(cfg, hw)
    rc = resolved.config
    shape_cfg = dict(SHAPES[shape])
    shape_cfg.setdefault("tie_word_embeddings", False)
    est = estimate(
        cfg,
        ModelShape.from_config_json(shape_cfg),
        Hardware(True, True, hw.name, cap or hw.total_gib),  # this GPU (its speed class), capped
    )

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = load_model(
        Path(path), resolved, hw, emit=lambda event: print(json.dumps(event), file=sys.stderr, flush=True)
    )
    load_s = time.perf_counter() - t0
    # the same token stream as the peers' packed modes (8x the rows, lognormal lengths, median 350)
    ds = make_dataset(steps * rc.train.micro_batch_size * rc.train.grad_accum * 8, max_len)
    own_ckpt = uses_memory_plan(model, resolved, hw)
    args = sft_config(
        resolved,
        hw,
        "/tmp/out_ours_" + variant,
        has_eval=False,
        save_strategy="no",
        logging_steps=1,
        **({"gradient_checkpointing": False} if own_ckpt else {}),
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=ds,
        processing_class=make_tokenizer(),
        peft_config=lora_config(rc),
    )
    plan = apply_memory_plan(trainer, resolved, hw, cap or None) if own_ckpt else "transformers"
    counter = [0]
    inner = trainer.data_collator

    def counting(features):  # type: ignore[no-untyped-def]
        counter[0] += sum(len(f["input_ids"]) for f in features)
        return inner(features)

    trainer.data_collator = counting
    clock = Clock(counter)
    trainer.add_callback(clock)
    from transformers import TrainerCallback

    class Progress(TrainerCallback):  # type: ignore[misc]
        """A line per step, so a run cut by the call's time limit still says how far it got and its peak."""

        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            line = {
                "mode": "ours_" + variant,
                "shape": shape,
                "max_len": max_len,
                "progress_step": state.global_step,
                "elapsed_s": round(time.perf_counter() - t1, 1),
                "peak_alloc_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
            }
            print(json.dumps(line), flush=True)

    trainer.add_callback(Progress())
    t1 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t1
    (ta, ca), (tb, cb) = clock.marks[1], clock.marks[-1]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    peak = torch.cuda.max_memory_allocated() / 2**30
    out = {
        "mode": "ours_" + variant,
        "shape": shape,
        "max_len": max_len,
        "bs": rc.train.micro_batch_size,
        "ga": rc.train.grad_accum,
        "steps": steps,
        "gradient_checkpointing": resolved.gradient_checkpointing,
        "liger": resolved.liger,
        "packing": rc.train.packing,
        "attention": model.config._attn_implementation,
        "memory_plan": plan,
        "dropout": rc.lora.dropout,
        "tokens_per_s": round((cb - ca) / (tb - ta), 1),
        "load_s": round(load_s, 1),
        "train_s": round(total, 1),
        "peak_alloc_gib": round(peak, 2),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
        "estimate_gib": est.vram_gib,
        "estimate_error_pct": round(100 * (est.vram_gib - peak) / peak, 1),
        "estimate_breakdown": est.breakdown_gib,
        "estimate_fits": est.fits,
        "estimate_tokens_per_s": est.tokens_per_s,
        "estimate_tokens_per_s_error_pct": round(
            100 * (est.tokens_per_s - (cb - ca) / (tb - ta)) / ((cb - ca) / (tb - ta)), 1
        ),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "gpu": torch.cuda.get_device_name(0),
    }
    del trainer, model
    torch.cuda.empty_cache()
    return out


def main() -> None:
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # as the app's worker
    import torch
    from qlora_peer import make_model

    shape = sys.argv[1]
    steps = int(sys.argv[2])
    max_len = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
    variants = sys.argv[4].split(",") if len(sys.argv) > 4 else ["default"]
    path = "/tmp/model_" + shape
    if os.environ.get("CAP_GIB"):
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(float(os.environ["CAP_GIB"]) * 2**30 / total)
    make_model(shape, path)
    for variant in variants:
        try:
            print(json.dumps(run_variant(variant, shape, path, steps, max_len)), flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on to the next variant
            import traceback

            traceback.print_exc()
            print(json.dumps({"mode": "ours_" + variant, "error": repr(exc)[:500]}), flush=True)


if __name__ == "__main__":
    main()
