"""The export contract (issue 13) and the GGUF support check (issue 11):
- `--out NAME.gguf` writes exactly that file with NAME.Modelfile / NAME.README.md beside it;
- an export killed midway leaves nothing at --out (and the next export clears its leftovers);
- a full disk fails with one line naming the folder and the space, leaving no partial output;
- support is checked before merging, with what to do instead; a GGUF failing verification is renamed."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import UserError, WhetstoneError
from tests.conftest import REPO, run_cli


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".partial" in p.name or p.name.startswith(".merged")]


def test_cli_gguf_out_file_writes_that_file_with_sidecars(fake_run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "models" / "support-bot.gguf"
    proc = run_cli(
        "export", str(fake_run_dir), "--format", "gguf", "--out", str(out), "--quant", "q8_0", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert out.is_file() and doc["out"] == str(out)
    assert out.read_bytes()[:4] == b"GGUF"
    modelfile = tmp_path / "models" / "support-bot.Modelfile"
    readme = tmp_path / "models" / "support-bot.README.md"
    assert modelfile.read_text().startswith("FROM ./support-bot.gguf")
    assert "support-bot.gguf" in readme.read_text()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "support-bot.Modelfile",
        "support-bot.README.md",
        "support-bot.gguf",
    ]
    assert {f["path"] for f in doc["files"]} == {str(out), str(modelfile), str(readme)}
    # the same name again is refused without --overwrite, and replaced with it
    again = run_cli("export", str(fake_run_dir), "--format", "gguf", "--out", str(out), "--quant", "q8_0")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_out_folder_keeps_the_folder_layout(fake_run_dir: Path, tmp_path: Path) -> None:
    from core.export.api import export_run

    result = export_run(fake_run_dir, "gguf", tmp_path / "gguf-folder", quant="f16", verify=False)
    folder = tmp_path / "gguf-folder"
    assert Path(result.out_dir) == folder and folder.is_dir()
    names = sorted(p.name for p in folder.iterdir())
    assert "Modelfile" in names and "README.md" in names and any(n.endswith("-f16.gguf") for n in names)


@pytest.mark.slow
def test_export_killed_midway_leaves_nothing_at_out(fake_run_dir: Path, tmp_path: Path) -> None:
    """kill -9 while the export is writing: nothing at --out; the next export clears the temp folder."""
    out = tmp_path / "killed.gguf"
    env = {**os.environ, "WHETSTONE_BLOCK_NETWORK": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "export", str(fake_run_dir), "--format", "gguf", "--out", str(out),
         "--quant", "f16", "--quiet"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        # wait until the merged model is being written inside the temp folder beside --out
        while time.monotonic() < deadline and proc.poll() is None:
            partials = list(tmp_path.glob(".killed.gguf.partial-*"))
            if partials and any(p.suffix == ".safetensors" for p in partials[0].rglob("*")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the export finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not out.exists()
    assert not list(tmp_path.glob("killed.*"))
    assert list(tmp_path.glob(".killed.gguf.partial-*"))  # the dead process's temp folder, hidden
    from core.export.api import export_run

    export_run(fake_run_dir, "gguf", out, quant="f16", verify=False)
    assert out.is_file()
    assert not _leftovers(tmp_path)


@contextlib.contextmanager
def _small_tmpfs(folder: Path, size: str):
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_full_during_export_real_tmpfs(fake_run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A 4 MB tmpfs and the space check bypassed (another program filled the disk after it): the kernel's
    ENOSPC becomes one line naming the folder and the space needed, and the tmpfs is left empty."""
    import core.export.api as api

    small = tmp_path / "small"
    with _small_tmpfs(small, "4M") as mounted:
        if not mounted:
            pytest.skip(
                "mounting a tmpfs needs root; test_disk_full_during_gguf_write covers it with a patch"
            )
        monkeypatch.setattr(api, "check_disk_space", lambda folder, needed: None)
        with pytest.raises(WhetstoneError) as caught:
            api.export_run(fake_run_dir, "merged", small / "merged", verify=False)
        message = str(caught.value)
        assert "disk is full" in message and "needs about" in message
        assert str(small) in message and "\n" not in message
        assert list(small.iterdir()) == []


def test_disk_full_during_gguf_write(fake_run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """The GGUF write hits ENOSPC half-way (patched write): one line with the folder and the space needed;
    no partial file or temp folder is left."""
    import core.export.api as api
    from core.export.gguf_writer import GgufExporter

    real_write = GgufExporter.write

    def full_disk(self, out_path, *args, **kwargs):
        Path(out_path).with_name(Path(out_path).name + ".partial").write_bytes(b"GGUF" + b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(GgufExporter, "write", full_disk)
    out = tmp_path / "exports" / "full.gguf"
    with pytest.raises(WhetstoneError) as caught:
        api.export_run(fake_run_dir, "gguf", out, quant="f16", verify=False)
    message = str(caught.value)
    assert "disk is full" in message and str(out.parent) in message and "needs about" in message
    assert "\n" not in message
    assert list(out.parent.iterdir()) == []
    monkeypatch.setattr(GgufExporter, "write", real_write)


def _copy_with_architecture(src: Path, dst: Path, arch: str) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["architectures"] = [arch]
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def _point_run_at(run: Path, model: Path) -> None:
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["name"] = str(model)
    (run / "config.yaml").write_text(yaml.safe_dump(config))


def test_unsupported_architecture_is_refused_before_merging(
    fake_run_dir: Path, tiny_llama_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import core.export.merge as merge
    from core.export.api import export_run

    model = _copy_with_architecture(tiny_llama_dir, tmp_path / "odd", "WhetstoneTestForCausalLM")
    _point_run_at(fake_run_dir, model)

    def no_merge(*args, **kwargs):
        raise AssertionError("the model was loaded before the support check")

    monkeypatch.setattr(merge, "load_peft_model", no_merge)
    out = tmp_path / "out.gguf"
    with pytest.raises(UserError) as caught:
        export_run(fake_run_dir, "gguf", out, quant="q8_0")
    message = str(caught.value)
    assert "WhetstoneTestForCausalLM" in message
    assert "--format merged" in message and "--format adapter" in message and "convert_hf_to_gguf" in message
    assert not out.exists() and not _leftovers(tmp_path)


def test_converter_architectures_come_from_llama_cpp(fake_run_dir: Path, tiny_llama_dir: Path) -> None:
    from core.export.llama_convert import converter_architectures, converter_dir, gguf_route

    if converter_dir() is None:
        pytest.fail("llama.cpp's converter is not installed: `make llama-convert` installs it")
    archs = converter_architectures()
    for name in ("Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM",
                 "Phi3ForCausalLM", "SmolLM3ForCausalLM", "LlamaForCausalLM"):  # fmt: skip
        assert name in archs
    assert "WhetstoneTestForCausalLM" not in archs
    assert gguf_route(tiny_llama_dir) == "writer"


def test_missing_converter_says_how_to_install_it(tiny_llama_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import core.export.llama_convert as lc

    model = _copy_with_architecture(tiny_llama_dir, tmp_path / "q3", "Qwen3ForCausalLM")
    monkeypatch.setattr(lc, "converter_dir", lambda: None)
    with pytest.raises(UserError, match="make llama-convert"):
        lc.gguf_route(model)


def test_gguf_failing_verification_is_renamed_unverified(
    fake_run_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import core.export.verify as V
    from core.export.api import export_run
    from core.export.formats import verification_status, verification_summary

    real = V.verify_gguf_transformers

    def failing(*args, **kwargs):
        figures = real(*args, **kwargs)
        figures["passed"] = False
        return figures

    monkeypatch.setattr(V, "verify_gguf_transformers", failing)
    out = tmp_path / "bad.gguf"
    result = export_run(fake_run_dir, "gguf", out, quant="f16")
    assert not out.exists()
    unverified = tmp_path / "bad.unverified.gguf"
    assert unverified.is_file() and Path(result.out_dir) == unverified
    assert (tmp_path / "bad.Modelfile").read_text().startswith("FROM ./bad.unverified.gguf")
    assert "FAILED" in (tmp_path / "bad.README.md").read_text()
    assert verification_status(result.verification) == "failed"
    assert verification_summary(result.verification).startswith("Verification FAILED")
    assert any("unverified" in note for note in result.notes)


def test_verification_summary_in_plain_words() -> None:
    from core.export.formats import verification_status, verification_summary

    rows = [{"template_match": True, "tokens_match": True, "greedy_match": i < 3} for i in range(4)]
    verification = {
        "merged": {"prompts": 4, "next_token_top1_agreement": 1.0, "passed": True},
        "gguf_transformers": {"passed": True},
        "llama_cpp": {"prompts": rows, "logits": {"passed": True}, "passed": True},
        "passed": True,
    }
    text = verification_summary(verification)
    # one greedy answer differs: every check passed, yet it is not called "Verified"
    assert text.startswith("Partly verified:") and verification_status(verification) == "partial"
    assert "reads the prompt exactly as in training on 4 of 4 test prompts" in text
    assert "answers match the merged model on 3 of 4 test prompts (the others word" in text
    rows[3]["greedy_match"] = True
    assert verification_summary(verification).startswith("Verified:")
    assert verification_status(verification) == "verified"
    verification["llama_cpp"] = {"skipped": "llama-cpp-python is not installed"}
    assert verification_status(verification) == "partial"
    assert verification_summary(verification).startswith("Partly verified")
    assert "Not checked: llama-cpp-python is not installed" in verification_summary(verification)
