"""The training loss on a CPU scores only the trained positions (TRL's fused LM head in its compact mode,
core.training.trainer.score_trained_positions_only) and gives the same loss and LoRA gradients as the model's
own forward over the full logits: tiny models of several families, multi-turn rows with a system prompt and
several trained turns, batched with padding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.training.config import Hardware, TrainingConfig, with_overrides
from core.training.launch import prepare_run
from tests.families import build_family_model

pytestmark = pytest.mark.slow

SYSTEM = "You triage support tickets. Answer with JSON only."


def _rows() -> list[dict[str, Any]]:
    rows = []
    for n in range(6):
        messages = [{"role": "system", "content": SYSTEM}]
        for turn in range(1 + n % 3):  # one to three trained turns, rows of different lengths
            messages += [
                {"role": "user", "content": f"Ticket {n}-{turn}: " + "my invoice is wrong " * (1 + n % 2)},
                {
                    "role": "assistant",
                    "content": json.dumps({"category": ("billing", "technical")[turn % 2]}),
                },
            ]
        rows.append({"id": f"r{n}", "split": "train", "messages": messages})
    return rows


def _trainer(model_dir: Path, tmp_path: Path) -> Any:
    import orjson

    from core.training.trainer import build_trainer

    data = tmp_path / "rows.jsonl"
    data.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in _rows()))
    cfg = with_overrides(
        TrainingConfig(),
        {
            "model.name": str(model_dir),
            "lora.r": 4,
            "lora.alpha": 8,
            "lora.dropout": 0.0,
            "train.max_steps": 1,
            "train.micro_batch_size": 3,
            "train.max_length": 256,
            "train.packing": False,
        },
    )
    run = prepare_run(cfg, data, tmp_path / "run")
    trainer, _callback, _info = build_trainer(run, lambda event: None, Hardware(cuda=False))
    return trainer


def _loss_and_grads(trainer: Any, batch: dict[str, Any], fused: bool) -> tuple[float, dict[str, Any]]:
    model = trainer.model
    model.zero_grad(set_to_none=True)
    if fused:  # what training runs: SFTTrainer.compute_loss through TRL's fused LM head
        loss = trainer.compute_loss(model, dict(batch))
    else:  # the reference: the model's own forward, full logits, transformers' causal-LM loss
        loss = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).loss
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return float(loss.detach()), grads


@pytest.mark.parametrize("family", ["llama3", "qwen2.5", "gemma2", "phi3", "qwen3-moe"])
def test_cpu_loss_scores_only_trained_positions_and_matches_full_logits(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from trl.trainer import utils

    monkeypatch.setattr(utils, "_use_triton", utils._use_triton)  # restored after the test
    full_path = utils._use_triton
    scored: list[int] = []
    chunked = utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden: Any, *args: Any) -> Any:
            scored.append(int(hidden.shape[0]))
            return chunked.apply(hidden, *args)

    monkeypatch.setattr(utils, "_ChunkedLogProbFunction", Spy)
    torch.manual_seed(0)
    trainer = _trainer(build_family_model(family, tmp_path), tmp_path)
    assert getattr(utils._use_triton, "whetstone_compact_cpu", False)  # build_trainer turned it on
    trainer.model.train()
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    labels = batch["labels"]
    assert labels.shape[0] == 3 and bool((labels == -100).any())
    trained = int((labels[:, 1:] != -100).sum())
    # several trained turns per row, separated by untrained prompt tokens
    assert any(int(((row[1:] != -100) & (row[:-1] == -100)).sum()) >= 2 for row in labels)
    with (
        torch.no_grad()
    ):  # random LoRA B, so the adapter changes the loss and every LoRA weight gets a gradient
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)

    compact_loss, compact_grads = _loss_and_grads(trainer, batch, fused=True)
    assert scored == [trained]  # only the trained positions went through the LM head
    monkeypatch.setattr(utils, "_use_triton", full_path)
    scored.clear()
    full_loss, full_grads = _loss_and_grads(trainer, batch, fused=True)
    assert scored == [labels.shape[0] * (labels.shape[1] - 1)]  # TRL's CPU default: every position
    ref_loss, ref_grads = _loss_and_grads(trainer, batch, fused=False)

    assert compact_loss == pytest.approx(ref_loss, rel=1e-5)
    assert full_loss == pytest.approx(ref_loss, rel=1e-5)
    assert compact_grads.keys() == ref_grads.keys() and len(ref_grads) > 0
    for name, ref in ref_grads.items():
        scale = float(ref.abs().max())
        assert scale > 0, name
        # the compact path is TRL's own tiled kernel over fewer rows: equal to its every-position path
        torch.testing.assert_close(compact_grads[name], full_grads[name], rtol=1e-5, atol=1e-5 * scale)
        # and to the full logits up to float32 rounding (the tiles sum the softmax in another order; a wrong
        # shift or mask would be off by the whole gradient)
        error = float((compact_grads[name] - ref).norm() / ref.norm())
        assert error < 1e-3, (name, error)
