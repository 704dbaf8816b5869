"""Numbered schema migrations of the workspace file.

A workspace records its schema version in `meta` ('schema'). Opening one older than SCHEMA_VERSION:
1. copies it, as it is, to a backup beside it (`NAME.wsdb.v1-backup`, kept until the user removes it), through
   SQLite's online backup (a consistent copy, WAL included) into a temp file renamed into place;
2. runs every migration from its version up to SCHEMA_VERSION in ONE transaction, which also sets the new
   version. A crash, kill -9 or full disk before COMMIT leaves the file exactly as it was (SQLite's journal).

Each migration holds its own literal DDL (never the current `_SCHEMA`), so it keeps meaning what it meant when
that version was current. Tables other areas add (`dedup_*`, `review_*`) are carried over untouched.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from core.diskspace import disk_full_message, is_disk_full
from core.errors import UserError, WhetstoneError
from core.testhooks import pause_point

Migration = Callable[[sqlite3.Connection], None]


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """Schema 2 keeps the large texts (messages, extra, original) apart in `contents` (same rowid), so
    changing a split or tag rewrites a narrow row, not the conversation."""
    conn.execute(
        """CREATE TABLE contents (
            rowid INTEGER PRIMARY KEY,
            messages BLOB NOT NULL,
            extra BLOB,
            original BLOB
        )"""
    )
    conn.execute(
        "INSERT INTO contents (rowid, messages, extra, original) SELECT rowid, messages, extra, original FROM examples"
    )
    conn.execute(
        """CREATE TABLE examples_v2 (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            pos REAL NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',
            split TEXT,
            notes TEXT NOT NULL DEFAULT '',
            source_format TEXT NOT NULL,
            line INTEGER,
            user_preview TEXT NOT NULL DEFAULT '',
            assistant_preview TEXT NOT NULL DEFAULT '',
            issues TEXT NOT NULL DEFAULT '',
            tokens INTEGER,
            deleted INTEGER NOT NULL DEFAULT 0,
            modified INTEGER NOT NULL DEFAULT 0
        )"""
    )
    columns = (
        "rowid, id, pos, tags, split, notes, source_format, line, user_preview, assistant_preview, issues,"
        " tokens, deleted, modified"
    )
    conn.execute(f"INSERT INTO examples_v2 ({columns}) SELECT {columns} FROM examples")
    conn.execute("DROP TABLE examples")  # and its indexes (examples_pos, examples_summary)
    conn.execute("ALTER TABLE examples_v2 RENAME TO examples")
    conn.execute("CREATE INDEX examples_live ON examples(deleted, pos)")
    conn.execute("CREATE INDEX examples_pos ON examples(pos)")


# MIGRATIONS[n] upgrades a workspace of schema n to schema n + 1.
MIGRATIONS: dict[int, Migration] = {1: _v1_to_v2}
LATEST = max(MIGRATIONS) + 1


def _copy(source: sqlite3.Connection, dest: sqlite3.Connection) -> None:
    source.backup(dest)


def _backup(conn: sqlite3.Connection, file: Path, version: int) -> Path:
    from core.data.workspace import backup_name

    target = backup_name(file, f"v{version}-backup")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        dest = sqlite3.connect(str(tmp))
        try:
            _copy(conn, dest)
            dest.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dest.close()
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc) or (isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)):
            size = file.stat().st_size
            raise WhetstoneError(
                disk_full_message(file.parent, size, f"the backup taken before upgrading {file.name}")
            ) from exc
        raise
    return target


def upgrade(conn: sqlite3.Connection, file: Path, version: int, latest: int) -> Path:
    """Back the file up, then bring it from `version` to `latest` in one transaction. Returns the backup."""
    missing = [v for v in range(version, latest) if v not in MIGRATIONS]
    if version < 1 or missing:
        raise UserError(f"{file} has workspace version {version}, which this Whetstone cannot upgrade.")
    backup = _backup(conn, file, version)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for v in range(version, latest):
            MIGRATIONS[v](conn)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(latest),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('upgraded_from', ?)", (f"{version}:{backup.name}",))
        pause_point("migration")  # crash tests stop here, inside the transaction
        conn.execute("COMMIT")
    except BaseException as exc:
        conn.execute("ROLLBACK")
        if is_disk_full(exc) or (isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)):
            raise WhetstoneError(
                disk_full_message(
                    file.parent, file.stat().st_size, f"upgrading {file.name} (nothing was changed)"
                )
            ) from exc
        raise
    return backup
