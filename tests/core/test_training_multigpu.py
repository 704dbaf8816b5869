"""Several GPUs through accelerate's launcher: the launch path proven on the CPU with 2 processes (gloo).

`WHETSTONE_DDP_ON_CPU=1` lets `train.gpus = 2` start two CPU processes, exactly as two GPUs would be started
(accelerate launch --multi_gpu, one worker per rank). The adapter trained by 2 processes x micro-batch 1 must
equal the one trained by 1 process x micro-batch 2: same global batch, same seed, same examples per step."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from core.runs import RunFolder
from core.training.config import TrainingConfig, with_overrides
from core.training.launch import CPU_PROCESSES_ENV, prepare_run, worker_command
from tests.conftest import run_cli


def _config(model: Path, **over: object) -> TrainingConfig:
    base = {
        "model.name": str(model),
        "quant.mode": "none",
        "lora.r": 8,
        "lora.alpha": 16,
        "lora.dropout": 0.0,
        "train.learning_rate": 1e-2,
        "train.lr_scheduler": "constant",
        "train.warmup_ratio": 0.0,
        "train.max_steps": 3,
        "train.grad_accum": 1,
        "train.max_length": 128,
        "train.packing": False,
        "train.eval_steps": 100,
        "train.save_steps": 3,
        "train.sample_prompts": 0,
    }
    base.update(over)
    return with_overrides(TrainingConfig(), base)


def test_worker_command_launches_one_process_per_gpu(tmp_path: Path, sample_data: Path) -> None:
    model = tmp_path / "m"
    one = prepare_run(_config(model), sample_data, tmp_path / "one")
    assert worker_command(one) == [sys.executable, "-m", "core.training.worker", str(one.path)]
    two = prepare_run(_config(model, **{"train.gpus": 2}), sample_data, tmp_path / "two")
    cmd = worker_command(two, resume=True)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "2"
    assert cmd[-3:] == ["core.training.worker", str(two.path), "--resume"]


def test_more_gpus_than_the_machine_has_is_one_line(tmp_path: Path, sample_data: Path) -> None:
    proc = run_cli(
        "train", "--data", str(sample_data), "--run-dir", str(tmp_path / "run"), "--gpus", "2",
        "--preset", "Quick test (CPU)", env={CPU_PROCESSES_ENV: "0", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "2 GPUs" in proc.stderr and "no NVIDIA GPU" in proc.stderr
    assert not (tmp_path / "run").exists()  # nothing created for a run that cannot start


def _train(model: Path, data: Path, run_dir: Path, gpus: int, micro_batch: int) -> RunFolder:
    cfg = _config(model, **{"train.gpus": gpus, "train.micro_batch_size": micro_batch})
    cfg_file = run_dir.parent / f"{run_dir.name}.yaml"
    from core.training.config import save_config

    save_config(cfg, cfg_file)
    proc = run_cli(
        "train", "--config", str(cfg_file), "--data", str(data), "--run-dir", str(run_dir), "--json", "--quiet",
        env={CPU_PROCESSES_ENV: "1", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    run = RunFolder.open(run_dir)
    assert proc.returncode == 0, (proc.stderr[-2000:], (run.logs_dir / "worker.log").read_text()[-4000:])
    assert json.loads(proc.stdout)["steps"] == 3
    return run


@pytest.mark.slow
def test_two_processes_train_the_same_adapter_as_one(
    tiny_llama_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    single = _train(tiny_llama_dir, sample_data, tmp_path / "single", gpus=1, micro_batch=2)
    double = _train(tiny_llama_dir, sample_data, tmp_path / "double", gpus=2, micro_batch=1)

    a = load_file(single.adapter_dir / "adapter_model.safetensors")
    b = load_file(double.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    trained = [k for k in a if "lora_B" in k]
    assert any(a[k].abs().max() > 0 for k in trained)  # the adapter really moved from its zero init
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-3, atol=1e-5), (key, (a[key] - b[key]).abs().max())

    # One event stream (rank 0), the global loss, and the speed of both processes together.
    events, _ = double.read_events()
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3]
    assert all(e["gpus"] == 2 and e["tokens_per_s"] > 0 for e in steps)
    assert steps[-1]["tokens_per_s_per_gpu"] == pytest.approx(steps[-1]["tokens_per_s"] / 2, rel=0.01)
    single_steps = [e for e in single.read_events()[0] if e["type"] == "step"]
    for x, y in zip(single_steps, steps, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-3)
    assert [e["type"] for e in events].count("done") == 1
    assert json.loads(double.env_file.read_text())["processes"] == 2
    assert (double.checkpoints_dir / "checkpoint-3").is_dir()


@pytest.mark.slow
def test_a_crash_of_any_rank_ends_the_run_with_its_reason(
    tiny_llama_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    """Rank 1 fails in its first training step (a sitecustomize on its PYTHONPATH patches the Trainer in that
    process only): the run ends with that rank's one-line reason, and no process is left behind (the autouse
    fixture checks)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('RANK') == '1' and os.environ.get('WHETSTONE_TEST_FAIL_RANK'):\n"
        "    import transformers\n"
        "    def boom(self, *a, **k):\n"
        "        raise RuntimeError('simulated failure on the second GPU')\n"
        "    transformers.Trainer.training_step = boom\n",
        encoding="utf-8",
    )
    cfg = _config(tiny_llama_dir, **{"train.gpus": 2, "train.micro_batch_size": 1})
    from core.training.config import save_config

    save_config(cfg, tmp_path / "c.yaml")
    import os

    proc = run_cli(
        "train", "--config", str(tmp_path / "c.yaml"), "--data", str(sample_data), "--run-dir",
        str(tmp_path / "run"), "--quiet",
        env={
            CPU_PROCESSES_ENV: "1",
            "OMP_NUM_THREADS": "1",
            "WHETSTONE_TEST_FAIL_RANK": "1",
            "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
        },
    )  # fmt: skip
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "GPU 1: RuntimeError: simulated failure on the second GPU" in lines[0], lines
    run = RunFolder.open(tmp_path / "run")
    assert run.read_summary()["status"] == "error"
    assert not run.is_running()
