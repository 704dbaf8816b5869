"""GPU benchmark: data-parallel scaling of our QLoRA trainer on several GPUs, through accelerate.

Runs on the GPU machine (../shared/gpu/README.md), from the checkout:
    CAP_GIB=24 python benchmarks/bench_ddp_gpu.py llama3-8b 10 2048 [GPUS]
The parent builds the random-weight model once, then trains the "QLoRA 7–8B on 24 GB" preset twice, each in
its own process tree: on 1 GPU (one process), then on GPUS GPUs (default: all) with the launch command
`whetstone train --gpus N` uses (core.training.launch.worker_command: accelerate launch --multi_gpu, one
process per GPU). Same global batch in both: micro-batch 4 x GA 4 on one GPU, micro-batch 4 x GA 4/N on N.
Prints one JSON line per run with the fields qlora_peer.py prints, plus `gpus`, the peak of every GPU, and
`scaling` (tokens/s on N GPUs over one GPU, same call).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
sys.path.insert(0, str(HERE.parent))


def child(shape: str, path: str, steps: int, max_len: int) -> None:
    """One rank (or the only process): train the preset and report tokens/s over steps 2..end, all ranks summed."""
    import torch
    from qlora_peer import Clock, make_dataset, make_tokenizer
    from trl import SFTTrainer

    from core.loader import detect_hardware
    from core.training.config import TrainingConfig, preset_config, resolve_for_hardware, with_overrides
    from core.training.trainer import (
        across_ranks,
        gather_ranks,
        load_model,
        lora_config,
        sft_config,
    )

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    cap = float(os.environ.get("CAP_GIB", "0") or 0)
    if cap:
        total = torch.cuda.get_device_properties(local).total_memory
        torch.cuda.set_per_process_memory_fraction(cap * 2**30 / total, local)
    hw = detect_hardware()
    cfg = preset_config("QLoRA 7–8B on 24 GB", TrainingConfig())
    ga = cfg.train.grad_accum
    if ga % world:
        raise SystemExit(f"grad_accum {ga} is not divisible by {world} GPUs")
    cfg = with_overrides(
        cfg,
        {
            "model.name": path,
            "train.max_steps": steps,
            "train.max_length": max_len,
            "train.grad_accum": ga // world,
        },
    )
    resolved = resolve_for_hardware(cfg, hw)
    rc = resolved.config
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = load_model(Path(path), resolved)
    load_s = time.perf_counter() - t0
    # the peers' token stream: 8x the rows a step needs, lognormal lengths (median 350), packed
    ds = make_dataset(steps * rc.train.micro_batch_size * ga * 8, max_len)
    args = sft_config(
        resolved, hw, f"/tmp/out_ddp_{world}", has_eval=False, save_strategy="no", logging_steps=1
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
    (ta, ca), (tb, cb) = clock.marks[1], clock.marks[-1]
    tokens = across_ranks([float(cb - ca)], "sum")[0]
    elapsed = across_ranks([tb - ta], "max")[0]
    peaks = [round(p[0], 2) for p in gather_ranks([torch.cuda.max_memory_allocated() / 2**30])]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    if int(os.environ.get("RANK", "0")) == 0:
        out = {
            "mode": "ours_ddp" if world > 1 else "ours",
            "gpus": world,
            "shape": shape,
            "max_len": max_len,
            "bs": rc.train.micro_batch_size,
            "ga": rc.train.grad_accum,
            "global_batch": rc.train.micro_batch_size * rc.train.grad_accum * world,
            "steps": steps,
            "tokens_per_s": round(tokens / elapsed, 1),
            "tokens_per_s_per_gpu": round(tokens / elapsed / world, 1),
            "load_s": round(load_s, 1),
            "peak_alloc_gib": max(peaks),
            "peak_alloc_gib_per_gpu": peaks,
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "gpu": torch.cuda.get_device_name(local),
        }
        print("RESULT " + json.dumps(out), flush=True)


def _run(cmd: list[str], env: dict[str, str]) -> dict | None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
    return None


def main() -> None:
    if sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    import torch
    from qlora_peer import make_model

    from core.training.launch import accelerate_launch

    shape, steps = sys.argv[1], int(sys.argv[2])
    max_len = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
    gpus = int(sys.argv[4]) if len(sys.argv) > 4 else torch.cuda.device_count()
    path = "/tmp/model_" + shape
    make_model(shape, path)
    torch.cuda.empty_cache()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    me = [str(Path(__file__).resolve()), "--child", shape, path, str(steps), str(max_len)]
    one = _run([sys.executable, *me], {**env, "CUDA_VISIBLE_DEVICES": "0"})
    if one:
        print(json.dumps(one), flush=True)
    launch = accelerate_launch(gpus, sharded=False)  # the product launch (core/training/launch.py)
    many = _run([sys.executable, *launch, *me], env)
    if many:
        if one:
            many["scaling"] = round(many["tokens_per_s"] / one["tokens_per_s"], 3)
        print(json.dumps(many), flush=True)


if __name__ == "__main__":
    main()
