"""About box text: versions of the ML stack, read from package metadata (no heavy imports)."""

from __future__ import annotations

import platform
from importlib import metadata

import core

STACK = [
    "PySide6-Essentials",
    "torch",
    "transformers",
    "peft",
    "trl",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "sentence-transformers",
    "gguf",
    "llama-cpp-python",
    "pyqtgraph",
    "pydantic",
]


def stack_versions() -> dict[str, str]:
    versions = {}
    for name in STACK:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def about_text() -> str:
    rows = "".join(f"<tr><td>{k}</td><td>&nbsp;{v}</td></tr>" for k, v in stack_versions().items())
    return (
        f"<h3>Whetstone {core.__version__}</h3>"
        "<p>Fine-tune open LLMs on your own machine. Fully offline: nothing leaves this computer.</p>"
        f"<p>Python {platform.python_version()}</p><table>{rows}</table>"
    )
