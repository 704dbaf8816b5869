"""`whetstone doctor`: the self-check an air-gapped site's admin runs and sends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import doctor
from tests.conftest import REPO, run_cli


@pytest.fixture(scope="module")
def report() -> dict:
    proc = run_cli("doctor", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr  # this machine has everything but a GPU and maybe llama.cpp
    return json.loads(proc.stdout)


def _check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def test_doctor_json_covers_every_check(report: dict) -> None:
    names = [c["name"] for c in report["checks"]]
    assert names == [
        "Python", "Whetstone", "torch", "GPU", "bitsandbytes", "llama.cpp", "GGUF converter", "Models", "Folders", "Network guard",
    ]  # fmt: skip
    assert all(c["status"] in ("ok", "warn", "fail") and c["summary"] for c in report["checks"])
    assert report["ok"] is True and report["failures"] == 0
    torch_check = _check(report, "torch")
    assert torch_check["details"]["version"].startswith("2.13")
    assert isinstance(torch_check["details"]["bf16"], bool)
    assert _check(report, "bitsandbytes")["status"] == "ok"  # it loads (CPU backend here)
    assert report["versions"]["torch"].startswith("2.13") and "transformers" in report["versions"]
    assert report["system"]["cpus"] >= 1


def test_doctor_finds_the_embedded_models_and_writable_dirs(report: dict, whetstone_home: Path) -> None:
    models = _check(report, "Models")
    assert models["status"] == "ok"
    ids = {m["id"]: m for m in models["details"]["models"]}
    assert ids["smollm2-135m-instruct"]["present"] and ids["smollm2-135m-instruct"]["size_mb"] > 50
    assert ids["all-minilm-l6-v2"]["present"]
    dirs = _check(report, "Folders")["details"]["dirs"]
    assert dirs["data"]["writable"] and dirs["data"]["free_gib"] > 0
    assert not list(Path(dirs["data"]["path"]).glob(".doctor-*"))  # its probe file is gone


def test_doctor_network_guard_on_and_no_connection_attempted(report: dict) -> None:
    guard = _check(report, "Network guard")
    assert guard["status"] == "ok"
    assert guard["details"]["sockets_blocked_during_check"] is True
    assert guard["details"]["connect_attempts"] == []
    assert guard["details"]["offline_env"]["HF_HUB_OFFLINE"] == "1"


def test_doctor_reports_a_connection_attempt_as_a_failure() -> None:
    script = (
        "import socket, core.offline as o\n"
        "o.block_sockets()\n"
        "try:\n    socket.create_connection(('192.0.2.1', 443), timeout=1)\nexcept OSError:\n    pass\n"
        "from core.doctor import check_network_guard\n"
        "c = check_network_guard(); print(c.status, c.summary)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert proc.stdout.startswith("fail 1 connection attempt(s) blocked: ('192.0.2.1', 443)"), proc.stderr


def test_doctor_text_output_is_readable() -> None:
    proc = run_cli("doctor", timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Whetstone ") and "self-check" in lines[0]
    assert any(line.startswith("OK    Network guard") for line in lines)
    assert any("smollm2-135m-instruct (base, embedded): " in line for line in lines)  # the path is shown
    assert lines[-1].startswith("Result: OK")


def test_unwritable_data_dir_fails_with_exit_1(whetstone_home: Path) -> None:
    whetstone_home.mkdir(parents=True, exist_ok=True)
    (whetstone_home / "data").write_text("a file where the data folder should be")
    proc = run_cli("doctor", "--json", timeout=300)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    folders = _check(doc, "Folders")
    assert folders["status"] == "fail" and folders["summary"].startswith("cannot write data:")
    assert doc["ok"] is False and doc["failures"] >= 1


def test_missing_embedded_model_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.models

    monkeypatch.setattr(core.models, "embedded_base_gguf", lambda: None)
    check = doctor.check_models()
    assert check.status == "fail"
    assert check.summary == "embedded model missing: smollm2-135m-instruct"


def test_format_report_lists_failures_first_line_per_check() -> None:
    report = {
        "whetstone": "0.1.0", "ok": False, "failures": 1, "warnings": 0, "checked_at": "now",
        "system": {"os": "Linux", "cpus": 2, "ram_gib": 8},
        "checks": [{"name": "torch", "status": "fail", "summary": "torch does not load: ImportError: x", "details": {}}],
        "versions": {"torch": None},
    }  # fmt: skip
    text = doctor.format_report(report)
    assert "FAIL  torch  torch does not load: ImportError: x" in text
    assert "torch not installed" in text
    assert text.endswith("Result: PROBLEMS FOUND (1 failure(s), 0 warning(s))")
