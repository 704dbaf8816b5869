"""A model split across GPUs (train.shard_model: accelerate's FSDP2), its launch path proven on the CPU.

`WHETSTONE_DDP_ON_CPU=1` lets `train.gpus = 2` start two CPU processes (gloo) exactly as two GPUs would be
started. accelerate (1.15) runs FSDP only on accelerators: on a CPU its state turns `--use_fsdp` into plain
data parallel (MULTI_CPU). So that CPU CI runs the real FSDP2 path (accelerate's fsdp2_prepare_model, torch's
fully_shard over a CPU mesh, the Trainer's FSDP code), a sitecustomize on the test's PYTHONPATH makes
accelerate's state keep FSDP on the CPU, in the test's processes only; nothing else is changed. The tiny model
trains with plain LoRA (quant none): bitsandbytes' 4-bit weights are sharded by FSDP only on a GPU (the
figures in benchmarks/results/TRAIN_MULTI_GPU.md). The adapter the two processes gather at the end must be an
ordinary PEFT adapter equal to what one process trains on the same global batch with the same seed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from core.runs import RunFolder
from core.training.config import save_config
from core.training.launch import CPU_PROCESSES_ENV, prepare_run, worker_command
from tests.conftest import run_cli
from tests.core.test_training_multigpu import _config


def test_split_model_launches_accelerate_fsdp2(tmp_path: Path, sample_data: Path) -> None:
    run = prepare_run(
        _config(tmp_path / "m", **{"train.gpus": 2, "train.shard_model": True}), sample_data, tmp_path / "r"
    )
    cmd = worker_command(run)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert "--use_fsdp" in cmd and "--multi_gpu" not in cmd
    assert cmd[cmd.index("--fsdp_version") + 1] == "2"
    assert cmd[cmd.index("--fsdp_auto_wrap_policy") + 1] == "TRANSFORMER_BASED_WRAP"
    assert cmd[cmd.index("--num_processes") + 1] == "2"
    assert cmd[-2:] == ["core.training.worker", str(run.path)]


FSDP_ON_CPU_HOOK = """
import os
if os.environ.get("ACCELERATE_USE_FSDP") == "true":
    import accelerate.state as state
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    accelerate_init = state.AcceleratorState.__init__

    def keep_fsdp_on_cpu(self, *args, **kwargs):
        accelerate_init(self, *args, **kwargs)
        if self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            if getattr(self, "fsdp_plugin", None) is None:
                self.fsdp_plugin = kwargs.get("fsdp_plugin") or FullyShardedDataParallelPlugin()

    state.AcceleratorState.__init__ = keep_fsdp_on_cpu
"""


def _train(model: Path, data: Path, run_dir: Path, **over: object) -> RunFolder:
    import os

    cfg_file = run_dir.parent / f"{run_dir.name}.yaml"
    save_config(_config(model, **over), cfg_file)
    hook = run_dir.parent / "fsdp-on-cpu"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(FSDP_ON_CPU_HOOK, encoding="utf-8")
    path = os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])
    proc = run_cli(
        "train", "--config", str(cfg_file), "--data", str(data), "--run-dir", str(run_dir), "--json", "--quiet",
        env={CPU_PROCESSES_ENV: "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": path},
    )  # fmt: skip
    run = RunFolder.open(run_dir)
    log = (run.logs_dir / "worker.log").read_text() if (run.logs_dir / "worker.log").exists() else ""
    assert proc.returncode == 0, (proc.stderr[-2000:], log[-6000:])
    assert json.loads(proc.stdout)["steps"] == 3
    return run


@pytest.mark.slow
def test_split_model_saves_the_adapter_one_process_trains(
    tiny_llama_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftConfig
    from safetensors.torch import load_file

    single = _train(tiny_llama_dir, sample_data, tmp_path / "single", **{"train.micro_batch_size": 2})
    split = _train(
        tiny_llama_dir,
        sample_data,
        tmp_path / "split",
        **{
            "train.gpus": 2,
            "train.micro_batch_size": 1,
            "train.shard_model": True,
            "train.sample_prompts": 2,
        },
    )
    # An ordinary PEFT adapter: the same files and keys, readable without knowing how it was trained.
    assert sorted(p.name for p in split.adapter_dir.glob("adapter_*")) == sorted(
        p.name for p in single.adapter_dir.glob("adapter_*")
    )
    assert PeftConfig.from_pretrained(str(split.adapter_dir)).r == 8
    a = load_file(single.adapter_dir / "adapter_model.safetensors")
    b = load_file(split.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    assert all(a[k].shape == b[k].shape for k in a)  # whole weights, not one rank's shard
    assert any(b[k].abs().max() > 0 for k in b if "lora_B" in k)  # it really trained
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-3, atol=1e-5), (key, (a[key] - b[key]).abs().max())
    events, _ = split.read_events()
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3] and all(e["gpus"] == 2 for e in steps)
    assert [e["type"] for e in events].count("done") == 1
    # rank 0 cannot answer sample prompts alone from a split model (it would wait for the others forever)
    assert any("Sample answers are off while the model is split" in e.get("message", "") for e in events)
    split_note = [e for e in events if e.get("sharded")]  # FSDP really split it: each rank held a share
    assert len(split_note) == 1 and "split across 2 GPUs" in split_note[0]["message"], events
    assert (split.checkpoints_dir / "checkpoint-3").is_dir()
