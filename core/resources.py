"""Whetstone's bundled files (sample dataset, general prompts, style sheet, icon), found in one place.

In the repository they live in `resources/`. pyproject.toml installs that folder as the package
`whetstone_resources` (package-dir), so a wheel carries them as package data and an editable install
maps the package back to `resources/`. A plain checkout run without any install (`python -m core.cli`
from the repository) finds the folder beside `core/`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from core.errors import WhetstoneError

RESOURCE_PACKAGE = "whetstone_resources"
RESOURCE_NAMES = ("sample_dataset.jsonl", "general_prompts.jsonl", "style.qss", "whetstone.svg")
CHECKOUT_RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def resources_dir() -> Path:
    """The installed `whetstone_resources` package folder, else the checkout's `resources/`."""
    try:
        spec = importlib.util.find_spec(RESOURCE_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parent
    return CHECKOUT_RESOURCES


def resource_path(name: str) -> Path:
    """Path of the bundled file `name` (one of RESOURCE_NAMES); a missing file is one clear error."""
    if name not in RESOURCE_NAMES:
        raise ValueError(f"unknown resource {name!r}; known: {', '.join(RESOURCE_NAMES)}")
    path = resources_dir() / name
    if not path.is_file():
        raise WhetstoneError(
            f"Whetstone's bundled file {name} is missing from {path.parent}; reinstall Whetstone"
        )
    return path
