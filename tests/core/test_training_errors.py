"""Worker failures end with one plain `error` event naming what to change, and the traceback in logs/."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
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
    # each tip names the setting as the form labels it, with the value it has now
    assert "Examples at once (micro-batch, now 8" in message and "(gradient checkpointing)" in message
    assert "Longest example (max length, now 4096)" in message
    assert "Memory saving (quantization) to 4-bit" in message
    assert "\n" not in message


def test_disk_full_is_plain(tmp_path: Path) -> None:
    run = _run(tmp_path, {})
    code, message = _last_error(run, OSError(errno.ENOSPC, "No space left on device"))
    assert code == 1 and "disk is full" in message
    assert run.read_summary()["status"] == "error"


def test_an_event_off_the_schema_ends_a_test_run_but_not_a_users_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A step event with a field the schema does not know (our bug): the test suite's strict mode raises; a
    user's worker writes the step without that field, says so on stderr (logs/worker.log) and trains on."""
    import io

    run = _run(tmp_path, {})
    bad = {"type": "step", "step": 3, "loss": 1.25, "tokens_per_s": 100.0, "new_metric": 7}
    assert os.environ.get("WHETSTONE_STRICT_EVENTS") == "1"  # tests/conftest.py
    with pytest.raises(ValueError, match="unknown field 'new_metric'"):
        EventWriter(run, io.StringIO())(dict(bad))
    assert run.read_events()[0] == []

    monkeypatch.delenv("WHETSTONE_STRICT_EVENTS")
    writer = EventWriter(run, io.StringIO())
    writer(dict(bad))
    writer({"type": "gpu_stats", "step": 4, "watts": 300})  # an unknown type becomes a log line
    writer({"type": "step", "step": 5, "loss": "1.0"})  # a value of the wrong kind is left out
    events = run.read_events()[0]
    assert [e["type"] for e in events] == ["step", "log", "step"]
    assert events[0]["step"] == 3 and events[0]["loss"] == 1.25 and "new_metric" not in events[0]
    assert events[1]["step"] == 4 and "gpu_stats" in events[1]["message"]
    assert events[2]["step"] == 5 and "loss" not in events[2]
    assert capsys.readouterr().err.count("an event was cut to fit the schema") == 3
