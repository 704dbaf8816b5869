"""The public CLI contract: --version, models list, one-line errors with exit 2, never a traceback."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("whetstone ")


def test_models_list_json_lists_embedded_models() -> None:
    proc = run_cli("models", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    models = json.loads(proc.stdout)
    by_id = {m["id"]: m for m in models}
    assert set(models[0]) == {"id", "kind", "path", "source"}
    assert by_id["smollm2-135m-instruct"]["kind"] == "base"
    assert by_id["smollm2-135m-instruct"]["path"].endswith(".gguf")
    assert by_id["all-minilm-l6-v2"]["kind"] == "embedding"
    assert all(m["source"] == "embedded" for m in models)


def test_unknown_subcommand_is_one_line_exit_2() -> None:
    proc = run_cli("frobnicate")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "invalid choice" in proc.stderr


def test_missing_required_flag_exit_2() -> None:
    proc = run_cli("export", "somewhere")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_file_exit_2() -> None:
    proc = run_cli("data", "check", "/definitely/not/here.jsonl", "--json")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "whetstone: error: File not found: /definitely/not/here.jsonl"


def test_unknown_model_id_exit_2() -> None:
    proc = run_cli("models", "prepare", "no-such-model")
    assert proc.returncode == 2
    assert "Unknown model 'no-such-model'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_models_add_refuses_pickle_and_remote_code(tmp_path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "pytorch_model.bin").write_bytes(b"not really")
    proc = run_cli("models", "add", str(folder))
    assert proc.returncode == 2
    assert "pickle" in proc.stderr
    proc = run_cli("models", "add", str(folder), "--allow-pickle", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["source"] == "local"
    listed = json.loads(run_cli("models", "list", "--json").stdout)
    assert any(m["path"] == str(folder.resolve()) for m in listed)

    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text('{"model_type": "x", "auto_map": {"AutoModel": "x.Model"}}')
    (remote / "model.safetensors").write_bytes(b"")
    proc = run_cli("models", "add", str(remote))
    assert proc.returncode == 2
    assert "trust_remote_code" in proc.stderr
