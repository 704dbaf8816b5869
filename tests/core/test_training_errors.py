"""Worker failures end with one plain `error` event naming what to change, and the traceback in logs/."""

from __future__ import annotations

import errno
from pathlib import Path

import yaml

from core.runs import RunFolder
from core.training.worker import EventWriter, _fail


class OutOfMemoryError(RuntimeError):  # same name as torch's, no torch import needed
    pass


def _run(tmp_path: Path, train: dict) -> RunFolder:
    run = RunFolder(tmp_path / "run").ensure()
    run.config_file.write_text(
        yaml.safe_dump({"model": {"name": "m"}, "quant": {"mode": "none"}, "train": train})
    )
    return run


def _last_error(run: RunFolder, exc: BaseException) -> tuple[int, str]:
    import io

    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001
        code = _fail(run, EventWriter(run, io.StringIO()), caught, run.logs_dir / "worker.log")
    events = run.read_events()[0]
    assert events[-1]["type"] == "error"
    assert "Traceback" in (run.logs_dir / "worker.log").read_text()
    return code, events[-1]["message"]


def test_oom_names_the_settings_to_lower(tmp_path: Path) -> None:
    run = _run(tmp_path, {"micro_batch_size": 8, "max_length": 4096, "gradient_checkpointing": False})
    code, message = _last_error(run, OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert code == 1
    assert "Out of GPU memory" in message
    assert "Micro-batch size (now 8" in message and "Gradient checkpointing" in message
    assert "Max length (now 4096)" in message and "4bit" in message
    assert "\n" not in message


def test_disk_full_is_plain(tmp_path: Path) -> None:
    run = _run(tmp_path, {})
    code, message = _last_error(run, OSError(errno.ENOSPC, "No space left on device"))
    assert code == 1 and "disk is full" in message
    assert run.read_summary()["status"] == "error"
