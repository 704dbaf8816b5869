from __future__ import annotations

import json

from core.settings import Settings, load_settings, save_settings, settings_path


def test_round_trip_is_versioned() -> None:
    s = Settings()
    s.add_recent("/tmp/a.jsonl")
    s.add_recent("/tmp/b.jsonl")
    s.add_recent("/tmp/a.jsonl")
    save_settings(s)
    raw = json.loads(settings_path().read_text())
    assert raw["version"] == 1
    loaded = load_settings()
    assert loaded.recent_workspaces[:2] == ["/tmp/a.jsonl", "/tmp/b.jsonl"]
    assert loaded.warning == ""


def test_corrupt_file_is_kept_aside_and_defaults_used() -> None:
    path = settings_path()
    path.write_text("{not json", encoding="utf-8")
    loaded = load_settings()
    assert loaded == Settings()
    assert "could not be read" in loaded.warning
    assert not path.exists()
    aside = list(path.parent.glob("settings.json.broken-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{not json"
    save_settings(loaded)  # a save afterwards never touches the broken copy
    assert aside[0].read_text() == "{not json"


def test_wrong_types_fall_back_to_defaults() -> None:
    settings_path().write_text(json.dumps({"version": 1, "recent_workspaces": "oops", "vram_target_gib": 24}))
    loaded = load_settings()
    assert loaded.recent_workspaces == []
    assert loaded.vram_target_gib == 24.0


def test_whetstone_home_overrides_all_dirs(whetstone_home) -> None:
    from core import paths

    assert str(paths.config_dir()).startswith(str(whetstone_home))
    assert str(paths.data_dir()).startswith(str(whetstone_home))
    assert str(paths.runs_dir()).startswith(str(whetstone_home))
