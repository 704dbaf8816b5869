"""The import contract, checked on the source (imports inside functions too, which an import-time check cannot
see): core/ never imports Qt, pyqtgraph or desktop/, and the core areas import only downwards:
data | runs -> dedup -> training -> evaluation | export (areas of one layer do not import each other)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# core.runs (the run folder, its events and summary) sits at the bottom beside core.data: it imports no other
# area, and training (which writes runs), evaluation and export (which read them) all build on it.
LAYERS = {
    "core.data": 0,
    "core.runs": 0,
    "core.dedup": 1,
    "core.training": 2,
    "core.evaluation": 3,
    "core.export": 3,
}
GUI = ("PySide6", "shiboken6", "pyqtgraph", "desktop")


def _area(module: str) -> str | None:
    return next((a for a in LAYERS if module == a or module.startswith(a + ".")), None)


def _imports(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _core_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules.append((name, path))
    return modules


def test_core_never_imports_qt_or_the_desktop_anywhere() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for _, path in _core_modules()
        for target, line in _imports(path)
        if target.split(".")[0] in GUI
    ]
    assert not bad, "core/ must not import Qt or desktop/:\n" + "\n".join(bad)


def test_core_areas_import_only_downwards() -> None:
    bad = []
    for name, path in _core_modules():
        mine = _area(name)
        for target, line in _imports(path):
            theirs = _area(target)
            if mine and theirs and mine != theirs and LAYERS[theirs] >= LAYERS[mine]:
                bad.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target} ({theirs})")
    assert not bad, (
        "core areas import only downwards (data|runs -> dedup -> training -> evaluation|export):\n"
        + ("\n".join(bad))
    )


def test_the_checker_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from PySide6.QtCore import QObject\n    import core.export.api\n")
    assert ("PySide6.QtCore", 2) in _imports(probe) and ("core.export.api", 3) in _imports(probe)
