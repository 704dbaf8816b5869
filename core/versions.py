"""Installed versions of the ML stack, read from package metadata (nothing is imported)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

ML_STACK = (
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
    "liger-kernel",
)


def package_versions(names: tuple[str, ...] | list[str] = ML_STACK) -> dict[str, str | None]:
    """{distribution name: version, or None when it is not installed}."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found
