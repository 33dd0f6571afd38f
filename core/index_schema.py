"""The library index's SQLite schema: the photos table, full-text search, and upgrades."""

from __future__ import annotations

import contextlib
import logging
import sqlite3

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
"""1: the first; 2: adds ``confidence`` (older rows keep NULL there); 3: adds ``unsaved``;
4: adds ``alternatives`` (the model's other candidates; older rows keep NULL there)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,      -- os.fsencode(resolved absolute path): any name round-trips
    size INTEGER NOT NULL,          -- the photo's size and mtime when its row was written
    mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'pending', 'failed')),
    caption TEXT,
    store TEXT,                     -- "txt", "xmp" or "embed": where the caption is kept
    store_path BLOB,                -- the sidecar, or the photo itself
    model TEXT,                     -- the model that wrote the caption; NULL when not known
    error TEXT,                     -- why it failed, for status 'failed'
    updated REAL NOT NULL,          -- seconds since the epoch
    confidence REAL,                -- the model's confidence in [0, 1]; NULL: typed or unknown
    alternatives TEXT               -- JSON list of the model's other candidates; NULL: none
);
"""
_UNSAVED_SCHEMA = """
CREATE TABLE IF NOT EXISTS unsaved (
    path BLOB PRIMARY KEY,          -- as photos.path
    caption TEXT NOT NULL,          -- a caption made or typed that could not be saved
    typed INTEGER NOT NULL,         -- 1: written or changed by a person; 0: the model's
    store TEXT,                     -- where it was to be saved
    error TEXT,                     -- why it was not saved, readable
    model TEXT,                     -- the model that made it; NULL when typed
    confidence REAL,                -- the model's confidence; NULL when typed or unknown
    updated REAL NOT NULL
);
"""
"""Captions that exist nowhere else: kept until saved somewhere or discarded by the user."""
_FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS captions_fts
    USING fts5(caption, tokenize = 'porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS photos_fts_insert AFTER INSERT ON photos BEGIN
    INSERT INTO captions_fts(rowid, caption)
        SELECT new.id, new.caption WHERE new.status = 'done' AND new.caption IS NOT NULL;
END;
CREATE TRIGGER IF NOT EXISTS photos_fts_update AFTER UPDATE ON photos BEGIN
    DELETE FROM captions_fts WHERE rowid = old.id;
    INSERT INTO captions_fts(rowid, caption)
        SELECT new.id, new.caption WHERE new.status = 'done' AND new.caption IS NOT NULL;
END;
CREATE TRIGGER IF NOT EXISTS photos_fts_delete AFTER DELETE ON photos BEGIN
    DELETE FROM captions_fts WHERE rowid = old.id;
END;
"""


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``script`` (which opens a transaction) and commit it, or roll it all back."""
    try:
        conn.executescript(script + "COMMIT;")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def photo_columns(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA table_info(photos)")}


def create_or_upgrade(conn: sqlite3.Connection) -> None:
    """Create the table, or bring an older index up to SCHEMA_VERSION, in one transaction.

    BEGIN IMMEDIATE takes the write lock, which also proves nobody else holds it, and makes
    the column check and the change one step even when two programs open the file at once.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_SCHEMA)
        conn.execute(_UNSAVED_SCHEMA)
        if "confidence" not in photo_columns(conn):  # made by schema version 1
            conn.execute("ALTER TABLE photos ADD COLUMN confidence REAL")
            log.info("Library index upgraded: captions' confidences are kept from now on")
        if "alternatives" not in photo_columns(conn):  # made by schema version 3 or older
            conn.execute("ALTER TABLE photos ADD COLUMN alternatives TEXT")
            log.info("Library index upgraded: the model's alternative captions are kept")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def try_fts(conn: sqlite3.Connection) -> bool:
    try:
        run_script(conn, "BEGIN IMMEDIATE;" + _FTS_SCHEMA)
    except sqlite3.OperationalError as error:
        if "fts5" not in str(error).lower():
            raise
        log.warning(
            "This Python's SQLite has no FTS5 full-text search; searching captions by "
            "substring instead (slower, simpler ranking)."
        )
        return False
    return True
