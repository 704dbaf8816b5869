"""About box text: versions of the ML stack, read from package metadata (no heavy imports)."""

from __future__ import annotations

import platform

import core
from core.versions import ML_STACK, package_versions


def stack_versions() -> dict[str, str]:
    found = package_versions(("PySide6-Essentials", *ML_STACK, "pyqtgraph", "pydantic"))
    return {name: value or "not installed" for name, value in found.items()}


def about_text() -> str:
    rows = "".join(f"<tr><td>{k}</td><td>&nbsp;{v}</td></tr>" for k, v in stack_versions().items())
    return (
        f"<h3>Whetstone {core.__version__}</h3>"
        "<p>Fine-tune open LLMs on your own machine. Fully offline: nothing leaves this computer.</p>"
        f"<p>Python {platform.python_version()}</p><table>{rows}</table>"
    )
