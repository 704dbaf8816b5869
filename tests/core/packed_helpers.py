"""Shared by test_packed_attention.py (CPU, CI) and test_training_gpu.py (CUDA, marked gpu): a tiny Llama with
grouped-query attention and LoRA on every linear layer, documents packed the way TRL's padding-free collator
packs them, and the reference: each document run on its own."""

from __future__ import annotations

from typing import Any

DOC_LENGTHS = [(37, 120, 5, 300), (64, 200, 1, 90, 33)]  # two packed rows (BFD bins), several documents each


def tiny_lora_model(attn: str, dtype: Any, device: str, seed: int = 0, dropout: float = 0.0) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        max_position_embeddings=1024,
    )
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=attn).to(device)
    lora = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=dropout, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, lora)
    for name, p in model.named_parameters():  # LoRA B starts at 0: give it values so its A gradients are real
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model


def documents(seed: int = 1) -> list[list[list[int]]]:
    import random

    rng = random.Random(seed)
    return [[[rng.randrange(3, 512) for _ in range(n)] for n in row] for row in DOC_LENGTHS]


def packed_batch(rows: list[list[list[int]]], device: str) -> dict[str, Any]:
    """What TRL's padding-free collator gives the model for BFD-packed rows (one flattened row with
    position_ids, cu_seq_lens_q/k, max_length_q/k)."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    examples = [
        {"input_ids": [t for doc in row for t in doc], "seq_lengths": [len(d) for d in row]} for row in rows
    ]
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(examples)
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def lora_grads(model: Any) -> dict[str, Any]:
    return {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}


def packed_loss_and_grads(model: Any, batch: dict[str, Any], **extra: Any) -> tuple[float, dict[str, Any]]:
    model.zero_grad(set_to_none=True)
    out = model(**batch, **extra)
    out.loss.backward()
    return out.loss.item(), lora_grads(model)


def reference_loss_and_grads(
    model: Any, rows: list[list[list[int]]], device: str
) -> tuple[float, dict[str, Any]]:
    """Each document alone (no packing, no mask); the loss is the mean over all predicted tokens, as in the
    packed batch (a document's first token is predicted from nothing in both)."""
    import torch

    model.zero_grad(set_to_none=True)
    docs = [d for row in rows for d in row if len(d) > 1]
    total = sum(len(d) - 1 for d in docs)
    loss_sum = 0.0
    for doc in docs:
        ids = torch.tensor([doc], device=device)
        loss = model(input_ids=ids, labels=ids).loss * (len(doc) - 1) / total
        loss.backward()
        loss_sum += loss.item()
    return loss_sum, lora_grads(model)


def rel_err(a: Any, b: Any) -> float:
    import torch

    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp_min(1e-12))


def worst_grad_err(grads: dict[str, Any], ref: dict[str, Any]) -> tuple[float, str]:
    errs = {n: rel_err(grads[n], ref[n]) for n in ref}
    name = max(errs, key=lambda n: errs[n])
    return errs[name], name
