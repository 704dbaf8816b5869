"""GPU benchmark: QLoRA on a model too big for one 24 GiB card, split across 2 GPUs (train.shard_model: FSDP2
through accelerate), against one card that runs out of memory, in the same call.

Runs on the GPU machine (../shared/gpu/README.md), from the checkout:
    CAP_GIB=24 python benchmarks/bench_fsdp_gpu.py qwen2.5-32b 6 2048
1. Builds the random-weight model as a pre-quantized NF4 checkpoint (bf16 quant storage, double quant), layer
   by layer on the GPU, in the format transformers saves bitsandbytes 4-bit models in (`weight` packed 4-bit
   codes viewed as bfloat16, `weight.absmax`, `weight.quant_map`, `weight.nested_absmax`,
   `weight.nested_quant_map`, `weight.quant_state.bitsandbytes__nf4`; config.json with its
   quantization_config). A 32B model in bf16 is 65 GB: writing and quantizing it would not fit a 10-minute
   call; the 4-bit checkpoint is 19 GB. It loads through the product path (core.training.trainer.load_model,
   transformers' bitsandbytes loader), like any pre-quantized model a user brings.
2. One GPU (one process, capped at CAP_GIB): the same settings; expected to run out of memory.
3. N GPUs (default 2) with the launch flags `whetstone train --gpus N --shard` uses (core.training.launch
   .fsdp_flags: accelerate launch --use_fsdp --fsdp_version 2): each rank loads the 4-bit model to CPU memory
   and FSDP moves its shard to its GPU.
Same global batch in both: micro-batch BS (default 2) x GA N on one GPU, micro-batch BS x GA 1 on N.
Prints one JSON line per run with the fields qlora_peer.py prints, plus `gpus`, `sharded`, the peak of every
GPU, and `scaling` (null: the one-GPU run has no speed to compare with when it runs out of memory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
sys.path.insert(0, str(HERE.parent))

SHAPES: dict[str, dict[str, Any]] = {
    # Qwen2.5-32B: q/k/v with bias (Qwen2 architecture), untied embeddings
    "qwen2.5-32b": dict(
        arch="qwen2",
        hidden_size=5120,
        intermediate_size=27648,
        num_hidden_layers=64,
        num_attention_heads=40,
        num_key_value_heads=8,
        vocab_size=152064,
        rope_theta=1000000.0,
        max_position_embeddings=32768,
        rms_norm_eps=1e-5,
    ),
    "llama3-70b": dict(
        arch="llama",
        hidden_size=8192,
        intermediate_size=28672,
        num_hidden_layers=80,
        num_attention_heads=64,
        num_key_value_heads=8,
        vocab_size=128256,
        rope_theta=500000.0,
        max_position_embeddings=8192,
    ),
    "tiny": dict(  # a smoke test of the same path
        arch="qwen2",
        hidden_size=512,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
        vocab_size=152064,
        max_position_embeddings=4096,
    ),
}

LINEARS = [
    ("self_attn.q_proj", "q"),
    ("self_attn.k_proj", "kv"),
    ("self_attn.v_proj", "kv"),
    ("self_attn.o_proj", "o"),
    ("mlp.gate_proj", "up"),
    ("mlp.up_proj", "up"),
    ("mlp.down_proj", "down"),
]


def model_config(shape: str) -> Any:
    from transformers import LlamaConfig, Qwen2Config

    spec = dict(SHAPES[shape])
    arch = spec.pop("arch")
    cls = Qwen2Config if arch == "qwen2" else LlamaConfig
    return cls(**spec, tie_word_embeddings=False, dtype="bfloat16")


QUANT = {
    "quant_method": "bitsandbytes",
    "load_in_4bit": True,
    "load_in_8bit": False,
    "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_use_double_quant": True,
    "bnb_4bit_compute_dtype": "bfloat16",
    "bnb_4bit_quant_storage": "bfloat16",
    "llm_int8_enable_fp32_cpu_offload": False,
    "llm_int8_has_fp16_weight": False,
    "llm_int8_skip_modules": None,
    "llm_int8_threshold": 6.0,
}


def build_nf4_checkpoint(shape: str, path: str, device: str = "cuda") -> dict[str, Any]:
    """Random weights (normal, std 0.02), quantized to NF4 one layer at a time on `device` and written as
    safetensors shards with an index: never more than one layer in memory."""
    import bitsandbytes.functional as bnbf
    import torch
    from safetensors.torch import save_file

    folder = Path(path)
    if (folder / "config.json").exists():
        return {"built": "cached"}
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg = model_config(shape)
    h, inter = cfg.hidden_size, cfg.intermediate_size
    head = h // cfg.num_attention_heads
    q_out, kv_out = cfg.num_attention_heads * head, cfg.num_key_value_heads * head
    shapes = {"q": (q_out, h), "kv": (kv_out, h), "o": (h, q_out), "up": (inter, h), "down": (h, inter)}
    gen = torch.Generator(device=device).manual_seed(0)
    weight_map: dict[str, str] = {}
    total = 0

    def rand(*size: int) -> Any:
        return torch.randn(*size, generator=gen, device=device, dtype=torch.bfloat16) * 0.02

    def write(tensors: dict[str, Any], name: str) -> None:
        nonlocal total
        cpu = {k: v.contiguous().cpu() for k, v in tensors.items()}
        save_file(cpu, str(folder / name), metadata={"format": "pt"})
        total += sum(v.numel() * v.element_size() for v in cpu.values())
        weight_map.update(dict.fromkeys(cpu, name))

    write({"model.embed_tokens.weight": rand(cfg.vocab_size, h)}, "embed.safetensors")
    for i in range(cfg.num_hidden_layers):
        tensors: dict[str, Any] = {}
        pre = f"model.layers.{i}."
        for module, kind in LINEARS:
            w = rand(*shapes[kind])
            packed, state = bnbf.quantize_4bit(
                w, blocksize=64, compress_statistics=True, quant_type="nf4", quant_storage=torch.bfloat16
            )
            tensors[pre + module + ".weight"] = packed
            for key, value in state.as_dict(packed=True).items():
                tensors[pre + module + ".weight." + key] = value
            if getattr(cfg, "model_type", "") == "qwen2" and kind in ("q", "kv"):
                tensors[pre + module + ".bias"] = torch.zeros(shapes[kind][0], dtype=torch.bfloat16)
            del w
        tensors[pre + "input_layernorm.weight"] = torch.ones(h, dtype=torch.bfloat16)
        tensors[pre + "post_attention_layernorm.weight"] = torch.ones(h, dtype=torch.bfloat16)
        write(tensors, f"layer-{i:03d}.safetensors")
    write(
        {"model.norm.weight": torch.ones(h, dtype=torch.bfloat16), "lm_head.weight": rand(cfg.vocab_size, h)},
        "head.safetensors",
    )
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}), encoding="utf-8"
    )
    config = cfg.to_dict()
    config["quantization_config"] = QUANT
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    from qlora_peer import make_tokenizer

    make_tokenizer().save_pretrained(str(folder))
    return {"built_s": round(time.perf_counter() - t0, 1), "checkpoint_gib": round(total / 2**30, 2)}


def child(shape: str, path: str, steps: int, max_len: int) -> None:
    """One rank (or the only process): train and report tokens/s over steps 2..end, all ranks summed."""
    import torch
    from qlora_peer import Clock, make_dataset, make_tokenizer
    from trl import SFTTrainer

    from core.loader import detect_hardware
    from core.training.config import TrainingConfig, preset_config, resolve_for_hardware, with_overrides
    from core.training.trainer import across_ranks, gather_ranks, load_model, lora_config, sft_config

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    rank0 = int(os.environ.get("RANK", "0")) == 0
    torch.cuda.set_device(local)
    hw = detect_hardware()  # WHETSTONE_GPU_CAP_GIB caps this rank's GPU
    bs = int(os.environ.get("BS", "2"))
    ga_one = int(os.environ.get("GA", "2"))
    cfg = preset_config("QLoRA 7–8B on 24 GB", TrainingConfig())
    cfg = with_overrides(
        cfg,
        {
            "model.name": path,
            "train.max_steps": steps,
            "train.max_length": max_len,
            "train.micro_batch_size": bs,
            "train.grad_accum": max(1, ga_one // world),
            "train.gpus": world,
            "train.shard_model": world > 1,
        },
    )
    resolved = resolve_for_hardware(cfg, hw)
    rc = resolved.config
    out: dict[str, Any] = {
        "mode": "ours_fsdp2" if world > 1 else "ours",
        "gpus": world,
        "sharded": world > 1,
        "shape": shape,
        "max_len": max_len,
        "bs": bs,
        "ga": rc.train.grad_accum,
        "global_batch": bs * rc.train.grad_accum * world,
        "steps": steps,
        "cap_gib": round(hw.total_gib, 1),
        "gpu": torch.cuda.get_device_name(local),
    }
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        model = load_model(Path(path), resolved, hw)
        out["load_s"] = round(time.perf_counter() - t0, 1)
        ds = make_dataset(steps * bs * rc.train.grad_accum * world * 8, max_len)
        args = sft_config(
            resolved, hw, f"/tmp/out_fsdp_{world}", has_eval=False, save_strategy="no", logging_steps=1
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=ds,
            processing_class=make_tokenizer(),
            peft_config=lora_config(rc),
        )
        counter = [0]
        inner = trainer.data_collator

        def counting(features):  # type: ignore[no-untyped-def]
            counter[0] += sum(len(f["input_ids"]) for f in features)
            return inner(features)

        trainer.data_collator = counting
        clock = Clock(counter)
        trainer.add_callback(clock)
        trainer.train()
    except Exception as exc:  # noqa: BLE001 - an out-of-memory (expected on one card) or what broke, in one line
        import traceback

        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        out["error"] = f"{type(exc).__name__}: {first}"
        out["peak_alloc_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["seconds_to_oom"] = round(time.perf_counter() - t0, 1)
        print("RESULT " + json.dumps(out), flush=True)
        os._exit(3)  # a rank that ran out of memory ends here; the launcher ends the others
    (ta, ca), (tb, cb) = clock.marks[1], clock.marks[-1]
    tokens = across_ranks([float(cb - ca)], "sum")[0]
    elapsed = across_ranks([tb - ta], "max")[0]
    peaks = [round(p[0], 2) for p in gather_ranks([torch.cuda.max_memory_allocated() / 2**30])]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    from core.training.trainer import gather_adapter, sharded, split_share

    share = split_share(trainer.model_wrapped)
    adapter = gather_adapter(trainer.model) if sharded(rc) else {}
    if rank0:
        out.update(
            {
                "tokens_per_s": round(tokens / elapsed, 1),
                "tokens_per_s_per_gpu": round(tokens / elapsed / world, 1),
                "peak_alloc_gib": max(peaks),
                "peak_alloc_gib_per_gpu": peaks,
                "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None,
                "losses": losses,
                "weights_gib_per_gpu": round(share[0], 2) if share else None,
                "weights_gib_whole": round(share[1], 2) if share else None,
                "adapter_tensors": len(adapter),
                "adapter_mib": round(sum(t.numel() * t.element_size() for t in adapter.values()) / 2**20, 1),
            }
        )
        print("RESULT " + json.dumps(out), flush=True)


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> dict[str, Any] | None:
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        sys.stderr.write(f"timed out after {timeout:.0f}s: {' '.join(cmd[:4])}\n")
        sys.stderr.write(str(exc.stderr or "")[-4000:] if isinstance(exc.stderr, str) else "")
        return None
    results = [json.loads(x[len("RESULT ") :]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if not results or "error" not in results[0] and proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-8000:])
    return results[0] if results else None


def main() -> None:
    if sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    if sys.argv[1] == "--build":
        print(json.dumps(build_nf4_checkpoint(sys.argv[2], sys.argv[3], sys.argv[4])), flush=True)
        return
    import torch

    from core.training.launch import accelerate_launch

    shape, steps = sys.argv[1], int(sys.argv[2])
    max_len = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
    gpus = int(os.environ.get("GPUS", "2"))
    path = "/tmp/nf4_" + shape
    built = build_nf4_checkpoint(shape, path)
    print(json.dumps({"shape": shape, **built}), flush=True)
    torch.cuda.empty_cache()
    cap = os.environ.get("CAP_GIB", "24")
    env = {
        **os.environ,
        "WHETSTONE_GPU_CAP_GIB": cap,
        "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
    }
    me = [str(Path(__file__).resolve()), "--child", shape, path, str(steps), str(max_len)]
    budget = float(os.environ.get("RUN_TIMEOUT_S", "280"))
    one = None
    if os.environ.get("SKIP_ONE") != "1":
        one = _run(
            [sys.executable, *me], {**env, "CUDA_VISIBLE_DEVICES": os.environ.get("ONE_GPU", "0")}, budget
        )
        print(
            json.dumps(one or {"mode": "ours", "gpus": 1, "shape": shape, "error": "no result"}), flush=True
        )
    if os.environ.get("SKIP_MANY") == "1":  # (the one-card run alone, e.g. beside other work on the next GPU)
        return
    launch = accelerate_launch(gpus, sharded=True)  # the product launch (core/training/launch.py)
    many = _run([sys.executable, *launch, *me], env, budget)
    if many is not None:
        # tokens/s split over one card's in the same call; none when one card ran out of memory (or was skipped)
        speed = (one or {}).get("tokens_per_s")
        many["scaling"] = round(many["tokens_per_s"] / speed, 3) if speed and "tokens_per_s" in many else None
    print(
        json.dumps(many or {"mode": "ours_fsdp2", "gpus": gpus, "shape": shape, "error": "no result"}),
        flush=True,
    )


if __name__ == "__main__":
    main()
