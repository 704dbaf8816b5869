"""The family matrix: every family a user is likely to bring (tests/families.py: tiny random-weight models
with each family's template behaviour) through data stats with the template probe, the label mask of a
multi-turn row with a system prompt, 3-step LoRA and 4-bit QLoRA training through `whetstone train`, and
evaluation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.errors import UserError
from core.training.dataset import (
    build_datasets,
    fold_note,
    prepare_messages,
    render_kwargs,
    render_prompt,
    strip_reasoning,
    system_mode,
    tokenize_conversation,
)
from tests.conftest import run_cli
from tests.families import FAMILIES, build_family_model, build_family_tokenizer

NAMES = list(FAMILIES)
SYSTEM = "You triage tickets. Answer with JSON only."
REPLY1 = '{"category": "billing"}'
REPLY2 = '{"category": "technical"}'
CONVO = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Ticket: my invoice is wrong"},
    {"role": "assistant", "content": REPLY1},
    {"role": "user", "content": "And the app crashes"},
    {"role": "assistant", "content": REPLY2},
]
# Templates that cannot keep a system prompt where the row puts it: Gemma 2 raises, Mistral moves it.
FOLDS = {"gemma2": "rejects", "mistral-v0.3": "moves", "mistral-tekken": "moves"}


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("family-tokenizers")
    return {name: build_family_tokenizer(name, root / name) for name in NAMES}


@pytest.fixture(scope="module")
def family_dirs() -> dict[str, Path]:
    return {}  # filled lazily by _model_dir: one model per family for the module


def _model_dir(family_dirs: dict[str, Path], family: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if family not in family_dirs:
        family_dirs[family] = build_family_model(family, tmp_path_factory.mktemp(f"model-{family}"))
    return family_dirs[family]


def _trained_runs(tokenizer: Any, ids: list[int], mask: list[int]) -> list[str]:
    runs: list[list[int]] = []
    prev = 0
    for tid, m in zip(ids, mask, strict=True):
        if m and not prev:
            runs.append([])
        if m:
            runs[-1].append(tid)
        prev = m
    return [tokenizer.decode(r) for r in runs]


@pytest.mark.parametrize("family", NAMES)
def test_label_mask_multi_turn_with_system(family: str, tokenizers: dict[str, Any]) -> None:
    """Every assistant turn is trained, exactly its reply plus the end-of-turn token the template emits; the
    ids are the model's own rendering (system prompt folded only where the template cannot keep it)."""
    fam = FAMILIES[family]
    tok = tokenizers[family]
    assert system_mode(tok) == FOLDS.get(family, "keeps")
    out = tokenize_conversation(tok, CONVO)
    runs = _trained_runs(tok, out.input_ids, out.assistant_mask)
    assert [r.strip() for r in runs] == [REPLY1 + fam.end_of_turn, REPLY2 + fam.end_of_turn], runs
    msgs, folded = prepare_messages(tok, CONVO)
    assert folded == (family in FOLDS)
    text = tok.apply_chat_template(msgs, tokenize=False, **render_kwargs(tok, msgs))
    assert out.input_ids == tok(text, add_special_tokens=False)["input_ids"]
    assert text.count(SYSTEM) == 1  # the system prompt is trained on as context, never dropped
    assert "<think>" not in "".join(runs)  # no empty think block learned (Qwen3, SmolLM3)
    if folded:
        assert fold_note(tok) and FOLDS[family] in str(fold_note(tok))
    # the prompt evaluation generates from is what training put before the last reply
    prompt = render_prompt(tok, CONVO[:-1])
    assert text.startswith(prompt)


@pytest.mark.parametrize("family", ["qwen3", "qwen3-moe"])
def test_rows_with_reasoning_keep_it(family: str, tokenizers: dict[str, Any]) -> None:
    tok = tokenizers[family]
    convo = [*CONVO[:4], {"role": "assistant", "content": "<think>\nThe app crashes.\n</think>\n\n" + REPLY2}]
    assert render_kwargs(tok, convo) == {}
    out = tokenize_conversation(tok, convo)
    runs = _trained_runs(tok, out.input_ids, out.assistant_mask)
    assert runs[0] == REPLY1 + "<|im_end|>"
    assert runs[-1] == "<think>\nThe app crashes.\n</think>\n\n" + REPLY2 + "<|im_end|>"
    assert strip_reasoning("<think>\nThe app crashes.\n</think>\n\n" + REPLY2) == REPLY2
    assert strip_reasoning("plan\n</think>\n\n" + REPLY2) == REPLY2
    assert strip_reasoning(REPLY2) == REPLY2


def test_rows_that_train_nothing_are_refused_by_name(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["qwen2.5"]
    long = [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": REPLY1}]
    rows = [
        {"id": "fine", "messages": CONVO, "split": "train"},
        {"id": "too-long", "messages": long, "split": "train"},
    ]
    with pytest.raises(UserError) as err:
        build_datasets(tok, rows, 64, True)
    message = str(err.value)
    assert "\n" not in message
    assert "1 of 2 rows would train nothing" in message and "too-long (cut by max length" in message


def _data_file(tmp_path: Path, long_row: bool = False) -> Path:
    rows = []
    for i in range(8):
        convo = CONVO if i % 2 == 0 else CONVO[1:3]
        split = "test" if i < 2 else "validation" if i == 2 else "train"
        rows.append({"id": f"r{i}", "messages": convo, "split": split})
    if long_row:
        long = [
            CONVO[0],
            {"role": "user", "content": "word " * 200},
            {"role": "assistant", "content": REPLY1},
        ]
        rows.append({"id": "long", "messages": long, "split": "train"})
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    return path


@pytest.mark.parametrize("family", NAMES)
def test_data_stats_probe(family: str, tokenizers: dict[str, Any], tmp_path: Path) -> None:
    tok_dir = tmp_path / "model"
    tokenizers[family].save_pretrained(tok_dir)
    data = _data_file(tmp_path, long_row=True)
    proc = run_cli("data", "stats", str(data), "--model", str(tok_dir), "--max-length", "96", "--json")
    assert proc.returncode == 0, proc.stderr
    probe = json.loads(proc.stdout)["template"]
    assert [z["id"] for z in probe["zero_trained"]] == ["long"]
    assert probe["zero_trained"][0]["reason"].startswith("cut by max length")
    assert probe["trained_tokens"] > 0
    if family in FOLDS:
        assert probe["folded_system_prompts"] == 5 and FOLDS[family] in probe["note"]
    else:
        assert probe["folded_system_prompts"] == 0 and probe["note"] is None


def _train(model: Path, data: Path, run_dir: Path, quant: str) -> dict[str, Any]:
    proc = run_cli(
        "train", "--data", str(data), "--run-dir", str(run_dir), "--model", str(model), "--max-steps", "3",
        "--quant", quant, "--lora-r", "4", "--max-length", "128", "--json", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "finished" and summary["steps"] == 3
    assert summary["final_loss"] is not None and summary["final_loss"] == summary["final_loss"]  # not NaN
    return summary


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("family", NAMES)
def test_lora_train_then_eval(
    family: str, family_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    model = _model_dir(family_dirs, family, tmp_path_factory)
    data = _data_file(tmp_path)
    run_dir = tmp_path / "run"
    _train(model, data, run_dir, "none")
    logs = [e.get("message") or "" for e in _events(run_dir) if e.get("type") == "log"]
    folded = [m for m in logs if "folded into its first user turn" in m]
    assert len(folded) == (1 if family in FOLDS else 0), logs
    proc = run_cli("eval", str(run_dir), "--limit", "2", "--max-new-tokens", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["n"] == 2
    assert set(result["base"]) >= {"exact_match", "token_f1"} and set(result["tuned"]) >= {"exact_match"}


@pytest.mark.slow
@pytest.mark.parametrize("family", NAMES)
def test_qlora_4bit_trains_on_cpu(
    family: str, family_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """4-bit QLoRA on the CPU, including layers with a bias (Qwen2.5's q/k/v projections)."""
    model = _model_dir(family_dirs, family, tmp_path_factory)
    _train(model, _data_file(tmp_path), tmp_path / "run", "4bit")
    assert re.search(r"adapter_model", " ".join(p.name for p in (tmp_path / "run" / "adapter").iterdir()))


def test_gemma3_uses_the_real_tokenizer(tokenizers: dict[str, Any]) -> None:
    """The embedded Gemma 3 270M package (a base model whose GGUF has no chat template) gives the matrix the
    real Gemma 3 tokenizer; `make` installs it."""
    tok = tokenizers["gemma3"]
    assert len(tok) == 262144
    assert tok.convert_tokens_to_ids("<end_of_turn>") == 106
