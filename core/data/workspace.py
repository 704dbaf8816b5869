"""DatasetWorkspace: one SQLite file (WAL) holding a dataset while it is curated.

Every edit is its own committed transaction, so a crash or kill -9 loses nothing. Every change goes through
`apply(op)`, which returns the inverse operation (the desktop's QUndoStack stores both), and each change to
an example is written to its edit history. Removed rows go to a recoverable bin (`deleted = 1`).

Other areas add their own tables to `.conn`, prefixed `dedup_` / `review_`.

Reads are lazy: opening loads only the small per-row summary (previews, split, tags, tokens, issues);
full messages are decoded on demand. Substring search runs over an in-memory lowercase copy of each row's
text, built on first use.

A change of many rows can run in a worker thread as a `BackgroundChange`, through a second handle with its
own connection, while this one keeps answering reads (and refuses changes until it has finished).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

from core import paths
from core.atomic import atomic_open
from core.data.example import SPLITS, Example, Message
from core.data.formats import (
    LineError,
    ReadResult,
    RecordError,
    original_is_derivable,
    parse_fixed_line,
    stream_dataset,
    validate_example,
    write_dataset,
)
from core.diskspace import DiskFullError, check_space, disk_full_message, is_disk_full
from core.errors import UserError
from core.gcpause import cyclic_gc_paused
from core.progress import ProgressFn, StopFn, check_stop, no_progress

if TYPE_CHECKING:
    from core.data.mapping import ColumnMapping

SUFFIX = ".wsdb"
SCHEMA_VERSION = 2  # raising it: add the step to core/data/migrations.py (MIGRATIONS) and a test fixture
SYNCHRONOUS = "FULL"  # see _connect
PREVIEW_CHARS = 160
PAGE_SIZE = 16384  # messages are ~0.5-10 KB: bigger pages mean fewer overflow pages to write and read
_STOP_EVERY_ROWS = 500  # rows imported between two should_stop() checks (well under a second on a laptop)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
-- One narrow row per example: what the table shows and what curation changes (split, tags, tokens, bin).
-- SQLite rewrites a whole record on any update, so the large texts live apart in `contents` (same rowid):
-- moving 100k rows between splits then rewrites a few MB, not every conversation.
CREATE TABLE IF NOT EXISTS examples (
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
);
CREATE INDEX IF NOT EXISTS examples_live ON examples(deleted, pos);
CREATE INDEX IF NOT EXISTS examples_pos ON examples(pos);
CREATE TABLE IF NOT EXISTS contents (
    rowid INTEGER PRIMARY KEY,  -- = examples.rowid
    messages BLOB NOT NULL,
    extra BLOB,
    original BLOB
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY,
    example_id TEXT NOT NULL,
    op TEXT NOT NULL,
    before BLOB,
    after BLOB,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS history_example ON history(example_id);
CREATE TABLE IF NOT EXISTS bad_lines (
    rowid INTEGER PRIMARY KEY,
    line INTEGER NOT NULL,
    message TEXT NOT NULL,
    raw TEXT NOT NULL DEFAULT '',
    fixed_id TEXT
);
"""


# --- operations (each has an inverse) ---------------------------------------------------------------------
@dataclass
class Operation:
    """Base class of invertible workspace changes; `description` names it in the undo menu."""

    description: str = ""


@dataclass
class ReplaceExamples(Operation):
    """Replace whole examples (edit, tags, splits, notes): {id: example}."""

    examples: dict[str, Example] = field(default_factory=dict)


@dataclass
class SetFields(Operation):
    """Change curation fields (split, tags, notes) without touching messages: {id: {field: value}}."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class SetDeleted(Operation):
    ids: list[str] = field(default_factory=list)
    deleted: bool = True


@dataclass
class InsertExamples(Operation):
    """Insert examples at positions (rows that do not exist yet)."""

    examples: list[Example] = field(default_factory=list)
    positions: list[float] = field(default_factory=list)
    fixed_issue: int | None = None  # the bad line this insert fixes


@dataclass
class PurgeExamples(Operation):
    """Remove rows entirely (the inverse of an insert)."""

    ids: list[str] = field(default_factory=list)
    unfix_issue: int | None = None


@dataclass
class SetTestLock(Operation):
    locked: bool = True


@dataclass
class Batch(Operation):
    operations: list[Operation] = field(default_factory=list)


DISCARDED = ""  # bad_lines.fixed_id of a line the user discarded (the row stays, so undo lists it again)


@dataclass
class SetBadLines(Operation):
    """Set bad lines' fixed_id, {rowid: value}: DISCARDED takes a line off the Issues list, None lists it."""

    values: dict[int, str | None] = field(default_factory=dict)


class _ReadOnlyConnection(sqlite3.Connection):
    """The connection of a read-only workspace: a statement that would change it (from any area: dedup decisions,
    review votes) is refused with the workspace's sentence, not SQLite's 'attempt to write a readonly
    database'."""

    reason = "This workspace is open read-only."
    _WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "DROP", "ALTER", "SAVEPOINT", "BEGIN IMMEDIATE")

    def _check(self, sql: str) -> None:
        head = sql.lstrip().upper()
        creates = head.startswith("CREATE") and "IF NOT EXISTS" not in head[:60]
        if creates or head.startswith(self._WRITES):
            raise UserError(self.reason)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return super().executemany(sql, *args)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        """Schema scripts of other areas (CREATE ... IF NOT EXISTS): tables the file lacks are made as empty
        TEMP tables (so reading them works), indexes are left out; anything else that writes is refused."""
        cursor = self.cursor()
        for statement in sql.split(";"):
            self._check(statement)
            found = re.match(r"\s*CREATE\s+(TABLE|INDEX)\s+IF\s+NOT\s+EXISTS\s+(\w+)", statement, re.I)
            if found is None:
                if statement.strip():
                    super().execute(statement)
                continue
            kind, name = found[1].lower(), found[2]
            exists = (
                super()
                .execute("SELECT 1 FROM sqlite_master WHERE type=? AND name=?", (kind, name))
                .fetchone()
            )
            if not exists and kind == "table":
                super().execute(
                    re.sub(r"CREATE\s+TABLE", "CREATE TEMP TABLE", statement, count=1, flags=re.I)
                )
        return cursor


class NotAWorkspace(UserError):
    """The file is not a Whetstone workspace (or is damaged beyond reading its schema)."""


def _schema_number(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


class _SplitRow:
    """What assigning splits reads of an example (cheaper than a whole Example for 100k rows)."""

    __slots__ = ("id", "tags", "split", "extra")

    def __init__(self, id_: str, tags: list[str], split: str | None) -> None:
        self.id, self.tags, self.split = id_, tags, split
        self.extra: dict[str, Any] = {}


@dataclass
class RowSummary:
    """What the table shows for a row, without decoding its messages."""

    id: str
    user: str
    assistant: str
    split: str | None
    tags: list[str]
    tokens: int | None
    issues: str


@dataclass
class BadLine:
    rowid: int
    line: int
    message: str
    raw: str
    fixed_id: str | None = None


def _preview(text: str) -> str:
    head = text[: PREVIEW_CHARS + 40]
    if "\n" in head or "\r" in head or "\t" in head:
        head = head.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    return head.strip()[:PREVIEW_CHARS]


def _search_text(example: Example) -> str:
    return "\n".join(m.content for m in example.messages).lower()


def workspace_path_for(data_file: str | Path) -> Path:
    """Where the workspace of a data file lives (one per absolute path)."""
    source = Path(data_file).expanduser().resolve()
    digest = hashlib.sha1(str(source).encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", source.stem)[:60] or "dataset"
    return paths.workspaces_dir() / f"{stem}-{digest}{SUFFIX}"


class TextIndex:
    """Lowercase text of every row for substring/regex search.

    Rows are packed into a few large strings (chunks of rows joined by NUL), so a substring search is a
    handful of C-level `str.find` scans instead of 100,000 Python-level tests. Rows changed after packing
    live in `overrides` (None = removed) and are searched one by one."""

    CHUNK = 2048

    def __init__(self, texts: dict[str, str]) -> None:
        self._chunks: list[tuple[list[str], list[int], str]] = []
        items = list(texts.items())
        for start in range(0, len(items), self.CHUNK):
            part = items[start : start + self.CHUNK]
            ids = [i for i, _ in part]
            starts = []
            pos = 0
            for _, text in part:
                starts.append(pos)
                pos += len(text) + 1
            self._chunks.append((ids, starts, "\x00".join(t.replace("\x00", " ") for _, t in part)))
        self.overrides: dict[str, str | None] = {}
        self._where: dict[str, tuple[int, int]] | None = None

    def __setitem__(self, id_: str, text: str) -> None:
        self.overrides[id_] = text

    def pop(self, id_: str, default: object = None) -> None:
        self.overrides[id_] = None

    def get(self, id_: str) -> str | None:
        if id_ in self.overrides:
            return self.overrides[id_]
        if self._where is None:
            self._where = {
                i: (c, r) for c, (ids, _s, _t) in enumerate(self._chunks) for r, i in enumerate(ids)
            }
        where = self._where.get(id_)
        if where is None:
            return None
        ids, starts, text = self._chunks[where[0]]
        r = where[1]
        end = starts[r + 1] - 1 if r + 1 < len(starts) else len(text)
        return text[starts[r] : end]

    def _scan(self, find: Any, verify: Any) -> set[str]:
        hits: set[str] = set()
        overrides = self.overrides
        for ids, starts, text in self._chunks:
            pos = 0
            n = len(ids)
            while True:
                at = find(text, pos)
                if at < 0:
                    break
                r = bisect.bisect_right(starts, at) - 1
                id_ = ids[r]
                if id_ not in overrides and (verify is None or verify(self.get(id_) or "")):
                    hits.add(id_)
                if r + 1 >= n:
                    break
                pos = starts[r + 1]
        for id_, row_text in overrides.items():
            if row_text is not None and (verify or (lambda t: find(t, 0) >= 0))(row_text):
                hits.add(id_)
        return hits

    def find(self, needle: str) -> set[str]:
        """Ids whose text contains `needle` (already lowercased)."""
        if "\x00" in needle:
            needle = needle.replace("\x00", " ")
        return self._scan(lambda text, pos: text.find(needle, pos), None)

    def search(self, pattern: re.Pattern[str]) -> set[str]:
        """Ids whose text matches a compiled regular expression."""

        def find(text: str, pos: int) -> int:
            m = pattern.search(text, pos)
            return -1 if m is None else m.start()

        return self._scan(find, lambda t: pattern.search(t) is not None)


class DatasetWorkspace:
    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self._order: list[str] | None = None  # ids of live rows in file order
        self._summaries: dict[str, RowSummary] = {}
        self._search: TextIndex | None = None  # lowercase text of each row, for search
        self._pending_search: set[str] | None = None  # ids changed while a background index builds
        self._max_pos = 0.0
        self._busy: str | None = None  # what a BackgroundChange is doing to the file (changes wait for it)
        self.read_only: str | None = (
            None  # why changes are refused (a newer Whetstone's workspace), else None
        )
        self.upgraded_from: int | None = None  # the schema this open upgraded the file from
        self.backup_path: Path | None = None  # the copy taken before that upgrade

    # --- opening -----------------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path, page_size: int | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        if page_size:
            conn.execute(f"PRAGMA page_size={int(page_size)}")  # before anything initialises the file
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on the disk (WAL fsynced) before apply() returns, so an edit the UI shows survives
        # a power cut, not only a killed process (NORMAL). Cost at 100k rows: benchmarks/bench_durability.py.
        conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @classmethod
    def open(cls, path: str | Path) -> DatasetWorkspace:
        """Open a workspace. One of an older schema is upgraded in place (after a backup copy beside it, in one
        transaction: see core/data/migrations.py); one of a newer schema opens read-only (`read_only` says
        why, and every change is refused with that sentence)."""
        from core.data import migrations

        file = Path(path).expanduser()
        if not file.exists():
            raise UserError(f"Workspace not found: {file}")
        try:
            conn = cls._connect(file)
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise NotAWorkspace(f"{file} is not a Whetstone workspace ({exc}).") from None
        version = _schema_number(row[0]) if row else None
        if version is None:
            conn.close()
            raise NotAWorkspace(f"{file} is not a Whetstone workspace.")
        upgraded_from: int | None = None
        backup: Path | None = None
        if version > SCHEMA_VERSION:
            conn.close()
            return cls._open_read_only(file, version)
        if version < SCHEMA_VERSION:
            try:
                backup = migrations.upgrade(conn, file, version, SCHEMA_VERSION)
            except BaseException:
                conn.close()
                raise
            upgraded_from = version
        conn.executescript(_SCHEMA)
        ws = cls(file, conn)
        ws.upgraded_from, ws.backup_path = upgraded_from, backup
        row = conn.execute("SELECT MAX(pos) FROM examples").fetchone()
        ws._max_pos = float(row[0] or 0.0)
        return ws

    @classmethod
    def _open_read_only(cls, file: Path, version: int) -> DatasetWorkspace:
        reason = (
            f"{file.name} was saved by a newer Whetstone (workspace version {version}; this one understands "
            f"up to {SCHEMA_VERSION}). It is open read-only: nothing can be changed here. Update Whetstone to "
            "edit it."
        )
        conn = sqlite3.connect(
            f"{file.resolve().as_uri()}?mode=ro",
            uri=True,
            check_same_thread=False,
            factory=_ReadOnlyConnection,
        )
        conn.isolation_level = None
        conn.reason = reason
        ws = cls(file, conn)
        ws.read_only = reason
        try:
            row = conn.execute("SELECT MAX(pos) FROM examples").fetchone()
            ws._max_pos = float(row[0] or 0.0)
        except sqlite3.Error:
            pass
        return ws

    @classmethod
    def create(cls, path: str | Path) -> DatasetWorkspace:
        file = Path(path).expanduser()
        file.parent.mkdir(parents=True, exist_ok=True)
        for extra in ("", "-wal", "-shm"):
            Path(str(file) + extra).unlink(missing_ok=True)
        conn = cls._connect(file, page_size=PAGE_SIZE)
        conn.executescript(_SCHEMA)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (str(time.time()),))
        return cls(file, conn)

    @classmethod
    def create_from_file(
        cls,
        data_file: str | Path,
        workspace_path: str | Path | None = None,
        fmt: str | None = None,
        progress: ProgressFn = no_progress,
        should_stop: StopFn | None = None,
        mapping: ColumnMapping | None = None,
    ) -> DatasetWorkspace:
        """Import a data file into a new workspace (replacing one at `workspace_path`); with `mapping`, the
        file's own columns are read through it (core.data.mapping).

        `should_stop()` is asked every thousand rows or so while the file is read and while its rows are written;
        once it is true this raises Cancelled and leaves nothing behind: the half-built temporary file is
        removed and a workspace already at `workspace_path` is untouched (it is only replaced at the end)."""
        progress(0.0, "Reading")
        if mapping is not None:
            from core.data.mapping import read_mapped

            result = read_mapped(data_file, mapping, should_stop)
            examples: Iterable[Example] = result.examples
            result.examples = []
        else:
            result, examples = stream_dataset(data_file, fmt, should_stop=should_stop)
        target = Path(workspace_path) if workspace_path else workspace_path_for(data_file)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.importing")
        # A workspace takes ~1.4x its data file (measured: 7.9 MB JSONL -> 10.8 MB) plus a few pages.
        needed = int(1.5 * _size(Path(data_file))) + (512 << 10)
        what = f"importing {Path(data_file).name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        check_space(target.parent, needed, what)
        ws: DatasetWorkspace | None = None
        try:
            ws = cls.create(tmp)
            ws._import(result, examples, Path(data_file), progress, should_stop)
            if mapping is not None:
                ws.set_meta("mapping", mapping.to_text())
            # the last moment to stop: after this the new file takes the target's place
            check_stop(should_stop)
            ws.conn.close()
            for extra in ("-wal", "-shm"):
                Path(str(target) + extra).unlink(missing_ok=True)
            os.replace(tmp, target)
        except BaseException as exc:
            if ws is not None:
                ws.conn.close()
            for extra in ("", "-wal", "-shm"):
                Path(str(tmp) + extra).unlink(missing_ok=True)
            if _disk_full(exc):  # nothing was written at the target; an earlier workspace there is untouched
                raise DiskFullError(disk_full_message(target.parent, needed, what)) from exc
            raise
        progress(0.95, "Opening")
        opened = cls.open(target)
        opened._search = ws._search  # the text index built while importing
        progress(1.0, "Done")
        return opened

    def _import(
        self,
        result: ReadResult,
        examples: Iterable[Example],
        source: Path,
        progress: ProgressFn = no_progress,
        should_stop: StopFn | None = None,
    ) -> None:
        size = max(1, source.stat().st_size) if source.exists() else 1
        done_bytes = 0
        texts: dict[str, str] = {}
        self.conn.execute("PRAGMA journal_mode=OFF")  # a fresh temp file: no journal needed while filling
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("BEGIN")
        batch: list[tuple[Any, ...]] = []
        rowid = 0
        for ex in examples:
            if original_is_derivable(ex):
                ex.original = None
            rowid += 1
            row = self._row(ex, float(ex.line or 0))
            batch.append((rowid, *row))
            texts[ex.id] = _search_text(ex)
            done_bytes += len(row[2]) + 40
            if rowid % _STOP_EVERY_ROWS == 0:
                check_stop(should_stop)
                progress(min(0.9, 0.9 * done_bytes / size), f"{len(texts):,} examples")
            if len(batch) >= 5000:
                self._insert_rows(batch)
                batch = []
        self._insert_rows(batch)
        self.conn.executemany(
            "INSERT INTO bad_lines (line, message, raw) VALUES (?,?,?)",
            [(e.line, e.message, e.raw) for e in result.errors],
        )
        meta = {
            "source": str(source.expanduser().resolve()),
            "source_stamp": _file_stamp(source),
            "format": result.format,
            "file_type": result.file_type,
            "confidence": str(result.confidence),
            "imported": str(time.time()),
            "detected": orjson.dumps(result.detected).decode(),
        }
        self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)", list(meta.items()))
        self.conn.execute("COMMIT")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        self._search = TextIndex(texts)

    def _insert_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert (rowid, *_row(...)) tuples into both tables."""
        self.conn.executemany(
            "INSERT INTO examples (rowid, id, pos, tags, split, notes, source_format, line, user_preview,"
            " assistant_preview, issues, modified) VALUES (?,?,?,?,?,?,?,?,?,?,?,0)",
            [(r[0], r[1], r[2], r[4], r[5], r[6], r[7], r[10], r[11], r[12], r[13]) for r in rows],
        )
        self.conn.executemany(
            "INSERT INTO contents (rowid, messages, extra, original) VALUES (?,?,?,?)",
            [(r[0], r[3], r[8], r[9]) for r in rows],
        )

    @staticmethod
    def _row(ex: Example, pos: float) -> tuple[Any, ...]:
        dumps = orjson.dumps
        user = assistant = ""
        for m in ex.messages:
            if m.role == "user":
                user = m.content
                break
        for m in reversed(ex.messages):
            if m.role == "assistant":
                assistant = m.content
                break
        return (
            ex.id,
            pos,
            dumps([m.to_dict() for m in ex.messages]),
            dumps(ex.tags).decode(),
            ex.split,
            ex.notes,
            ex.source_format,
            dumps(ex.extra) if ex.extra else None,
            dumps(ex.original) if ex.original is not None else None,
            ex.line,
            _preview(user),
            _preview(assistant),
            "; ".join(validate_example(ex)),
        )

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass

    def __enter__(self) -> DatasetWorkspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- metadata ----------------------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._check_idle()
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, value))

    @property
    def source_format(self) -> str:
        return self.meta("format") or "messages"

    @property
    def source_changed(self) -> bool:
        """True when the imported data file changed on disk after the import (the workspace keeps its own
        copy and edits; importing again is the user's choice)."""
        source = self.meta("source")
        stamp = self.meta("source_stamp")
        if not source or not stamp or not Path(source).exists():
            return False
        return _file_stamp(Path(source)) != stamp

    @property
    def test_locked(self) -> bool:
        return self.meta("test_locked") == "1"

    # --- reading -----------------------------------------------------------------------------------
    def _load_summaries(self) -> None:
        order: list[str] = []
        summaries: dict[str, RowSummary] = {}
        loads = orjson.loads
        for id_, user, assistant, split, tags, tokens, issues in self.conn.execute(
            "SELECT id, user_preview, assistant_preview, split, tags, tokens, issues FROM examples"
            " WHERE deleted=0 ORDER BY pos, rowid"
        ):
            order.append(id_)
            summaries[id_] = RowSummary(
                id_, user, assistant, split, loads(tags) if tags != "[]" else [], tokens, issues
            )
        self._order = order
        self._summaries = summaries

    def ids(self) -> list[str]:
        """Ids of the live rows in file order (cached)."""
        if self._order is None:
            self._load_summaries()
        assert self._order is not None
        return self._order

    def summary(self, id_: str) -> RowSummary:
        if self._order is None:
            self._load_summaries()
        return self._summaries[id_]

    def count(self) -> int:
        return len(self.ids())

    def _example_from_row(self, row: Sequence[Any]) -> Example:
        (id_, messages, tags, split, notes, source_format, extra, original, line) = row
        loads = orjson.loads
        return Example(
            messages=[Message.from_dict(m) for m in loads(messages)],
            id=id_,
            tags=loads(tags),
            split=split,
            notes=notes,
            source_format=source_format,
            extra=loads(extra) if extra else {},
            original=loads(original) if original is not None else None,
            line=line,
        )

    _COLUMNS = "e.id, c.messages, e.tags, e.split, e.notes, e.source_format, c.extra, c.original, e.line"
    _JOINED = "examples e JOIN contents c ON c.rowid = e.rowid"

    def get(self, id_: str, include_deleted: bool = False) -> Example:
        row = self.conn.execute(
            f"SELECT {self._COLUMNS} FROM {self._JOINED} WHERE e.id=?"
            + ("" if include_deleted else " AND e.deleted=0"),
            (id_,),
        ).fetchone()
        if row is None:
            raise KeyError(id_)
        return self._example_from_row(row)

    def get_many(self, ids: Sequence[str], include_deleted: bool = False) -> list[Example]:
        found: dict[str, Example] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT {self._COLUMNS} FROM {self._JOINED} WHERE e.id IN ({marks})"
                + ("" if include_deleted else " AND e.deleted=0"),
                chunk,
            ):
                found[row[0]] = self._example_from_row(row)
        return [found[i] for i in ids if i in found]

    def examples(self, split: str | None = None) -> list[Example]:
        """Live examples in file order (optionally one split)."""
        sql = f"SELECT {self._COLUMNS} FROM {self._JOINED} WHERE e.deleted=0"
        args: tuple[Any, ...] = ()
        if split is not None:
            sql += " AND e.split=?"
            args = (split,)
        return [self._example_from_row(r) for r in self.conn.execute(sql + " ORDER BY e.pos, e.rowid", args)]

    def deleted_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM examples WHERE deleted=1 ORDER BY pos")]

    def history(self, id_: str) -> list[dict[str, Any]]:
        """The edit history of one example, oldest first."""
        out = []
        for seq, op, before, after, at in self.conn.execute(
            "SELECT seq, op, before, after, at FROM history WHERE example_id=? ORDER BY seq", (id_,)
        ):
            out.append(
                {
                    "seq": seq,
                    "op": op,
                    "before": orjson.loads(before) if before else None,
                    "after": orjson.loads(after) if after else None,
                    "at": at,
                }
            )
        return out

    def last_edit(self) -> int:
        """The sequence number of the latest recorded edit (0 before any): a view that remembers it can tell
        whether someone else changed the workspace since."""
        return int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM history").fetchone()[0])

    def edited_since(self, seq: int, messages_only: bool = False) -> set[str]:
        """Ids of the examples edited after edit number `seq` (see last_edit); with `messages_only`, only those
        whose conversation changed (a split, tag or note change leaves their token count as it was)."""
        rows = self.conn.execute("SELECT example_id, before, after FROM history WHERE seq > ?", (seq,))
        if not messages_only:
            return {r[0] for r in rows}
        changed = set()
        for id_, before, after in rows:
            new = orjson.loads(after) if after else {}
            old = orjson.loads(before) if before else {}
            if "messages" in new and new.get("messages") != old.get("messages"):
                changed.add(id_)
        return changed

    def bad_lines(self, include_fixed: bool = False) -> list[BadLine]:
        sql = "SELECT rowid, line, message, raw, fixed_id FROM bad_lines"
        if not include_fixed:
            sql += " WHERE fixed_id IS NULL"
        return [BadLine(*r) for r in self.conn.execute(sql + " ORDER BY line")]

    def tags(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for id_ in self.ids():
            for t in self._summaries[id_].tags:
                counts[t] = counts.get(t, 0) + 1
        return dict(sorted(counts.items()))

    def split_counts(self) -> dict[str, int]:
        counts = {s: 0 for s in (*SPLITS, "none")}
        for id_ in self.ids():
            counts[self._summaries[id_].split or "none"] += 1
        return counts

    def aggregates(self) -> dict[str, Any]:
        """One pass over the row summaries: {"tags": {tag: n}, "splits": {split: n}, "balance": {tag: {split:
        n}}, "tokens": [counts known]} (the page refreshes all of these after each edit)."""
        splits = {k: 0 for k in (*SPLITS, "none")}
        balance: dict[str, dict[str, int]] = {}
        tokens: list[int] = []
        ids = self.ids()  # (re)loads the summaries first
        summaries = self._summaries
        for id_ in ids:
            s = summaries[id_]
            split = s.split or "none"
            splits[split] += 1
            for t in s.tags or ("(untagged)",):
                row = balance.get(t)
                if row is None:
                    row = balance[t] = {k: 0 for k in (*SPLITS, "none")}
                row[split] += 1
            if s.tokens is not None:
                tokens.append(s.tokens)
        balance = dict(sorted(balance.items()))
        tags = {t: sum(row.values()) for t, row in balance.items() if t != "(untagged)"}
        return {"tags": tags, "splits": splits, "balance": balance, "tokens": tokens}

    def deleted_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM examples WHERE deleted=1").fetchone()[0])

    def balance(self) -> dict[str, dict[str, int]]:
        """{tag (or '(untagged)'): {split: count}} for the tag/split balance view."""
        table: dict[str, dict[str, int]] = {}
        for id_ in self.ids():
            s = self._summaries[id_]
            for t in s.tags or ["(untagged)"]:
                row = table.setdefault(t, {k: 0 for k in (*SPLITS, "none")})
                row[s.split or "none"] += 1
        return dict(sorted(table.items()))

    # --- search ------------------------------------------------------------------------------------
    def build_search_index(self, should_stop: StopFn | None = None) -> None:
        if self._search is None:
            self._search = read_search_texts(self.path, should_stop)

    @property
    def search_ready(self) -> bool:
        return self._search is not None

    def begin_background_index(self) -> None:
        """Start tracking edits while another thread runs `read_search_texts(self.path)`."""
        self._pending_search = set()

    def install_search_index(self, index: TextIndex) -> None:
        """Adopt an index built in another thread, refreshing rows changed since it started."""
        pending = self._pending_search or set()
        self._pending_search = None
        for id_ in pending:
            row = self.conn.execute(
                f"SELECT c.messages, e.deleted FROM {self._JOINED} WHERE e.id=?", (id_,)
            ).fetchone()
            if row is None or row[1]:
                index.pop(id_)
            else:
                index[id_] = "\n".join(m.get("content") or "" for m in orjson.loads(row[0])).lower()
        self._search = index

    def filter(
        self,
        text: str = "",
        regex: bool = False,
        split: str | None = None,
        tag: str | None = None,
        min_tokens: int | None = None,
        max_tokens: int | None = None,
        has_issues: bool | None = None,
        ids: Sequence[str] | None = None,
        max_length: int | None = None,
    ) -> list[str]:
        """Ids of live rows (file order) matching every given criterion. `split='none'` = unassigned.
        With `max_length`, rows longer than it count as having an issue.

        `text` is a case-insensitive substring, or a regular expression with `regex=True`."""
        live = self.ids()  # (re)loads the summaries first
        rows = list(ids) if ids is not None else live
        summaries = self._summaries
        if split is not None:
            want = None if split == "none" else split
            rows = [i for i in rows if summaries[i].split == want]
        if tag is not None:
            rows = [i for i in rows if tag in summaries[i].tags]
        if min_tokens is not None:
            rows = [i for i in rows if (summaries[i].tokens or 0) >= min_tokens]
        if max_tokens is not None:
            rows = [i for i in rows if (summaries[i].tokens or 0) <= max_tokens]
        if has_issues is not None:
            limit = max_length if max_length is not None else 1 << 62
            rows = [
                i
                for i in rows
                if (bool(summaries[i].issues) or (summaries[i].tokens or 0) > limit) == has_issues
            ]
        if text:
            self.build_search_index()
            assert self._search is not None
            if regex:
                flags = 0 if text == text.lower() else re.IGNORECASE  # the index holds lowercase text
                try:
                    pattern = re.compile(text, flags)
                except re.error as exc:
                    raise UserError(f"Invalid regular expression: {exc}") from None
                hits = self._search.search(pattern)
            else:
                hits = self._search.find(text.lower())
            rows = [i for i in rows if i in hits]
        return rows

    # --- changing ----------------------------------------------------------------------------------
    @property
    def busy(self) -> str | None:
        """What a running BackgroundChange is doing (None when none runs)."""
        return self._busy

    def _check_idle(self) -> None:
        if self.read_only is not None:
            raise UserError(self.read_only)
        if self._busy is not None:
            raise UserError(f"The workspace is busy ({self._busy}); try again when that has finished.")

    def background_change(
        self, description: str, change: Callable[[DatasetWorkspace], Operation]
    ) -> BackgroundChange:
        """Prepare `change(handle)` to run in a worker thread (see BackgroundChange); from now until its
        `finish()`, changes through this handle raise UserError."""
        return BackgroundChange(self, description, change)

    def apply(self, op: Operation) -> Operation:
        """Apply one change in one committed transaction; return the operation that undoes it."""
        self._check_idle()
        if self._pending_search is not None:
            self._pending_search.update(_op_ids(op))
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            inverse = self._apply(op)
            self.conn.execute("COMMIT")
        except BaseException as exc:
            self.conn.execute("ROLLBACK")
            self._order = None  # caches may hold part of the change: rebuild them from the file
            self._search = None
            if _disk_full(exc):  # the change is rolled back; every earlier edit is in the file
                raise DiskFullError(disk_full_message(self.path.parent, None, "saving this change")) from exc
            raise
        return inverse

    def _record_history(self, id_: str, op: str, before: Example | None, after: Example | None) -> None:
        self.conn.execute(
            "INSERT INTO history (example_id, op, before, after, at) VALUES (?,?,?,?,?)",
            (
                id_,
                op,
                orjson.dumps(_history_view(before)) if before else None,
                orjson.dumps(_history_view(after)) if after else None,
                time.time(),
            ),
        )

    def _apply(self, op: Operation) -> Operation:
        if isinstance(op, Batch):
            inverses = [self._apply(o) for o in op.operations]
            return Batch(op.description, list(reversed(inverses)))
        if isinstance(op, ReplaceExamples):
            before = {e.id: e for e in self.get_many(list(op.examples), include_deleted=True)}
            missing = set(op.examples) - set(before)
            if missing:
                raise UserError(f"No such example: {sorted(missing)[0]}")
            if self.test_locked:
                for id_, new in op.examples.items():
                    old_split = before[id_].split
                    if old_split != new.split and "test" in (old_split, new.split):
                        raise UserError(
                            "The test split is locked: examples cannot move into or out of it "
                            "(it is the honest yardstick for evaluation)."
                        )
            for id_, new in op.examples.items():
                row = self._row(new, 0.0)
                same_text = before[id_].messages_dicts() == new.messages_dicts()
                self.conn.execute(
                    "UPDATE examples SET tags=?, split=?, notes=?, user_preview=?, assistant_preview=?, issues=?,"
                    " modified=1, tokens=CASE WHEN ? THEN tokens ELSE NULL END WHERE id=?",
                    (row[3], row[4], row[5], row[10], row[11], row[12], same_text, id_),
                )
                self.conn.execute(
                    "UPDATE contents SET messages=?, extra=? WHERE rowid=(SELECT rowid FROM examples WHERE id=?)",
                    (row[2], row[7], id_),
                )
                self._record_history(id_, op.description or "edit", before[id_], new)
                self._refresh_row(id_)
            return ReplaceExamples(op.description, before)
        if isinstance(op, SetFields):
            return self._set_fields(op)
        if isinstance(op, SetDeleted):
            flag = 1 if op.deleted else 0
            changed = [
                r[0]
                for r in self.conn.execute(
                    f"SELECT id FROM examples WHERE deleted=? AND id IN ({','.join('?' * len(op.ids))})",
                    (1 - flag, *op.ids),
                )
            ]
            self.conn.executemany("UPDATE examples SET deleted=? WHERE id=?", [(flag, i) for i in changed])
            for id_ in changed:
                self._record_history(id_, "delete" if op.deleted else "restore", None, None)
            self._order = None
            return SetDeleted(op.description, changed, not op.deleted)
        if isinstance(op, InsertExamples):
            start = int(self.conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM examples").fetchone()[0])
            rows = [
                (start + i, *self._row(ex, pos))
                for i, (ex, pos) in enumerate(zip(op.examples, op.positions, strict=True), 1)
            ]
            self._insert_rows(rows)
            self.conn.executemany("UPDATE examples SET modified=1 WHERE rowid=?", [(r[0],) for r in rows])
            for ex in op.examples:
                self._record_history(ex.id, "insert", None, ex)
                if self._search is not None:
                    self._search[ex.id] = _search_text(ex)
            if op.fixed_issue is not None:
                self.conn.execute(
                    "UPDATE bad_lines SET fixed_id=? WHERE rowid=?", (op.examples[0].id, op.fixed_issue)
                )
            self._max_pos = max([self._max_pos, *op.positions])
            self._order = None
            return PurgeExamples(op.description, [e.id for e in op.examples], op.fixed_issue)
        if isinstance(op, PurgeExamples):
            examples = self.get_many(op.ids, include_deleted=True)
            positions = [
                self.conn.execute("SELECT pos FROM examples WHERE id=?", (e.id,)).fetchone()[0]
                for e in examples
            ]
            self.conn.executemany(
                "DELETE FROM contents WHERE rowid=(SELECT rowid FROM examples WHERE id=?)",
                [(e.id,) for e in examples],
            )
            self.conn.executemany("DELETE FROM examples WHERE id=?", [(e.id,) for e in examples])
            for ex in examples:
                self._record_history(ex.id, "purge", ex, None)
                if self._search is not None:
                    self._search.pop(ex.id, None)
            if op.unfix_issue is not None:
                self.conn.execute("UPDATE bad_lines SET fixed_id=NULL WHERE rowid=?", (op.unfix_issue,))
            self._order = None
            return InsertExamples(op.description, examples, positions, op.unfix_issue)
        if isinstance(op, SetBadLines):
            old_ids: dict[int, str | None] = {}
            for rowid in op.values:
                found = self.conn.execute("SELECT fixed_id FROM bad_lines WHERE rowid=?", (rowid,)).fetchone()
                if found is not None:
                    old_ids[rowid] = found[0]
            self.conn.executemany(
                "UPDATE bad_lines SET fixed_id=? WHERE rowid=?",
                [(value, rowid) for rowid, value in op.values.items() if rowid in old_ids],
            )
            return SetBadLines(op.description, old_ids)
        if isinstance(op, SetTestLock):
            was = self.test_locked
            self.set_meta("test_locked", "1" if op.locked else "0")
            return SetTestLock(op.description, was)
        raise TypeError(f"unknown operation {op!r}")

    _FIELDS = ("split", "tags", "notes")

    def _set_fields(self, op: SetFields) -> Operation:
        ids = list(op.values)
        old: dict[str, dict[str, Any]] = {}
        keys = set().union(*op.values.values()) if op.values else set()
        if self._order is not None and keys <= {"split", "tags"}:
            # The in-memory summaries hold these fields already: no need to read them back.
            summaries = self._summaries
            ids_missing = [i for i in ids if i not in summaries]
            old = {
                i: {"split": summaries[i].split, "tags": list(summaries[i].tags)}
                for i in ids
                if i in summaries
            }
            ids = ids_missing
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            for id_, split, tags, notes in self.conn.execute(
                f"SELECT id, split, tags, notes FROM examples WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                old[id_] = {"split": split, "tags": orjson.loads(tags), "notes": notes}
        missing = set(op.values) - set(old)
        if missing:
            raise UserError(f"No such example: {sorted(missing)[0]}")
        locked = self.test_locked
        updates: dict[str, list[tuple[Any, str]]] = {f: [] for f in self._FIELDS}
        history = []
        inverse: dict[str, dict[str, Any]] = {}
        now = time.time()
        for id_, change in op.values.items():
            before = old[id_]
            for key, value in change.items():
                if key not in self._FIELDS:
                    raise ValueError(f"SetFields cannot change '{key}'")
                if key == "split":
                    if value is not None and value not in SPLITS:
                        raise UserError(f"Unknown split '{value}' (choose from {', '.join(SPLITS)}).")
                    if locked and before["split"] != value and "test" in (before["split"], value):
                        raise UserError(
                            "The test split is locked: examples cannot move into or out of it "
                            "(it is the honest yardstick for evaluation)."
                        )
                updates[key].append((orjson.dumps(value).decode() if key == "tags" else value, id_))
            inverse[id_] = {k: before[k] for k in change}
            history.append(
                (
                    id_,
                    op.description or "set " + ",".join(change),
                    orjson.dumps(inverse[id_]),
                    orjson.dumps(change),
                    now,
                )
            )
        for key, rows in updates.items():
            if rows:
                self.conn.executemany(f"UPDATE examples SET {key}=?, modified=1 WHERE id=?", rows)
        self.conn.executemany(
            "INSERT INTO history (example_id, op, before, after, at) VALUES (?,?,?,?,?)", history
        )
        if self._order is not None:
            for id_, change in op.values.items():
                summary = self._summaries.get(id_)
                if summary is not None:
                    if "split" in change:
                        summary.split = change["split"]
                    if "tags" in change:
                        summary.tags = list(change["tags"])
        return SetFields(op.description, inverse)

    def _refresh_row(self, id_: str) -> None:
        if self._order is None:
            return
        row = self.conn.execute(
            "SELECT e.user_preview, e.assistant_preview, e.split, e.tags, e.tokens, e.issues, c.messages,"
            f" e.deleted FROM {self._JOINED} WHERE e.id=?",
            (id_,),
        ).fetchone()
        if row is None or row[7]:
            self._order = None
            return
        user, assistant, split, tags, tokens, issues, messages, _ = row
        self._summaries[id_] = RowSummary(id_, user, assistant, split, orjson.loads(tags), tokens, issues)
        if self._search is not None:
            self._search[id_] = "\n".join(m.get("content") or "" for m in orjson.loads(messages)).lower()

    # --- convenience wrappers (each returns the inverse operation) ----------------------------------
    def update_example(self, example: Example, description: str = "Edit example") -> Operation:
        return self.apply(ReplaceExamples(description, {example.id: example}))

    def delete(self, ids: Iterable[str]) -> Operation:
        return self.apply(SetDeleted("Delete", list(ids), True))

    def restore(self, ids: Iterable[str]) -> Operation:
        return self.apply(SetDeleted("Restore", list(ids), False))

    def _replace_many(self, description: str, changed: list[Example]) -> Operation:
        return self.apply(ReplaceExamples(description, {e.id: e for e in changed}))

    def set_split(self, ids: Iterable[str], split: str | None) -> Operation:
        if split is not None and split not in SPLITS:
            raise UserError(f"Unknown split '{split}' (choose from {', '.join(SPLITS)}).")
        return self.apply(SetFields(f"Move to {split or 'no split'}", {i: {"split": split} for i in ids}))

    def add_tag(self, ids: Iterable[str], tag: str) -> Operation:
        tag = tag.strip()
        if not tag:
            raise UserError("A tag cannot be empty.")
        values = {}
        for id_ in ids:
            tags = self.summary(id_).tags
            if tag not in tags:
                values[id_] = {"tags": [*tags, tag]}
        return self.apply(SetFields(f"Tag '{tag}'", values))

    def remove_tag(self, ids: Iterable[str], tag: str) -> Operation:
        values = {}
        for id_ in ids:
            tags = self.summary(id_).tags
            if tag in tags:
                values[id_] = {"tags": [t for t in tags if t != tag]}
        return self.apply(SetFields(f"Untag '{tag}'", values))

    def _position_after(self, id_: str) -> float:
        pos = self.conn.execute("SELECT pos FROM examples WHERE id=?", (id_,)).fetchone()[0]
        nxt = self.conn.execute("SELECT MIN(pos) FROM examples WHERE pos>?", (pos,)).fetchone()[0]
        return (pos + nxt) / 2 if nxt is not None else pos + 1.0

    def new_id(self) -> str:
        while True:
            candidate = Example(messages=[]).id
            if not self.conn.execute("SELECT 1 FROM examples WHERE id=?", (candidate,)).fetchone():
                return candidate

    def duplicate(self, ids: Iterable[str]) -> Operation:
        """Copy each example right after itself (the copy is not in the locked test split)."""
        copies, positions = [], []
        for ex in self.get_many(list(ids)):
            pos = self._position_after(ex.id)
            copy = Example(
                messages=[Message(m.role, m.content, dict(m.extra)) for m in ex.messages],
                id=self.new_id(),
                tags=list(ex.tags),
                split=None if ex.split == "test" and self.test_locked else ex.split,
                notes=ex.notes,
                source_format=ex.source_format,
                extra=dict(ex.extra),
            )
            # Insert one at a time so consecutive copies get distinct positions.
            self.apply(InsertExamples("", [copy], [pos]))
            copies.append(copy)
            positions.append(pos)
        return PurgeExamples("Duplicate", [c.id for c in copies])

    def add_example(self, example: Example | None = None, after: str | None = None) -> Operation:
        ex = example or Example.chat(("user", ""), ("assistant", ""))
        if self.conn.execute("SELECT 1 FROM examples WHERE id=?", (ex.id,)).fetchone():
            ex.id = self.new_id()
        pos = self._position_after(after) if after else self._max_pos + 1.0
        return self.apply(InsertExamples("Add example", [ex], [pos]))

    def fix_bad_line(self, rowid: int, text: str) -> Operation:
        """Re-validate a bad line the user edited; when it is valid now, add it at its place in the file."""
        self._check_idle()
        row = self.conn.execute("SELECT line, fixed_id FROM bad_lines WHERE rowid=?", (rowid,)).fetchone()
        if row is None:
            raise UserError("That issue does not exist.")
        if row[1]:
            raise UserError("That line was fixed already.")
        line = int(row[0])
        mapping = self.meta("mapping")
        try:
            if mapping:  # a file read through its own columns: the fixed row is read the same way
                from core.data.mapping import ColumnMapping, parse_mapped_line

                example = parse_mapped_line(text, ColumnMapping.parse(mapping), self.source_format)
            else:
                example = parse_fixed_line(text, self.source_format)
        except RecordError as exc:
            self.conn.execute("UPDATE bad_lines SET raw=?, message=? WHERE rowid=?", (text, str(exc), rowid))
            raise
        example.line = line
        if self.conn.execute("SELECT 1 FROM examples WHERE id=?", (example.id,)).fetchone():
            example.id = self.new_id()
        if self.test_locked and example.split == "test":
            example.split = None
        return self.apply(InsertExamples(f"Fix line {line}", [example], [line - 0.5], rowid))

    def discard_bad_lines(self, rowids: Iterable[int]) -> Operation:
        """Take bad lines off the Issues list (undoable: the inverse lists them again)."""
        chosen = list(rowids)
        plural = "s" if len(chosen) != 1 else ""
        return self.apply(
            SetBadLines(f"Discard {len(chosen):,} bad line{plural}", dict.fromkeys(chosen, DISCARDED))
        )

    def convertible_bad_lines(self) -> list[tuple[BadLine, Example]]:
        """Bad lines that are valid records of another supported format (e.g. an alpaca line in a messages
        file), each with the example it becomes."""
        out: list[tuple[BadLine, Example]] = []
        fmt = self.source_format
        for bad in self.bad_lines():
            if not bad.raw.lstrip().startswith("{"):
                continue
            try:
                example = parse_fixed_line(bad.raw, fmt)
            except (RecordError, UserError):
                continue
            out.append((bad, example))
        return out

    def add_convertible_bad_lines(self) -> tuple[Operation, int]:
        """Add every bad line that is a record of another supported format, at its place in the file, in one
        undoable step; returns (inverse, lines added)."""
        self._check_idle()
        found = self.convertible_bad_lines()
        if not found:
            raise UserError("No bad line is a record of another supported format.")
        taken: set[str] = set()
        ops: list[Operation] = []
        for bad, example in found:
            example.line = bad.line
            exists = self.conn.execute("SELECT 1 FROM examples WHERE id=?", (example.id,)).fetchone()
            if exists or example.id in taken:
                example.id = self.new_id()
                while example.id in taken:
                    example.id = self.new_id()
            taken.add(example.id)
            if self.test_locked and example.split == "test":
                example.split = None
            ops.append(InsertExamples(f"Add line {bad.line}", [example], [bad.line - 0.5], bad.rowid))
        plural = "s" if len(ops) != 1 else ""
        return self.apply(Batch(f"Add {len(ops):,} line{plural} of another format", ops)), len(ops)

    def assign_splits(
        self,
        ratios: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        stratify_by: str | None = None,
        lock_test: bool = True,
    ) -> Operation:
        """Seeded train/validation/test assignment; rows in a locked test split stay there. Locks the test
        split afterwards (undoing the operation unlocks it again)."""
        from core.data.splits import assign_splits

        if stratify_by in (None, "tag"):
            # Splits and tags are all a split needs: use the in-memory summaries, not the messages.
            examples = cast(
                list[Example], [_SplitRow(s.id, s.tags, s.split) for s in map(self.summary, self.ids())]
            )
        else:
            examples = self.examples()
        if self.test_locked:
            # Locked test rows stay; no other row may join the test split.
            free = [e for e in examples if e.split != "test"]
            kept = ratios[0] + ratios[1]
            ratios = (ratios[0] / kept, ratios[1] / kept, 0.0) if kept > 0 else (1.0, 0.0, 0.0)
        else:
            free = examples
        mapping = assign_splits(free, ratios, seed, stratify_by, keep_locked_test=False)
        values = {e.id: {"split": mapping[e.id]} for e in free if mapping.get(e.id) != e.split}
        ops: list[Operation] = []
        if values:
            ops.append(SetFields("Split", values))
        if lock_test and not self.test_locked:
            ops.append(SetTestLock("Lock test split", True))
        return self.apply(Batch("Assign splits", ops))

    def lock_test_split(self) -> Operation:
        return self.apply(SetTestLock("Lock test split", True))

    def set_token_counts(self, counts: dict[str, int], model: str = "") -> None:
        """Cache token counts (not an undoable edit: they are derived data)."""
        self._check_idle()
        self.conn.execute("BEGIN")
        self.conn.executemany("UPDATE examples SET tokens=? WHERE id=?", [(n, i) for i, n in counts.items()])
        if model:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('token_model', ?)", (model,))
        self.conn.execute("COMMIT")
        for id_, n in counts.items():
            summary = self._summaries.get(id_)
            if summary is not None:
                summary.tokens = n

    # --- writing out -------------------------------------------------------------------------------
    def snapshot_bytes(self, split: str | None = None) -> bytes:
        """Rows {"id","messages","split","tags"} in file order, one JSON object a line."""
        fragment = orjson.Fragment
        sql = f"SELECT e.id, c.messages, e.split, e.tags FROM {self._JOINED} WHERE e.deleted=0"
        args: tuple[Any, ...] = ()
        if split is not None:
            sql += " AND e.split=?"
            args = (split,)
        parts = [
            orjson.dumps({"id": id_, "messages": fragment(messages), "split": sp, "tags": fragment(tags)})
            for id_, messages, sp, tags in self.conn.execute(sql + " ORDER BY e.pos, e.rowid", args)
        ]
        return b"\n".join(parts) + (b"\n" if parts else b"")

    def write_snapshot(self, out_path: str | Path) -> str:
        """Write the training snapshot (JSONL rows {id, messages, split, tags}); return its sha256."""
        data = self.snapshot_bytes()
        with atomic_open(out_path, "wb", encoding=None) as handle:
            handle.write(data)
        return hashlib.sha256(data).hexdigest()

    def export(self, path: str | Path, fmt: str | None = None, split: str | None = None) -> Any:
        """Export live rows as `fmt` (default: the imported format). Returns core.data.formats.WriteResult."""
        return write_dataset(self.examples(split), path, fmt or self.source_format)

    def stats(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "examples": self.count(),
            "deleted": len(self.deleted_ids()),
            "bad_lines": len(self.bad_lines()),
            "splits": self.split_counts(),
            "tags": self.tags(),
            "test_locked": self.test_locked,
            "format": self.source_format,
        }

    def import_errors(self) -> list[LineError]:
        return [LineError(b.line, b.message, b.raw) for b in self.bad_lines()]


class BackgroundChange:
    """One change of many rows made in a worker thread while the workspace stays readable in its own thread.

    A sqlite3 connection belongs to one thread at a time, and the UI keeps reading through the workspace's
    connection while the change runs. So `run()`, in the worker, opens the file again (its own connection),
    loads the row summaries there and makes the change in its usual committed transaction(s); meanwhile the
    workspace reads the last committed state (WAL) and refuses changes (UserError: one writer at a time).
    `finish()`, back in the workspace's thread, hands the handle's up-to-date row summaries and changed
    search texts to the workspace: a reference swap, however many rows changed. Call it after `run()`
    returned or raised (it also ends the refusal). After a change that succeeded, `aggregates` holds the
    workspace's `aggregates()` as committed, computed in the worker too.

        job = ws.background_change("Assign splits", lambda w: w.assign_splits(seed=1))
        inverse = job.run()   # in a worker thread
        job.finish()          # in ws's thread
    """

    def __init__(
        self, workspace: DatasetWorkspace, description: str, change: Callable[[DatasetWorkspace], Operation]
    ) -> None:
        workspace._check_idle()
        workspace._busy = description
        self.workspace = workspace
        self.description = description
        self.change = change
        self.aggregates: dict[str, Any] | None = None
        self._handle: DatasetWorkspace | None = None

    def run(self, progress: ProgressFn = no_progress, should_stop: StopFn | None = None) -> Operation:
        """Make the change through a second handle; return its inverse operation. Safe in a worker thread."""
        with cyclic_gc_paused():
            return self._run(progress, should_stop)

    def _run(self, progress: ProgressFn, should_stop: StopFn | None) -> Operation:
        progress(0.0, "Reading rows")
        handle = DatasetWorkspace.open(self.workspace.path)
        handle._search = TextIndex({})  # collects the texts the change adds, edits or removes ...
        handle._pending_search = set()  # ... and the ids of every row it touches
        self._handle = handle
        try:
            handle.ids()  # the summaries the change reads, and keeps up to date as it goes
            check_stop(should_stop)
            progress(0.2, self.description)
            inverse = self.change(handle)
            progress(0.95, "Counting")
            self.aggregates = handle.aggregates()
            return inverse
        finally:
            try:
                handle.ids()  # as committed: changes that add or remove rows (or fail) drop them
            except sqlite3.Error:
                handle._order = None
            handle.close()
            progress(1.0, "Done")

    def finish(self) -> None:
        """Adopt the handle's row caches into the workspace (in the workspace's thread, after `run()`)."""
        ws, handle = self.workspace, self._handle
        ws._busy = None
        self._handle = None
        if handle is None:
            return
        if handle._order is not None:
            ws._order, ws._summaries = handle._order, handle._summaries
        else:
            ws._order = None
        ws._max_pos = max(ws._max_pos, handle._max_pos)
        if ws._pending_search is not None and handle._pending_search:
            ws._pending_search.update(handle._pending_search)
        if handle._search is None:  # a failed change drops the texts it collected, as apply() does
            ws._search = None
        elif ws._search is not None:
            for id_, text in handle._search.overrides.items():
                if text is None:
                    ws._search.pop(id_)
                else:
                    ws._search[id_] = text


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC from Python, or SQLite's SQLITE_FULL ("database or disk is full")."""
    return is_disk_full(exc) or (isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc))


def _file_stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def _op_ids(op: Operation) -> set[str]:
    if isinstance(op, Batch):
        return set().union(*(_op_ids(o) for o in op.operations)) if op.operations else set()
    if isinstance(op, ReplaceExamples):
        return set(op.examples)
    if isinstance(op, SetFields):
        return set()  # no text change
    if isinstance(op, SetDeleted | PurgeExamples):
        return set(op.ids)
    if isinstance(op, InsertExamples):
        return {e.id for e in op.examples}
    return set()


def read_search_texts(path: str | Path, should_stop: StopFn | None = None) -> TextIndex:
    """Lowercase text of every live row, read over a separate connection (safe in a worker thread)."""
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        loads = orjson.loads
        texts: dict[str, str] = {}
        for n, (id_, messages) in enumerate(
            conn.execute(
                "SELECT e.id, c.messages FROM examples e JOIN contents c ON c.rowid = e.rowid WHERE e.deleted=0"
            )
        ):
            texts[id_] = "\n".join(m.get("content") or "" for m in loads(messages)).lower()
            if n % 5000 == 0:
                check_stop(should_stop)
        return TextIndex(texts)
    finally:
        conn.close()


def _history_view(example: Example) -> dict[str, Any]:
    return {
        "messages": example.messages_dicts(),
        "tags": example.tags,
        "split": example.split,
        "notes": example.notes,
        "extra": example.extra,
    }


def open_for_path(
    path: str | Path, progress: ProgressFn = no_progress, should_stop: StopFn | None = None
) -> DatasetWorkspace:
    """A .wsdb opens directly; a data file creates its workspace, or reopens it when it exists. Importing
    stops with Cancelled once `should_stop()` is true, leaving no workspace file behind."""
    file = Path(path).expanduser()
    if file.suffix == SUFFIX:
        return DatasetWorkspace.open(file)
    if not file.exists():
        raise UserError(f"File not found: {file}")
    target = workspace_path_for(file)
    if target.exists():
        try:
            return DatasetWorkspace.open(target)
        except NotAWorkspace:
            # Damaged beyond reading: import again, keeping the damaged file beside it (nothing deleted).
            # Any other failure (an upgrade that could not run, a full disk) reaches the user instead.
            os.replace(target, backup_name(target, "damaged"))
            for extra in ("-wal", "-shm"):
                Path(str(target) + extra).unlink(missing_ok=True)
    return DatasetWorkspace.create_from_file(file, target, progress=progress, should_stop=should_stop)


def remove_workspace_file(path: str | Path) -> None:
    """Delete a workspace file with its -wal and -shm companions (those not there are skipped)."""
    for extra in ("", "-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)


def staging_path_for(target: str | Path) -> Path:
    """Where a workspace that is to replace `target` is built first (hidden, beside it): reading a file again
    builds there, so the workspace in use stays whole until the new one is complete."""
    target = Path(target)
    return target.with_name(f".{target.name}.new{SUFFIX}")


def replace_workspace(built: DatasetWorkspace, target: str | Path) -> DatasetWorkspace:
    """Move `built` (a complete workspace, e.g. at `staging_path_for(target)`) onto `target` and open it there,
    keeping the row summaries and search index it has loaded. Every other handle on `target` must be closed
    first (a closing handle would remove the -wal file of the new one). `built` is closed."""
    file = Path(target)
    order, summaries, search = built._order, built._summaries, built._search
    built.close()
    for extra in ("-wal", "-shm"):
        Path(str(file) + extra).unlink(missing_ok=True)
    os.replace(built.path, file)
    opened = DatasetWorkspace.open(file)
    if order is not None:
        opened._order, opened._summaries = order, summaries
    opened._search = search
    return opened


def backup_name(file: Path, label: str) -> Path:
    """A free name beside `file`: NAME.LABEL, NAME.LABEL-2, ..."""
    base = file.with_name(f"{file.name}.{label}")
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path
