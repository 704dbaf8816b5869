"""Failures a user can cause end in one plain line naming what to do and the log with the full traceback:
the CLI's error path and the desktop's job error path."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from core import cli
from core.failures import failure_line, plain_message
from core.paths import logs_dir
from tests.conftest import run_cli


def test_cli_path_that_cannot_be_used_is_one_line_with_the_log(tmp_path: Path, sample_data: Path) -> None:
    blocker = tmp_path / "report"
    blocker.write_text("a file, not a folder")
    proc = run_cli("data", "convert", str(sample_data), str(blocker / "out.jsonl"), "--to", "alpaca")
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert (
        line.startswith("whetstone: error: Cannot use ") and "a file stands where a folder is needed" in line
    )
    log = Path(line.split("(details in ")[1].rstrip(")"))
    assert log.parent == logs_dir() or log.name == "cli-errors.log"
    assert "Traceback" in log.read_text() and "convert" in log.read_text()


def test_cli_disk_full_names_the_folder_and_leaves_no_partial_file(
    tmp_path: Path, sample_data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import core.atomic

    real_fdopen = os.fdopen

    class FullFile:
        def __init__(self, handle) -> None:  # type: ignore[no-untyped-def]
            self.handle = handle

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file name

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.handle, name)

    monkeypatch.setattr(core.atomic.os, "fdopen", lambda *a, **k: FullFile(real_fdopen(*a, **k)))
    out = tmp_path / "out" / "tickets.jsonl"
    code = cli.main(["data", "convert", str(sample_data), str(out), "--to", "alpaca"])
    err = capsys.readouterr().err
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith("whetstone: error: The disk is full: writing ") and f"in {out.parent}" in line
    assert "free); free some space and try again. (details in " in line
    assert list(out.parent.iterdir()) == []  # the temp file is gone, no half-written output


def test_plain_messages_for_what_users_cause(tmp_path: Path) -> None:
    import sqlite3

    assert "disk is full" in (plain_message(OSError(errno.ENOSPC, "x", str(tmp_path / "a.bin"))) or "")
    assert "Permission denied" in (plain_message(PermissionError(errno.EACCES, "x", "/etc/a")) or "")
    assert "read-only disk" in (plain_message(OSError(errno.EROFS, "x", "/mnt/a")) or "")
    assert "in use by another" in (plain_message(sqlite3.OperationalError("database is locked")) or "")
    assert "Out of memory" in (plain_message(MemoryError()) or "")
    assert plain_message(KeyError("x")) is None  # a bug stays an unexpected error


def test_unexpected_error_names_its_log(tmp_path: Path) -> None:
    try:
        raise KeyError("no such thing\nsecond line")
    except KeyError as exc:
        line = failure_line(exc, "test-errors.log")
    assert "\n" not in line and line.startswith("Unexpected error: KeyError: 'no such thing")
    log = Path(line.split("(details in ")[1].rstrip(")"))
    assert "Traceback" in log.read_text() and "KeyError" in log.read_text()


def test_desktop_job_failure_is_one_line_with_the_log(qtbot) -> None:  # type: ignore[no-untyped-def]
    from desktop.workers import JobRunner

    def job(progress, should_stop):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device", "/data/exports/model.gguf")

    runner = JobRunner(job)
    with (
        qtbot.waitSignal(runner.failed, timeout=10_000) as failed,
        qtbot.waitSignal(runner.done, timeout=10_000),
    ):
        runner.start()
    [message] = failed.args
    assert "\n" not in message and message.startswith(
        "The disk is full: writing model.gguf needs more space in "
    )
    log = Path(message.split("(details in ")[1].rstrip(")"))
    assert log.name == "desktop-errors.log" and "No space left on device" in log.read_text()
