"""Bundled resources resolve in the checkout, and a wheel built from pyproject.toml carries them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from core import resources
from core.errors import WhetstoneError
from core.resources import RESOURCE_NAMES, RESOURCE_PACKAGE, resource_path

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", RESOURCE_NAMES)
def test_every_named_resource_resolves_to_a_file(name: str) -> None:
    path = resource_path(name)
    assert path.is_file() and path.stat().st_size > 0
    assert path == (REPO / "resources" / name).resolve()  # checkout or editable install: the repo's folder


def test_every_file_in_resources_is_named() -> None:
    files = {p.name for p in (REPO / "resources").iterdir() if p.is_file() and p.name != "__init__.py"}
    assert files == set(RESOURCE_NAMES)


def test_unknown_or_missing_resource_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="unknown resource 'nope.txt'"):
        resource_path("nope.txt")
    monkeypatch.setattr(resources, "resources_dir", lambda: tmp_path)
    with pytest.raises(WhetstoneError) as info:
        resource_path("style.qss")
    message = str(info.value)
    assert "\n" not in message and "style.qss" in message and "reinstall" in message


def test_packaging_lists_every_package_and_maps_resources() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools_cfg = config["tool"]["setuptools"]
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("core", "desktop")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert set(setuptools_cfg["packages"]) == on_disk | {RESOURCE_PACKAGE}
    assert setuptools_cfg["package-dir"] == {RESOURCE_PACKAGE: "resources"}
    assert config["project"]["scripts"] == {"whetstone": "core.cli:main"}


def test_wheel_contains_resources_and_entry_point(tmp_path: Path) -> None:
    # Build from a copy so no build/ or egg-info lands in the checkout; offline, no build isolation.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("core", "desktop", "resources"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "wheels"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = out.glob("whetstone-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for name in RESOURCE_NAMES:
            member = f"{RESOURCE_PACKAGE}/{name}"
            assert member in names
            assert zf.read(member) == (REPO / "resources" / name).read_bytes()
        assert {
            "core/resources.py",
            "core/cli.py",
            "desktop/app.py",
            f"{RESOURCE_PACKAGE}/__init__.py",
        } <= names
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "whetstone = core.cli:main" in zf.read(entry_points).decode()
