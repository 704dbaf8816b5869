"""The settings store: a versioned JSON file under the user config dir, written atomically.

A corrupt or unreadable settings file is moved aside (never overwritten) and the app starts with defaults;
`Settings.warning` then holds a one-line message for the user.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core import paths
from core.atomic import atomic_write_text

SETTINGS_VERSION = 1
MAX_RECENT = 10


@dataclass
class Settings:
    version: int = SETTINGS_VERSION
    recent_workspaces: list[str] = field(default_factory=list)
    runs_dir: str = ""
    default_base_model: str = "smollm2-135m-instruct"
    reviewer_name: str = ""
    vram_target_gib: float = 0.0  # 0 = use the detected GPU
    window_geometry: str = ""
    last_page: str = "data"
    extra: dict[str, Any] = field(default_factory=dict)
    # Not saved: a message when the file on disk could not be read.
    warning: str = field(default="", compare=False)

    def add_recent(self, path: str | Path) -> None:
        text = str(Path(path).resolve())
        self.recent_workspaces = [p for p in self.recent_workspaces if p != text]
        self.recent_workspaces.insert(0, text)
        del self.recent_workspaces[MAX_RECENT:]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("warning", None)
        return data


def settings_path() -> Path:
    return paths.config_dir() / "settings.json"


def _set_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        n += 1
    path.rename(aside)
    return aside


def load_settings(path: Path | None = None, set_aside: bool = True) -> Settings:
    """The saved settings. A file that cannot be read is moved aside (the app then saves good defaults over
    nothing); with `set_aside=False` (a reader such as the CLI, which never saves them) it is left alone."""
    path = path or settings_path()
    if not path.exists():
        return Settings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("top level is not an object")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        if not set_aside:
            return Settings(warning=f"Settings file {path} could not be read ({exc.__class__.__name__}).")
        try:
            aside = _set_aside(path)
            where = f"kept aside as {aside.name}"
        except OSError:
            where = "left in place"
        settings = Settings()
        settings.warning = f"Settings file {path} could not be read ({exc.__class__.__name__}); using defaults, the old file was {where}."
        return settings
    return _from_dict(raw)


def _from_dict(raw: dict[str, Any]) -> Settings:
    version = raw.get("version", 0)
    # Migrations go here: each one upgrades `raw` from version N to N+1.
    if version < 1:
        raw = {**raw, "version": 1}
    defaults = Settings()
    known = set(defaults.to_dict())
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in known and key != "warning":
            default = getattr(defaults, key)
            if isinstance(default, list) and not isinstance(value, list):
                continue
            if isinstance(default, dict) and not isinstance(value, dict):
                continue
            if isinstance(default, float) and isinstance(value, int | float):
                value = float(value)
            elif not isinstance(default, list | dict) and not isinstance(value, type(default)):
                continue
            values[key] = value
    values["version"] = SETTINGS_VERSION
    return Settings(**values)


def save_settings(settings: Settings, path: Path | None = None) -> None:
    path = path or settings_path()
    atomic_write_text(path, json.dumps(settings.to_dict(), indent=2, sort_keys=True) + "\n")
