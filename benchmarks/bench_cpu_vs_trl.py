"""`whetstone train` (the default CPU recipe) vs plain TRL on the CPU: whole-process wall time, peak memory,
and exact match on held-out rows. Prints figures, never asserts.

Both train one epoch on the same 200 synthetic extraction rows (a support message -> JSON with the customer's
name, city and order number) on the embedded SmolLM2-135M-Instruct:

- ours:  `python -m core.cli train --data DATA --run-dir RUN --epochs 1 --json` (no preset given: on a CPU
         that is the "Quick test (CPU)" recipe; its validation split is 20 more rows);
- TRL:   SFTTrainer with CPU-correct settings: float32, no gradient checkpointing, LoRA r16 (alpha 32, all
         linear layers), batch 8, lr 2e-4, prompt-completion rows (loss on the completion only), no eval.

Runs alternate (TRL, ours, TRL, ours, ...) so that load changes on a shared machine hit both. The ratio is
TRL seconds / our seconds per pair (above 1 = ours faster); the median over pairs is printed with the load
average, for wall time and for CPU time (user + system of the whole process tree, steadier on a busy box). Exact match: greedy answers (max 48 new tokens) of each tuned model on 40 held-out rows.

    OMP_NUM_THREADS=2 python benchmarks/bench_cpu_vs_trl.py [PAIRS]
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYSTEM = "Extract the customer's name, city and order number from the message. Answer with JSON only."
FIRST = [
    "Anna",
    "Ben",
    "Chloe",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Keiko",
    "Liam",
]
LAST = ["Berg", "Costa", "Duval", "Evans", "Fischer", "Garcia", "Holm", "Ito", "Jansen", "Kovac", "Lopez"]
CITIES = ["Lyon", "Porto", "Leeds", "Graz", "Malmo", "Turku", "Gdansk", "Bilbao", "Utrecht", "Brno", "Cork"]
TEMPLATES = [
    "Hi, this is {name} from {city}. My order {order} still hasn't arrived, can you check?",
    "Order {order} arrived damaged. {name}, {city}.",
    "Hello! {name} here ({city}). I'd like to return order {order}.",
    "Can you change the delivery address of order {order}? Thanks, {name} in {city}",
    "I was charged twice for {order}. Regards, {name} ({city})",
    "{name} writing from {city}: where is my parcel? Order number {order}.",
]


def make_rows(seed: int = 0) -> list[dict[str, Any]]:
    """200 train, 20 validation and 40 test rows (split fixed in the file, so both trainers see the same)."""
    rnd = random.Random(seed)
    rows = []
    for i in range(260):
        name = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"
        city = rnd.choice(CITIES)
        order = f"{rnd.choice('ABCDEFGH')}{rnd.randint(10000, 99999)}"
        user = rnd.choice(TEMPLATES).format(name=name, city=city, order=order)
        answer = json.dumps({"name": name, "city": city, "order": order})
        split = "train" if i < 200 else "validation" if i < 220 else "test"
        rows.append(
            {
                "id": f"x{i:03d}",
                "split": split,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": answer},
                ],
            }
        )
    return rows


def trl_child(data: str, out: str) -> None:
    """Plain TRL, as a practitioner would write it for a CPU (run in its own process)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from core.models import resolve_base_model

    model_dir = resolve_base_model("smollm2-135m-instruct")
    rows = [json.loads(line) for line in Path(data).read_text().splitlines() if line.strip()]
    train = [
        {"prompt": r["messages"][:-1], "completion": r["messages"][-1:]}
        for r in rows
        if r["split"] == "train"
    ]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    args = SFTConfig(
        output_dir=out,
        num_train_epochs=1,
        per_device_train_batch_size=8,
        learning_rate=2e-4,
        gradient_checkpointing=False,
        bf16=False,
        fp16=False,
        use_cpu=True,
        logging_steps=5,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        max_length=512,
    )
    lora = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train),
        processing_class=tokenizer,
        peft_config=lora,
    )
    trainer.train()
    trainer.save_model(str(Path(out) / "adapter"))


def _timed(
    cmd: list[str], env: dict[str, str]
) -> tuple[float, float, float, subprocess.CompletedProcess[str]]:
    """(wall seconds, CPU seconds of the process tree, peak RSS GiB of its largest process, result); RSS is
    polled every 0.2 s with psutil. CPU seconds (user + system of every finished descendant) barely move with
    the load of a shared machine, unlike wall time."""
    import resource

    import psutil

    def cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    cpu0 = cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def poll() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], max(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            done.wait(0.2)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    done.set()
    thread.join()
    return seconds, cpu() - cpu0, peak[0] / 2**30, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def exact_match(adapter: Path, rows: list[dict[str, Any]]) -> float:
    from core.evaluation.generate import DecodingSettings, ModelPair
    from core.evaluation.metrics import exact_match as em
    from core.models import resolve_base_model

    pair = ModelPair(resolve_base_model("smollm2-135m-instruct"), adapter)
    test = [r for r in rows if r["split"] == "test"]
    answers = []
    settings = DecodingSettings(max_new_tokens=48)
    for start in range(0, len(test), 8):
        batch = test[start : start + 8]
        answers += pair.generate([r["messages"][:-1] for r in batch], "tuned", settings)
    pair.close()
    return sum(em(a.text, r["messages"][-1]["content"]) for a, r in zip(answers, test, strict=True)) / len(
        test
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--trl":
        trl_child(sys.argv[2], sys.argv[3])
        return
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    from core.models import resolve_base_model

    resolve_base_model("smollm2-135m-instruct")  # the safetensors cache exists before any timed run
    rows = make_rows()
    results: dict[str, list[dict[str, Any]]] = {"trl": [], "ours": []}
    with tempfile.TemporaryDirectory(prefix="bench-cpu-trl-") as tmp:
        data = Path(tmp) / "extraction.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        loads = [os.getloadavg()[0]]
        for n in range(pairs):
            for who in ("trl", "ours"):
                out = Path(tmp) / f"{who}{n}"
                if who == "trl":
                    cmd = [sys.executable, __file__, "--trl", str(data), str(out)]
                else:
                    cmd = [
                        sys.executable,
                        "-m",
                        "core.cli",
                        "train",
                        "--data",
                        str(data),
                        "--run-dir",
                        str(out),
                    ]
                    cmd += ["--epochs", "1", "--json", "--quiet"]
                seconds, cpu_s, rss, proc = _timed(cmd, env)
                loads.append(os.getloadavg()[0])
                if proc.returncode != 0:
                    raise SystemExit(f"{who} failed: {proc.stderr[-2000:]}")
                entry: dict[str, Any] = {
                    "seconds": round(seconds, 1),
                    "cpu_seconds": round(cpu_s, 1),
                    "peak_rss_gib": round(rss, 2),
                }
                if who == "ours":
                    doc = json.loads(proc.stdout)
                    entry["steps"] = doc["steps"]
                    entry["adapter"] = doc["adapter"]
                else:
                    entry["adapter"] = str(out / "adapter")
                results[who].append(entry)
                print(
                    f"{who:5} run {n + 1}: {seconds:6.1f} s wall, {cpu_s:6.1f} s CPU, peak RSS {rss:.2f} GiB",
                    file=sys.stderr,
                    flush=True,
                )
        ratios = [t["seconds"] / o["seconds"] for t, o in zip(results["trl"], results["ours"], strict=True)]
        cpu_ratios = [
            t["cpu_seconds"] / o["cpu_seconds"] for t, o in zip(results["trl"], results["ours"], strict=True)
        ]
        em = {who: exact_match(Path(results[who][-1]["adapter"]), rows) for who in ("trl", "ours")}
    report = {
        "pairs": pairs,
        "trl_seconds": [r["seconds"] for r in results["trl"]],
        "ours_seconds": [r["seconds"] for r in results["ours"]],
        "ratio_trl_over_ours": [round(r, 2) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 2),
        "trl_cpu_seconds": [r["cpu_seconds"] for r in results["trl"]],
        "ours_cpu_seconds": [r["cpu_seconds"] for r in results["ours"]],
        "median_cpu_ratio": round(statistics.median(cpu_ratios), 2),
        "ours_steps": results["ours"][-1]["steps"],
        "peak_rss_gib": {
            "trl": max(r["peak_rss_gib"] for r in results["trl"]),
            "ours": max(r["peak_rss_gib"] for r in results["ours"]),
        },
        "exact_match_test40": {k: round(v, 3) for k, v in em.items()},
        "load_average_1min": [round(x, 1) for x in loads],
        "cpu_count": os.cpu_count(),
        "torch_threads": os.environ.get("OMP_NUM_THREADS", "default"),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
