"""User directories. XDG by default; `WHETSTONE_HOME` overrides all of them (tests always set it)."""

from __future__ import annotations

import os
from pathlib import Path

APP = "whetstone"


def _home() -> Path | None:
    value = os.environ.get("WHETSTONE_HOME")
    return Path(value).expanduser() if value else None


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    home = _home()
    if home is not None:
        return _ensure(home / "data")
    import platformdirs

    return _ensure(Path(platformdirs.user_data_dir(APP)))


def config_dir() -> Path:
    home = _home()
    if home is not None:
        return _ensure(home / "config")
    import platformdirs

    return _ensure(Path(platformdirs.user_config_dir(APP)))


def cache_dir() -> Path:
    """Model caches etc. `WHETSTONE_CACHE_DIR` lets tests share one converted model across test homes."""
    override = os.environ.get("WHETSTONE_CACHE_DIR")
    if override:
        return _ensure(Path(override).expanduser())
    home = _home()
    if home is not None:
        return _ensure(home / "cache")
    import platformdirs

    return _ensure(Path(platformdirs.user_cache_dir(APP)))


def runs_dir() -> Path:
    return _ensure(data_dir() / "runs")


def workspaces_dir() -> Path:
    return _ensure(data_dir() / "workspaces")


def logs_dir() -> Path:
    return _ensure(data_dir() / "logs")
