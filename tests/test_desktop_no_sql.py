"""A checked convention: desktop/ runs no SQL. The workspace's tables are read and written only through
DatasetWorkspace (core/data/workspace.py) and the core classes built on it (core/dedup's
`DecisionStore.for_workspace`, `EmbeddingCache.for_workspace`), so a view never holds a sqlite connection."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQL_CALLS = {"execute", "executemany", "executescript", "cursor"}  # sqlite3.Connection / Cursor methods


def sql_uses(source: str, name: str = "<source>") -> list[str]:
    """Where `source` imports sqlite3, calls a sqlite connection's SQL methods, or reaches for a workspace's
    connection (`.conn`), as 'line: what'."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            found += [
                f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] == "sqlite3"
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlite3":
            found.append(f"{node.lineno}: from {node.module} import")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_CALLS
        ):
            found.append(f"{node.lineno}: .{node.func.attr}(…)")
        elif isinstance(node, ast.Attribute) and node.attr == "conn":
            found.append(f"{node.lineno}: .conn")
    return sorted(found, key=lambda where: int(where.split(":")[0]))


def test_the_check_finds_sql() -> None:
    source = (
        "import sqlite3\n"
        "def last(page):\n"
        "    conn = page.workspace.conn\n"
        "    return conn.execute('SELECT MAX(seq) FROM history').fetchone()[0]\n"
        "def rows(c):\n"
        "    return c.cursor()\n"
    )
    assert sql_uses(source) == ["1: import sqlite3", "3: .conn", "4: .execute(…)", "6: .cursor(…)"]
    assert sql_uses("def last(ws):\n    return ws.last_edit()\n") == []


def test_desktop_runs_no_sql() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{where}"
        for path in sorted((ROOT / "desktop").rglob("*.py"))
        for where in sql_uses(path.read_text(encoding="utf-8"), str(path))
    ]
    assert not bad, (
        "desktop/ must not run SQL; add a DatasetWorkspace (or core) method instead:\n" + "\n".join(bad)
    )
