"""The run's dataset snapshot and the label mask: the model's own chat template, loss on assistant turns only."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from core.training.dataset import build_datasets, tokenize_conversation, write_snapshot

CONVO = [
    {"role": "system", "content": "Answer with JSON only."},
    {"role": "user", "content": "Ticket: my invoice is wrong"},
    {"role": "assistant", "content": '{"category": "billing"}'},
    {"role": "user", "content": "And the app crashes"},
    {"role": "assistant", "content": '{"category": "technical"}'},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_text_is_the_models_own_chat_template(tokenizer) -> None:  # type: ignore[no-untyped-def]
    tok = tokenize_conversation(tokenizer, CONVO)
    expected = tokenizer.apply_chat_template(CONVO, tokenize=True, return_dict=False)
    if isinstance(expected, dict):
        expected = expected["input_ids"]
    assert tok.input_ids == list(expected)


def test_label_mask_is_exactly_the_assistant_turns(tokenizer) -> None:  # type: ignore[no-untyped-def]
    tok = tokenize_conversation(tokenizer, CONVO)
    trained = [i for i, m in zip(tok.input_ids, tok.assistant_mask, strict=True) if m]
    eot = "<|im_end|>"
    assert tokenizer.decode(trained) == '{"category": "billing"}' + eot + '{"category": "technical"}' + eot
    # every trained run of tokens starts right after the generation prompt "<|im_start|>assistant\n"
    runs, prev = [], 0
    for i, m in enumerate(tok.assistant_mask):
        if m and not prev:
            runs.append(i)
        prev = m
    assert len(runs) == 2
    for start in runs:
        assert tokenizer.decode(tok.input_ids[:start]).endswith("<|im_start|>assistant\n")
    off = tokenize_conversation(tokenizer, CONVO, assistant_only=False)
    assert all(off.assistant_mask)


def test_trl_builds_labels_from_our_mask(tokenizer) -> None:  # type: ignore[no-untyped-def]
    rows = [{"messages": CONVO, "split": "train"}, {"messages": CONVO[:3], "split": "validation"}]
    train, val, stats = build_datasets(tokenizer, rows, 512, True)
    assert stats["train"] == 1 and stats["validation"] == 1 and val is not None
    assert set(train.column_names) == {"input_ids", "assistant_masks"}


def test_snapshot_assigns_splits_and_pins_sha(tmp_path: Path, sample_data: Path) -> None:
    out = tmp_path / "dataset.jsonl"
    sha = write_snapshot(sample_data, out, val_ratio=0.1, test_ratio=0.1, seed=0)
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 120 and {r["split"] for r in rows} == {"train", "validation", "test"}
    assert all(set(r) == {"id", "messages", "split"} for r in rows)
    assert len({r["id"] for r in rows}) == 120
    assert (tmp_path / "dataset.sha256").read_text().split()[0] == sha
    # the same file and seed give the same snapshot
    again = tmp_path / "again" / "dataset.jsonl"
    assert write_snapshot(sample_data, again, seed=0) == sha


def test_snapshot_keeps_existing_splits(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    lines = []
    for i in range(10):
        split = "test" if i < 3 else "train"
        lines.append(orjson.dumps({"messages": CONVO[1:3], "split": split, "id": f"r{i}"}))
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "run" / "dataset.jsonl"
    write_snapshot(src, out)
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["split"] for r in rows] == ["test"] * 3 + ["train"] * 7
    assert rows[0]["id"] == "r0"


def test_packed_padding_free_batch_equals_separate_examples(tiny_llama_dir: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """Packing + padding-free is only on by default because each example attends to itself alone: the logits
    of a packed row equal those of the examples run one by one (transformers builds the block mask from
    position_ids for sdpa)."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, attn_implementation="sdpa").eval()
    a = tokenize_conversation(tokenizer, CONVO[:3]).input_ids
    b = tokenize_conversation(tokenizer, CONVO).input_ids
    collator = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)
    batch = collator([{"input_ids": a}, {"input_ids": b}])
    with torch.no_grad():
        # SFTTrainer.compute_loss passes use_cache=False; transformers only builds the packed mask without a cache
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits[0]
        sep_a = model(input_ids=torch.tensor([a])).logits[0]
        sep_b = model(input_ids=torch.tensor([b])).logits[0]
    assert torch.allclose(packed[: len(a)], sep_a, atol=1e-4)
    assert torch.allclose(packed[len(a) :], sep_b, atol=1e-4)


def test_snapshot_from_a_workspace(tmp_path: Path, sample_data: Path) -> None:
    from core.data.workspace import DatasetWorkspace

    ws = DatasetWorkspace.create_from_file(sample_data, tmp_path / "w.wsdb")
    ids = [e.id for e in ws.examples()]
    ws.close()
    out = tmp_path / "run" / "dataset.jsonl"
    sha = write_snapshot(tmp_path / "w.wsdb", out, seed=0)
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["id"] for r in rows] == ids  # the workspace's own ids, in its order
    assert {r["split"] for r in rows} == {"train", "validation", "test"}
    assert (tmp_path / "run" / "dataset.sha256").read_text().split()[0] == sha
