"""Where a CPU training worker's memory goes (prints, never asserts): resident memory (RSS, psutil) after each
phase of the worker on the embedded SmolLM2-135M with the default CPU recipe, on the 200 extraction rows of
bench_cpu_vs_trl.py, then the peak over a few training steps with a validation and sample answers.

    OMP_NUM_THREADS=2 python benchmarks/bench_worker_memory.py [STEPS]
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_gib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**30


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    phases: list[tuple[str, float, float]] = [("python + core", rss_gib(), peak_gib())]

    import torch  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401

    phases.append(("imports (torch, transformers, trl, peft)", rss_gib(), peak_gib()))
    from benchmarks.bench_cpu_vs_trl import make_rows
    from core.training.config import TrainingConfig, preset_config, with_overrides
    from core.training.launch import prepare_run
    from core.training.trainer import build_trainer

    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        data = Path(tmp) / "rows.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in make_rows()))
        cfg = preset_config("Quick test (CPU)", TrainingConfig())
        cfg = with_overrides(
            cfg, {"train.max_steps": steps, "train.eval_steps": steps, "train.save_steps": steps}
        )
        run = prepare_run(cfg, data, Path(tmp) / "run")
        events: list[dict] = []
        t0, c0 = time.perf_counter(), time.process_time()
        trainer, _callback, _info = build_trainer(run, events.append)
        phases.append(("trainer built (tokenizer, datasets, model, LoRA)", rss_gib(), peak_gib()))
        trainer.train()
        phases.append((f"after {steps} steps + 1 validation with samples", rss_gib(), peak_gib()))
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    for name, rss, peak in phases:
        print(f"{name:55} RSS {rss:5.2f} GiB   peak {peak:5.2f} GiB")
    print(f"({seconds:.0f} s wall, {cpu_seconds:.0f} s CPU from building the trainer to the end of training)")


if __name__ == "__main__":
    main()
