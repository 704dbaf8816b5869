"""Real training on the CPU through the worker process: tiny Llama QLoRA (NF4) and LoRA, stop/resume, and the
embedded SmolLM2 through `whetstone train`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.runs import RunFolder, fold_resumed, run_summary
from core.training.config import TrainingConfig, with_overrides
from core.training.launch import prepare_run, start_worker
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def _tiny_config(model: Path, **over: object) -> TrainingConfig:
    base = {
        "model.name": str(model),
        "lora.r": 8,
        "lora.alpha": 16,
        "lora.dropout": 0.0,
        "train.learning_rate": 1e-2,
        "train.lr_scheduler": "constant",
        "train.warmup_ratio": 0.0,
        "train.max_steps": 6,
        "train.micro_batch_size": 2,
        "train.grad_accum": 1,
        "train.max_length": 128,
        "train.eval_steps": 3,
        "train.save_steps": 3,
    }
    base.update(over)
    return with_overrides(TrainingConfig(), base)


def _run_worker(run: RunFolder, resume: bool = False) -> list[dict]:
    proc = start_worker(run, resume=resume)
    out, _ = proc.communicate(timeout=600)
    events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert proc.returncode == 0, (events[-3:], (run.logs_dir / "worker.log").read_text()[-3000:])
    return events


@pytest.mark.parametrize("quant", ["4bit", "none"])
def test_tiny_llama_trains_saves_and_reloads(
    quant: str, tiny_llama_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    run = prepare_run(_tiny_config(tiny_llama_dir, **{"quant.mode": quant}), sample_data, tmp_path / "run")
    events = _run_worker(run)
    assert [e["type"] for e in events][-1] == "done"
    steps = [e for e in events if e["type"] == "step"]
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    assert all(k in steps[-1] for k in ("loss", "lr", "grad_norm", "tokens_per_s", "eta_s", "epoch"))
    assert all(e["tokens_per_s"] > 0 for e in steps)  # also at the end of an epoch
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]  # the held-out loss falls
    assert run.events_file.read_text().count("\n") == len(events)  # stdout and events.jsonl agree
    env = json.loads(run.env_file.read_text())
    assert env["versions"]["torch"] and env["gpu"] is None
    assert (run.adapter_dir / "adapter_model.safetensors").exists()
    assert (run.adapter_dir / "tokenizer_config.json").exists()
    summary = run_summary(run)
    assert summary["status"] == "finished" and summary["steps"] == 6 and summary["adapter"]
    _check_sample_answers(run, events)

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    tuned = PeftModel.from_pretrained(base, run.adapter_dir)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        a = tuned(ids).logits
        with tuned.disable_adapter():
            b = tuned(ids).logits
    assert not torch.allclose(a, b)


def _check_sample_answers(run: RunFolder, events: list[dict]) -> None:
    """After each evaluation the worker answers the same 3 validation prompts (greedy); the run reader returns
    them; the random-weight model never ends an answer, so two evaluations in a row raise the length flag."""
    sampled = run.samples()
    assert [e["step"] for e in sampled] == [e["step"] for e in events if e["type"] == "eval"] == [3, 6]
    validation = {r["id"]: r for r in run.dataset_records() if r["split"] == "validation"}
    for event in sampled:
        assert [s["id"] for s in event["samples"]] == [s["id"] for s in sampled[0]["samples"]]  # same prompts
        assert len(event["samples"]) == 3 and "Sample answers at step" in event["message"]
        for s in event["samples"]:
            row = validation[s["id"]]
            assert s["reference"] == row["messages"][-1]["content"]
            assert s["prompt"] == row["messages"][-2]["content"]
            assert 0 < s["tokens"] <= event["sample_stats"]["max_new_tokens"] and s["reference_tokens"] > 0
        assert event["sample_stats"]["hit_max"] == 3 and event["sample_stats"]["drift"] == "rambling"
    assert run.latest_samples() == sampled[-1]
    flags = [e for e in events if e.get("flag") == "length_drift"]
    assert len(flags) == 1 and flags[0]["step"] == 6 and "not ending its answers" in flags[0]["message"]
    summary = run.read_summary()
    assert summary["flags"] == ["length_drift"] and summary["sample_lengths"]["step"] == 6
    assert run_summary(run)["flags"] == ["length_drift"]


def test_stop_then_resume_continues_the_run(tiny_llama_dir: Path, sample_data: Path, tmp_path: Path) -> None:
    cfg = _tiny_config(
        tiny_llama_dir, **{"quant.mode": "none", "train.save_steps": 100, "train.eval_steps": 100}
    )
    # reference: the same run without interruption
    ref = prepare_run(cfg, sample_data, tmp_path / "ref")
    ref_losses = [e["loss"] for e in _run_worker(ref) if e["type"] == "step"]

    run = prepare_run(cfg, sample_data, tmp_path / "run")
    proc = start_worker(run)
    assert proc.stdout is not None
    seen = []
    for raw in proc.stdout:
        event = json.loads(raw)
        seen.append(event)
        if event["type"] == "step" and event["step"] == 2:
            run.request_stop()
    proc.wait(timeout=120)
    assert proc.returncode == 0
    done = seen[-1]
    assert done["type"] == "done" and done["status"] == "stopped"
    stopped_at = done["step"]
    assert 2 <= stopped_at < 6
    assert run.last_checkpoint() is not None and run.last_checkpoint().name == f"checkpoint-{stopped_at}"
    assert not run.control_file.exists() and not run.is_running()
    assert run_summary(run)["status"] == "stopped"

    resumed = _run_worker(run, resume=True)
    assert any(e.get("resumed_from") == stopped_at for e in resumed)
    assert [e["step"] for e in resumed if e["type"] == "step"] == list(range(stopped_at + 1, 7))
    curve = [e for e in run.curve() if e["type"] == "step"]
    assert [e["step"] for e in curve] == [1, 2, 3, 4, 5, 6]
    assert [e["loss"] for e in curve] == pytest.approx(ref_losses, rel=1e-3)
    assert run_summary(run)["status"] == "finished"


def test_fold_resumed_drops_rerun_steps() -> None:
    events = [{"type": "step", "step": s, "loss": 1.0} for s in (1, 2, 3, 4)]
    events.append({"type": "log", "step": 2, "resumed_from": 2})
    events += [{"type": "step", "step": s, "loss": 0.5} for s in (3, 4)]
    folded = [e for e in fold_resumed(events) if e["type"] == "step"]
    assert [(e["step"], e["loss"]) for e in folded] == [(1, 1.0), (2, 1.0), (3, 0.5), (4, 0.5)]


def test_bad_model_is_one_error_line(sample_data: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "train", "--data", str(sample_data), "--run-dir", str(tmp_path / "r"), "--model", "no-such-model"
    )
    assert proc.returncode == 2
    assert "Unknown model 'no-such-model'" in proc.stderr
    events = RunFolder.open(tmp_path / "r").read_events()[0]
    assert events[-1]["type"] == "error" and "Unknown model" in events[-1]["message"]
    assert "Traceback" in (tmp_path / "r" / "logs" / "worker.log").read_text()


def test_bad_config_is_rejected_before_training(sample_data: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epochs: 0\n  max_steps: 0\n")
    proc = run_cli(
        "train", "--data", str(sample_data), "--run-dir", str(tmp_path / "r"), "--config", str(cfg)
    )
    assert proc.returncode == 2 and "either Epochs" in proc.stderr


def _answers(model, tokenizer, prompts: list[list[dict]]) -> list[str]:  # type: ignore[no-untyped-def]
    import torch

    out = []
    for messages in prompts:
        ids = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.no_grad():
            gen = model.generate(**ids, max_new_tokens=20, do_sample=False)
        out.append(tokenizer.decode(gen[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))
    return out


def test_smollm2_through_the_cli_learns_the_data(
    smollm2_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli(
        "train",
        "--data",
        str(sample_data),
        "--run-dir",
        str(run_dir),
        "--model",
        "smollm2-135m-instruct",
        "--preset",
        "Quick test (CPU)",
        "--max-steps",
        "20",
        "--micro-batch",
        "1",
        "--max-length",
        "256",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["steps"] == 20 and doc["status"] == "finished"
    assert doc["final_loss"] < 1.0 and doc["final_eval_loss"] < 1.0
    assert "step 20/20" in proc.stderr  # progress streamed to stderr
    run = RunFolder.open(doc["run_dir"])
    assert run.base_model() == "smollm2-135m-instruct"
    losses = [e["loss"] for e in run.curve() if e["type"] == "step"]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:3]) / 3

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run.adapter_dir)
    test = [r for r in run.dataset_records() if r["split"] == "test"][:3]
    prompts = [r["messages"][:-1] for r in test]
    base = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    tuned = PeftModel.from_pretrained(base, run.adapter_dir)
    with tuned.disable_adapter():
        before = _answers(tuned, tokenizer, prompts)
    after = _answers(tuned, tokenizer, prompts)

    def json_like(text: str) -> bool:
        return text.strip().startswith('{"category"')

    assert sum(json_like(a) for a in after) >= 2, after
    assert sum(json_like(a) for a in after) > sum(json_like(b) for b in before), (before, after)


def test_worker_process_is_gone_after_cancel(tiny_llama_dir: Path, sample_data: Path, tmp_path: Path) -> None:
    from core.training.launch import kill_worker

    run = prepare_run(_tiny_config(tiny_llama_dir, **{"train.max_steps": 500}), sample_data, tmp_path / "run")
    proc = start_worker(run)
    assert proc.stdout is not None
    for raw in proc.stdout:
        if json.loads(raw)["type"] == "step":
            break
    kill_worker(run, proc)
    assert proc.poll() is not None
    assert run_summary(run)["status"] == "cancelled"
    assert not run.is_running()


def test_cpu_machine_starts_from_the_cpu_preset(sample_data, tmp_path) -> None:
    """The plain defaults are sized for a 24 GB GPU (2048-token packed batches) and need >20 GB of RAM on a
    CPU; without a GPU, `whetstone train` starts from the CPU preset and says so."""
    from core.training.config import Hardware

    if Hardware.detect().cuda:
        pytest.skip("this machine has a CUDA GPU; the GPU defaults apply")
    proc = run_cli(
        "train",
        "--data",
        str(sample_data),
        "--run-dir",
        str(tmp_path / "r"),
        "--max-steps",
        "0",
        "--epochs",
        "0",
    )
    assert "starting from the 'Quick test (CPU)' preset" in proc.stderr
    assert proc.returncode == 2  # the flags still win over the preset: 0 steps and 0 epochs is refused
    assert "either Epochs" in proc.stderr or "Epochs" in proc.stderr


def test_stop_skips_the_validation_that_was_due_and_resumes(
    tiny_llama_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    """Validation + sample answers are due at every step; Stop saves the checkpoint without running them."""
    cfg = _tiny_config(
        tiny_llama_dir, **{"quant.mode": "none", "train.save_steps": 100, "train.eval_steps": 1}
    )
    run = prepare_run(cfg, sample_data, tmp_path / "run")
    proc = start_worker(run)
    assert proc.stdout is not None
    seen = []
    for raw in proc.stdout:
        event = json.loads(raw)
        seen.append(event)
        if event["type"] == "step" and event["step"] == 2:
            run.request_stop()
    proc.wait(timeout=120)
    assert proc.returncode == 0
    done = seen[-1]
    assert done["type"] == "done" and done["status"] == "stopped"
    stopped_at = done["step"]
    assert 2 <= stopped_at <= 3
    assert run.last_checkpoint() is not None and run.last_checkpoint().name == f"checkpoint-{stopped_at}"
    # nothing was validated or sampled after the Stop: not at the stop step, not later
    assert not [e for e in seen if e["type"] == "eval" and e["step"] > 2]
    assert not [e for e in run.samples() if e["step"] >= stopped_at]
    assert any(e["type"] == "checkpoint" and e["step"] == stopped_at for e in seen)

    resumed = _run_worker(run, resume=True)
    assert [e["step"] for e in resumed if e["type"] == "step"] == list(range(stopped_at + 1, 7))
    assert run_summary(run)["status"] == "finished"


def test_stop_during_validation_or_sampling_ends_it(tmp_path: Path) -> None:
    """The callback ends a validation pass at the next batch, and sample answers within a token, on Stop."""
    from types import SimpleNamespace

    from core.errors import Cancelled
    from core.training.trainer import StopDuringEvaluation, make_callback

    run = RunFolder.open(tmp_path / "run", must_exist=False).ensure()
    events: list[dict] = []
    calls: list[bool] = []

    class Sampler:
        active = True

        def sample(self, model: object, dtype: object, should_stop=None):  # noqa: ANN001
            calls.append(should_stop())
            raise Cancelled("stopped")

    callback = make_callback(run, events.append, TrainingConfig(), [0], Sampler())
    state = SimpleNamespace(global_step=4, epoch=0.5, max_steps=10)
    args = SimpleNamespace(bf16=False, fp16=False)
    control = SimpleNamespace(should_save=False, should_training_stop=False, should_evaluate=True)
    callback.on_prediction_step(args, state, control)  # no stop asked: nothing happens
    assert not control.should_training_stop
    run.request_stop()
    with pytest.raises(StopDuringEvaluation):
        callback.on_prediction_step(args, state, control)
    assert control.should_save and control.should_training_stop and callback.state.stopped
    callback.on_evaluate(args, state, control, model=object())
    assert calls == []  # no sampling starts once Stop is asked
    run.control_file.unlink()
    callback.on_evaluate(args, state, control, model=object())
    assert calls == [False] and not [e for e in events if "samples" in e]
    assert sum("Stop requested" in e.get("message", "") for e in events) == 1
