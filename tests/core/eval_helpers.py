"""Test helper: train a small LoRA adapter on SmolLM2 for the sample task (support tickets -> fixed JSON),
directly with PEFT and a plain torch loop (loss on the assistant tokens only), and lay it out as a run folder.
Used by the slow quality test so it does not depend on the trainer's own options."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample_dataset.jsonl"


def make_run_dataset(run: Path) -> list[dict]:
    rows = []
    for i, line in enumerate(SAMPLE.read_text(encoding="utf-8").splitlines()):
        record = orjson.loads(line)
        split = "test" if i % 10 == 0 else "validation" if i % 10 == 1 else "train"
        rows.append({"id": f"ex{i}", "messages": record["messages"], "split": split})
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    (run / "dataset.jsonl").write_bytes(data)
    (run / "dataset.sha256").write_text(hashlib.sha256(data).hexdigest() + "  dataset.jsonl\n")
    return rows


def train_smollm2_run(
    base_dir: Path,
    run: Path,
    model_name: str,
    steps: int = 12,
    lr: float = 2e-3,
    batch: int = 4,
    rank: int = 8,
    log=None,
) -> Path:
    import torch
    import yaml
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run.mkdir(parents=True, exist_ok=True)
    (run / "logs").mkdir(exist_ok=True)
    config = {
        "model": {"name": model_name},
        "lora": {"r": rank, "alpha": 2 * rank, "target_modules": "all-linear"},
        "train": {"max_steps": steps, "lr": lr, "batch_size": batch, "seed": 0},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    rows = make_run_dataset(run)
    train = [r for r in rows if r["split"] == "train"]
    tok = AutoTokenizer.from_pretrained(base_dir)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear")
    )
    encoded = []
    for r in train:
        prompt = tok.apply_chat_template(r["messages"][:-1], tokenize=False, add_generation_prompt=True)
        answer = r["messages"][-1]["content"]
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        encoded.append((p_ids + a_ids, [-100] * len(p_ids) + a_ids))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    gen = torch.Generator().manual_seed(0)
    events = []
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(encoded), (batch,), generator=gen).tolist()
        chunk = [encoded[i] for i in idx]
        width = max(len(ids) for ids, _ in chunk)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in chunk])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk])
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        events.append({"type": "step", "step": step, "loss": float(loss.detach())})
        if log is not None:
            log(events[-1])
    events.append({"type": "done", "step": steps, "message": "finished"})
    (run / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    model.save_pretrained(run / "adapter")
    tok.save_pretrained(run / "adapter")
    return run
