"""Sample answers on validation prompts: the answer-length drift check (long, short, not stopping), the choice
of prompts, the callback's red flag (two drifting evaluations in a row) and the run reader. No model needed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.runs import RunFolder, fold_resumed
from core.training.config import TrainingConfig
from core.training.samples import answer_limit, length_drift, pick_prompts
from core.training.trainer import make_callback


@pytest.mark.parametrize(
    ("generated", "references", "hit", "limit", "drift"),
    [
        ([40, 42, 38], [40, 40, 40], [False] * 3, 60, None),  # about right
        ([90, 100, 95], [40, 40, 40], [False] * 3, 200, "long"),  # ~2.4x
        ([10, 150, 100], [10, 10, 100], [False, True, False], 150, "long"),  # one cut off, mean 2.2x
        ([8, 10, 6], [40, 40, 40], [False] * 3, 60, "short"),  # ~0.2x
        ([60, 60, 30], [40, 40, 40], [True, True, False], 60, "rambling"),  # 2 of 3 never ended
        ([60, 30, 30], [40, 40, 40], [True, False, False], 60, None),  # one of three is no trend
        ([6, 7, 5], [2, 2, 3], [False] * 3, 16, None),  # a few tokens around a one-word label is fine
        ([16, 16, 16], [2, 2, 3], [True] * 3, 16, "rambling"),  # ... but not stopping is not
        ([64, 64, 64], [300, 300, 300], [True] * 3, 64, None),  # the cap is below the references: no verdict
    ],
)
def test_length_drift(generated, references, hit, limit, drift) -> None:  # type: ignore[no-untyped-def]
    check = length_drift(generated, references, hit, limit)
    assert check.drift == drift
    assert check.mean_tokens == pytest.approx(sum(generated) / 3)
    assert check.reference_mean_tokens == pytest.approx(sum(references) / 3)
    if drift == "rambling":
        assert "not ending its answers" in check.message and f"cut off at {limit} tokens" in check.message
    elif drift == "long":
        assert "too long" in check.message and "Samples tab" in check.message
    elif drift == "short":
        assert "too short" in check.message
    else:
        assert check.message == ""


def test_answer_limit_follows_the_references_within_the_cap() -> None:
    assert answer_limit([10, 40, 20], cap=256) == 60
    assert answer_limit([1000], cap=256) == 256
    assert answer_limit([2, 3], cap=256) == 16  # room for a short answer to go wrong
    assert answer_limit([2], cap=8) == 8


class _WordTokenizer:
    """Whitespace 'tokens' and a plain chat template: enough for choosing prompts."""

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool
    ) -> str:
        text = "".join(f"<{m['role']}> {m['content']}\n" for m in messages)
        return text + ("<assistant> " if add_generation_prompt else "")

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [0] * len(text.split())}


def _rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"question {i} " + "word " * (200 if i == 3 else 2)},
            {"role": "assistant", "content": f"answer {i}"},
        ]
        rows.append({"id": f"r{i}", "messages": messages, "split": "validation" if i % 2 else "train"})
    rows.append({"id": "no-answer", "messages": [{"role": "user", "content": "hi"}], "split": "validation"})
    return rows


def test_prompts_are_fixed_validation_prompts_that_fit() -> None:
    tok = _WordTokenizer()
    rows = _rows(20)
    picked = pick_prompts(tok, rows, 3, max_length=64)
    assert [p.id for p in picked] == [p.id for p in pick_prompts(tok, list(reversed(rows)), 3, 64)]
    assert len(picked) == 3 and len({p.id for p in picked}) == 3
    by_id = {r["id"]: r for r in rows}
    for p in picked:
        row = by_id[p.id]
        assert row["split"] == "validation" and p.id != "r3"  # r3's prompt is longer than max_length
        assert p.messages == row["messages"][:-1] and p.reference == row["messages"][-1]["content"]
        assert p.question == row["messages"][1]["content"] and p.text.endswith("<assistant> ")
        assert p.reference_tokens == 2
    assert len(pick_prompts(tok, rows, 50, 64)) == 10  # every validation row with an answer, r3 last
    assert pick_prompts(tok, rows, 50, 64)[-1].id == "r3"
    assert pick_prompts(tok, rows, 0, 64) == []


class _FakeSampler:
    """Stands in for ValidationSampler: one (drift, message) per evaluation."""

    def __init__(self, drifts: list[str | None], fail_at: int | None = None) -> None:
        self.drifts = drifts
        self.fail_at = fail_at
        self.active = True
        self.calls = 0

    def sample(self, model: Any, autocast_dtype: Any = None, should_stop: Any = None):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("CUDA out of memory")
        drift = self.drifts[self.calls - 1]
        samples = [
            {
                "id": "a",
                "prompt": "Q",
                "context_turns": 0,
                "reference": "R",
                "answer": "A",
                "tokens": 5,
                "reference_tokens": 4,
                "hit_max": False,
            }
        ]
        stats = {"max_new_tokens": 16, "mean_tokens": 5.0, "reference_mean_tokens": 4.0, "hit_max": 0}
        stats["drift"] = drift
        return samples, stats, SimpleNamespace(drift=drift, message=f"drifting {drift}" if drift else "")


def _evaluate(cb: Any, steps: list[int]) -> None:
    args = SimpleNamespace(learning_rate=2e-4, output_dir="x", bf16=False, fp16=False)
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    for step in steps:
        state = SimpleNamespace(global_step=step, epoch=step / 10, max_steps=10)
        cb.on_evaluate(args, state, control, model=object(), metrics={"eval_loss": 1.0})


def test_callback_flags_length_drift_at_two_evaluations_in_a_row(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run").ensure()
    events: list[dict] = []
    sampler = _FakeSampler(["long", None, "rambling", "short", "long"])
    cb = make_callback(run, events.append, TrainingConfig(), [0], sampler)
    _evaluate(cb, [2, 4, 6, 8, 10])
    sampled = [e for e in events if "samples" in e]
    assert [e["step"] for e in sampled] == [2, 4, 6, 8, 10]
    assert all(e["type"] == "log" and "Sample answers at step" in e["message"] for e in sampled)
    flags = [e for e in events if e.get("flag")]
    assert [(e["step"], e["flag"], e["message"]) for e in flags] == [(8, "length_drift", "drifting short")]
    assert cb.state.flags == ["length_drift"] and cb.state.last_sample_stats["step"] == 10


def test_a_failed_sample_turns_sampling_off_and_training_goes_on(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run").ensure()
    events: list[dict] = []
    sampler = _FakeSampler([None, None, None], fail_at=2)
    cb = make_callback(run, events.append, TrainingConfig(), [0], sampler)
    _evaluate(cb, [2, 4, 6])
    assert sampler.calls == 2 and not sampler.active
    assert "Sample answers failed at step 4 (RuntimeError: CUDA out of memory)" in events[-1]["message"]
    assert "flag" not in events[-1]


def test_run_reader_returns_the_samples_of_each_evaluation(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run").ensure()
    run.config_file.write_text("model: {name: x}\n")

    def sample(step: int, answer: str) -> dict:
        return {
            "type": "log",
            "step": step,
            "message": "m",
            "samples": [{"answer": answer}],
            "sample_stats": {},
        }

    for event in (
        {"type": "eval", "step": 2, "eval_loss": 1.0},
        sample(2, "a"),
        sample(4, "b"),  # a crash after step 4; the run resumes from the checkpoint at step 2
        {"type": "log", "step": 2, "resumed_from": 2, "message": "Resuming from step 2"},
        sample(4, "c"),
        {"type": "log", "step": 4, "message": "plain message"},
    ):
        run.append_event(event)
    assert [(e["step"], e["samples"][0]["answer"]) for e in run.samples()] == [(2, "a"), (4, "c")]
    assert run.latest_samples()["samples"][0]["answer"] == "c"
    assert len([e for e in fold_resumed(run.read_events()[0]) if "samples" in e]) == 2
    assert RunFolder(tmp_path / "empty").latest_samples() is None
