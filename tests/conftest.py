"""Shared fixtures. Every test gets its own WHETSTONE_HOME; converted models are cached once per session."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="whetstone-tests-"))
os.environ["WHETSTONE_HOME"] = str(_SESSION_ROOT / "home")
os.environ["WHETSTONE_CACHE_DIR"] = str(_SESSION_ROOT / "cache")
# An event that breaks the schema ends a training worker here (users' workers cut it and train on)
os.environ["WHETSTONE_STRICT_EVENTS"] = "1"
# Converted models (the embedded SmolLM2 GGUF -> safetensors, ~20 s each time on 2 cores) are shared by the
# test sessions of one machine: they depend only on the GGUF file and the converter version (both in the folder
# name), and a conversion is written to a temp folder and renamed, so parallel sessions never see half of one.
_SHARED_MODELS = Path(tempfile.gettempdir()) / f"whetstone-test-models-{os.getuid()}"
_SHARED_MODELS.mkdir(exist_ok=True)
(_SESSION_ROOT / "cache").mkdir()
(_SESSION_ROOT / "cache" / "models").symlink_to(_SHARED_MODELS, target_is_directory=True)

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO / "resources" / "sample_dataset.jsonl"


@pytest.fixture(autouse=True)
def no_leftover_processes_or_threads():
    """No test may leave a child process or a (non-daemon) Python thread running."""
    import threading
    import time

    import psutil

    before_threads = {t.ident for t in threading.enumerate()}
    yield
    me = psutil.Process()
    deadline = time.monotonic() + 5
    while True:
        children = [
            c for c in me.children(recursive=True) if c.is_running() and c.status() != psutil.STATUS_ZOMBIE
        ]
        threads = [
            t
            for t in threading.enumerate()
            if t.ident not in before_threads and not t.daemon and t.is_alive()
        ]
        if (not children and not threads) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for child in children:
        child.kill()
    assert not children, f"test left child processes running: {[c.cmdline()[:4] for c in children]}"
    assert not threads, f"test left threads running: {[t.name for t in threads]}"


@pytest.fixture(autouse=True)
def whetstone_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "whetstone-home"
    monkeypatch.setenv("WHETSTONE_HOME", str(home))
    monkeypatch.setenv("WHETSTONE_CACHE_DIR", str(_SESSION_ROOT / "cache"))
    return home


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None):
    """Run `whetstone ARGS` in a child process with the network blocked; checks it never leaks a traceback
    or a connect attempt. Returns the CompletedProcess."""
    from core.offline import BLOCKED_MARKER

    full_env = {**os.environ, "WHETSTONE_BLOCK_NETWORK": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd or REPO,
    )
    assert BLOCKED_MARKER not in proc.stderr, f"network access attempted:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, f"traceback leaked to the user:\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct as a safetensors folder (converted once, sockets blocked)."""
    proc = run_cli("models", "prepare", "smollm2-135m-instruct", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    import json

    return Path(json.loads(proc.stdout)["path"])


def save_tiny_llama(folder: Path, tokenizer_dir: Path, hidden: int = 64, dtype: Any = None) -> Path:
    """A 2-layer Llama with random weights (seed 0) and the tokenizer + chat template of `tokenizer_dir`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512 if hidden <= 64 else 1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama (hidden 64) with random weights and SmolLM2's tokenizer + chat template."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), smollm2_dir)


@pytest.fixture
def sample_data() -> Path:
    return SAMPLE_DATA


@pytest.fixture
def fake_run_dir(tiny_llama_dir: Path, tmp_path: Path) -> Path:
    """A run folder as Train leaves it (config.yaml, dataset.jsonl with splits, adapter/), built directly with
    PEFT on the tiny Llama: a LoRA adapter with non-zero weights, so base and tuned outputs differ."""
    import hashlib

    import orjson
    import torch
    import yaml
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "logs").mkdir()
    config = {
        "model": {"name": str(tiny_llama_dir)},
        "quant": {"mode": "none"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {"max_steps": 1, "max_length": 256, "seed": 0},
        "data": {"source": str(SAMPLE_DATA)},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    lines = []
    for i, line in enumerate(SAMPLE_DATA.read_text(encoding="utf-8").splitlines()):
        row = orjson.loads(line)
        split = "test" if i % 10 == 0 else "validation" if i % 10 == 1 else "train"
        lines.append(orjson.dumps({"id": f"ex{i}", "messages": row["messages"], "split": split}))
    data = b"\n".join(lines) + b"\n"
    (run / "dataset.jsonl").write_bytes(data)
    (run / "dataset.sha256").write_text(hashlib.sha256(data).hexdigest() + "  dataset.jsonl\n")
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    peft_model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
    )
    peft_model.save_pretrained(run / "adapter")
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(run / "adapter")
    (run / "events.jsonl").write_text(
        '{"type": "step", "step": 1, "loss": 2.0}\n{"type": "done", "step": 1, "message": "finished"}\n'
    )
    return run
