-- The workspace schema version 1, verbatim from core/data/workspace.py at commit 357515d
-- (git show 357515d:core/data/workspace.py). Used to build v1 fixtures for the migration tests.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS examples (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    pos REAL NOT NULL,
    messages BLOB NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    split TEXT,
    notes TEXT NOT NULL DEFAULT '',
    source_format TEXT NOT NULL,
    extra BLOB,
    original BLOB,
    line INTEGER,
    user_preview TEXT NOT NULL DEFAULT '',
    assistant_preview TEXT NOT NULL DEFAULT '',
    issues TEXT NOT NULL DEFAULT '',
    tokens INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0,
    modified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS examples_pos ON examples(pos);
-- Covers the table's row summaries, so reopening reads this index, not the message blobs.
CREATE INDEX IF NOT EXISTS examples_summary ON examples(
    deleted, pos, id, user_preview, assistant_preview, split, tags, tokens, issues
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
