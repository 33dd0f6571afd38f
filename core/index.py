"""The library index: an SQLite file recording every photo's caption, store and status."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

import platformdirs

from core.datatypes import StoreKind
from core.errors import IndexDamagedError, IndexLockedError, LibraryIndexError
from core.index_schema import (
    SCHEMA_VERSION,
    create_or_upgrade,
    photo_columns,
    try_fts,
)

log = logging.getLogger(__name__)

INDEX_ENV = "PHOTOSCRIBE_INDEX"
"""Environment variable naming the index file (tests and portable installs use it)."""
INDEX_FILE_NAME = "library.sqlite3"
LOCK_TIMEOUT_S = 5.0
"""How long to wait for another program's write to the index before giving up."""

RowStatus = Literal["done", "pending", "failed"]
"""done: the caption is in its store; pending: about to be written to the store (a run that
stops here left it unknown whether the write happened); failed: see ``error``."""

_UPSERT = """
INSERT INTO photos (path, size, mtime_ns, status, caption, store, store_path, model, error,
                    updated, confidence)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (path) DO UPDATE SET
    size = excluded.size, mtime_ns = excluded.mtime_ns, status = excluded.status,
    caption = excluded.caption, store = excluded.store, store_path = excluded.store_path,
    model = excluded.model, error = excluded.error, updated = excluded.updated,
    confidence = excluded.confidence
"""
_KEEP = """
INSERT INTO unsaved (path, caption, typed, store, error, model, confidence, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (path) DO UPDATE SET
    caption = excluded.caption, typed = excluded.typed, store = excluded.store,
    error = excluded.error, model = excluded.model, confidence = excluded.confidence,
    updated = excluded.updated
"""
_UNSAVED_COLUMNS = "path, caption, typed, store, error, model, confidence, updated"
_BASE_COLUMNS = "path, size, mtime_ns, status, caption, store, store_path, model, error, updated"

# Words too common in captions to narrow a search ("a dog on the beach").
STOP_WORDS = frozenset(
    "a an the on in of at to with and or by for from is are its it into near next over under "
    "some".split()
)


def default_index_path() -> Path:
    """$PHOTOSCRIBE_INDEX, else library.sqlite3 in the platform's user data folder."""
    override = os.environ.get(INDEX_ENV)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path("PhotoScribe", appauthor=False) / INDEX_FILE_NAME


@dataclass(frozen=True, kw_only=True)
class IndexEntry:
    """One photo's row in the index; ``path`` is the photo's resolved absolute path."""

    path: Path
    size: int
    mtime_ns: int
    status: RowStatus
    caption: str | None = None
    store: StoreKind | None = None
    store_path: Path | None = None
    model: str | None = None
    error: str | None = None
    updated: float = 0.0
    confidence: float | None = None  # the model's, in [0, 1]; None: typed by a person, or unknown

    def same_file(self, size: int, mtime_ns: int) -> bool:
        """True when the photo on disk still has the size and mtime this row recorded."""
        return self.size == size and self.mtime_ns == mtime_ns


@dataclass(frozen=True, kw_only=True)
class UnsavedCaption:
    """A caption that could not be saved (refused, read-only, disk full), kept in the index
    until it is saved somewhere or the user discards it: it exists nowhere else."""

    path: Path
    caption: str
    typed: bool  # written or changed by a person (never replaced by a generated caption)
    store: StoreKind | None = None  # where it was to be saved
    error: str | None = None  # why it was not saved, readable
    model: str | None = None
    confidence: float | None = None
    updated: float = 0.0


@dataclass(frozen=True, kw_only=True)
class SearchHit:
    """A photo whose caption matches a search, best matches first."""

    path: Path
    caption: str
    store: StoreKind | None
    rank: float  # lower is better (SQLite's bm25 is negative for good matches)
    store_path: Path | None = None  # the file holding the caption, when the index knows it
    confidence: float | None = None  # the model's confidence in the caption, when known


def resolved(path: Path) -> Path:
    """The absolute path with every symbolic link resolved: two spellings of one photo (a
    relative path, a link to its folder) give one key, so one row."""
    return Path(os.path.realpath(path))


def path_key(path: Path) -> bytes:
    return os.fsencode(resolved(path))


def _path(key: bytes | None) -> Path | None:
    return Path(os.fsdecode(key)) if key is not None else None


def folder_range(folder: Path) -> tuple[bytes, bytes]:
    """Keys k with low <= k < high are exactly the paths inside ``folder`` (any depth)."""
    prefix = os.fsencode(resolved(folder))
    sep = os.fsencode(os.sep)
    if not prefix.endswith(sep):
        prefix += sep
    return prefix, prefix[:-1] + bytes([prefix[-1] + 1])


class LibraryIndex:
    """One connection to the index file; use it only from the thread that opened it.

    Open one writer per process (``LibraryIndex.open``) and any number of readers
    (``readonly=True``); SQLite's write-ahead log lets readers work while a run writes.
    Changes are grouped: ``put``/``forget`` queue them, ``commit`` writes them in one
    transaction. The index only mirrors the stores: every caption in it is also in a sidecar
    or a photo, so a damaged index can be thrown away and rebuilt (see core.engine.rebuild).
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        readonly: bool,
        fts: bool,
        has_confidence: bool = True,
        has_unsaved: bool = True,
    ) -> None:
        self.path = path
        self._conn = conn
        self.readonly = readonly
        self.fts = fts  # False when this SQLite lacks FTS5: search falls back to LIKE
        # A reader cannot add the column to an index made before confidences were kept: its
        # rows read as confidence unknown until a writer opens (and upgrades) the file.
        self._confidence = "confidence" if has_confidence else "NULL"
        self._columns = f"{_BASE_COLUMNS}, {self._confidence}"
        self._queued: list[tuple] = []
        self._forget: list[bytes] = []
        # A reader of an index not yet upgraded to keep unsaved captions finds none.
        self._has_unsaved = has_unsaved
        self._unsaved_ops: list[tuple[str, tuple]] = []  # ("keep" | "drop", arguments), in order

    # ---------------------------------------------------------------- opening

    @classmethod
    def open(
        cls, path: Path | None = None, *, readonly: bool = False, timeout: float | None = None
    ) -> LibraryIndex:
        """Open (creating when writable and missing) the index at ``path``.

        Raises IndexDamagedError when the file is not a healthy PhotoScribe index,
        IndexLockedError when another program keeps it locked for longer than ``timeout``
        seconds (default LOCK_TIMEOUT_S), and LibraryIndexError when it cannot be opened at
        all (for a reader: when it does not exist yet).
        """
        path = Path(path) if path is not None else default_index_path()
        timeout = LOCK_TIMEOUT_S if timeout is None else timeout
        if readonly and not path.is_file():
            raise LibraryIndexError(
                path,
                "there is no library index yet: captions are recorded in it when they are "
                "saved, and it can be rebuilt from the captions already stored in your photos.",
                cli_hint="Caption a folder with --write, or run `photoscribe index FOLDER -r`.",
            )
        if not readonly:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise LibraryIndexError(
                    path, f"cannot create the index folder ({error.strerror or error})."
                ) from error
        try:
            if readonly:
                uri = path.resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
            else:
                conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise LibraryIndexError(path, f"cannot open the library index ({error}).") from error
        try:
            fts = cls._prepare(path, conn, readonly)
            has_confidence = "confidence" in photo_columns(conn)
            has_unsaved = (
                conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'unsaved'"
                ).fetchone()
                is not None
            )
        except sqlite3.Error as error:
            conn.close()
            raise _translate(path, error) from error
        except BaseException:
            conn.close()
            raise
        log.info("Opened library index %s%s", path, " (read-only)" if readonly else "")
        return cls(path, conn, readonly, fts, has_confidence, has_unsaved)

    @staticmethod
    def _prepare(path: Path, conn: sqlite3.Connection, readonly: bool) -> bool:
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LibraryIndexError(
                    path,
                    "this library index was made by a newer PhotoScribe; update PhotoScribe, or "
                    "use another index file.",
                    cli_hint="(--index FILE chooses the index file.)",
                )
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            if tables and "photos" not in tables:
                raise LibraryIndexError(
                    path,
                    "this file is not a PhotoScribe library index; choose another file.",
                    cli_hint="(--index FILE chooses the index file.)",
                )
            if readonly:
                return "captions_fts" in tables
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL: a power cut may lose the last transactions, never consistency; the
            # stores hold every caption anyway, so nothing is lost for good.
            conn.execute("PRAGMA synchronous = NORMAL")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise IndexDamagedError(path, f"the library index is damaged ({check}).")
            create_or_upgrade(conn)
            return try_fts(conn)
        except sqlite3.Error as error:
            raise _translate(path, error) from error

    def close(self, *, discard: bool = False) -> None:
        """Commit what is queued (when that fails, log it: the stores hold those captions).

        ``discard`` drops the queued changes instead, as a process killed now would.
        """
        if discard:
            for queue in (self._queued, self._forget, self._unsaved_ops):
                queue.clear()
        if not self.readonly:
            try:
                self.commit()
            except LibraryIndexError as error:
                log.warning("Library index changes not saved: %s", error)
        self._conn.close()

    def __enter__(self) -> LibraryIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- reading

    def lookup(self, photo: Path) -> IndexEntry | None:
        row = self._query(f"SELECT {self._columns} FROM photos WHERE path = ?", (path_key(photo),))
        found = row.fetchone()
        return _entry(found) if found else None

    def entries(self, status: RowStatus | None = None) -> Iterator[IndexEntry]:
        """Every row (optionally of one status), streamed in path order."""
        if status is None:
            cursor = self._query(f"SELECT {self._columns} FROM photos ORDER BY path")
        else:
            cursor = self._query(
                f"SELECT {self._columns} FROM photos WHERE status = ? ORDER BY path", (status,)
            )
        while rows := self._fetch(cursor):
            yield from (_entry(row) for row in rows)

    def entries_under(self, folder: Path) -> Iterator[IndexEntry]:
        """The rows for photos inside ``folder`` at any depth, streamed in path order."""
        low, high = folder_range(folder)
        cursor = self._query(
            f"SELECT {self._columns} FROM photos WHERE path >= ? AND path < ? ORDER BY path",
            (low, high),
        )
        while rows := self._fetch(cursor):
            yield from (_entry(row) for row in rows)

    def count(self, status: RowStatus | None = None) -> int:
        if status is None:
            return self._query("SELECT count(*) FROM photos").fetchone()[0]
        return self._query("SELECT count(*) FROM photos WHERE status = ?", (status,)).fetchone()[0]

    def unsaved(self, photo: Path) -> UnsavedCaption | None:
        """The caption of ``photo`` that could not be saved, if one is kept."""
        if not self._has_unsaved:
            return None
        cursor = self._query(
            f"SELECT {_UNSAVED_COLUMNS} FROM unsaved WHERE path = ?", (path_key(photo),)
        )
        found = cursor.fetchone()
        return _unsaved(found) if found else None

    def unsaved_entries(self, folder: Path | None = None) -> list[UnsavedCaption]:
        """Every caption kept unsaved (within ``folder``, at any depth, when given)."""
        if not self._has_unsaved:
            return []
        if folder is None:
            cursor = self._query(f"SELECT {_UNSAVED_COLUMNS} FROM unsaved ORDER BY path")
        else:
            cursor = self._query(
                f"SELECT {_UNSAVED_COLUMNS} FROM unsaved WHERE path >= ? AND path < ? "
                "ORDER BY path",
                folder_range(folder),
            )
        return [_unsaved(row) for row in cursor.fetchall()]

    def has_unsaved(self) -> bool:
        if not self._has_unsaved:
            return False
        return self._query("SELECT 1 FROM unsaved LIMIT 1").fetchone() is not None

    # ---------------------------------------------------------------- writing

    def keep_unsaved(self, entry: UnsavedCaption) -> None:
        """Queue ``entry`` (replacing any caption kept for the photo) for the next commit."""
        self._unsaved_ops.append(
            (
                "keep",
                (
                    path_key(entry.path),
                    entry.caption,
                    int(entry.typed),
                    entry.store,
                    entry.error,
                    entry.model,
                    entry.confidence,
                    entry.updated or time.time(),
                ),
            )
        )

    def drop_unsaved(self, photo: Path) -> None:
        """Queue the removal of the caption kept for ``photo`` (saved, or discarded)."""
        self._unsaved_ops.append(("drop", (path_key(photo),)))

    def put(self, entry: IndexEntry) -> None:
        """Queue ``entry`` (replacing the photo's row) for the next commit."""
        self._queued.append(
            (
                path_key(entry.path),
                entry.size,
                entry.mtime_ns,
                entry.status,
                entry.caption,
                entry.store,
                path_key(entry.store_path) if entry.store_path is not None else None,
                entry.model,
                entry.error,
                entry.updated or time.time(),
                entry.confidence,
            )
        )

    def forget(self, photo: Path) -> None:
        """Queue the removal of the photo's row for the next commit."""
        self._forget.append(path_key(photo))

    @property
    def queued(self) -> int:
        return len(self._queued) + len(self._forget) + len(self._unsaved_ops)

    def commit(self) -> None:
        """Write everything queued in one transaction (all of it or, on failure, none)."""
        if not self.queued:
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self._forget:
                    self._conn.executemany(
                        "DELETE FROM photos WHERE path = ?", [(k,) for k in self._forget]
                    )
                if self._queued:
                    self._conn.executemany(_UPSERT, self._queued)
                # In the order queued: a caption kept, then saved, ends up dropped.
                for kind, args in self._unsaved_ops:
                    if kind == "drop":
                        self._conn.execute("DELETE FROM unsaved WHERE path = ?", args)
                    else:
                        self._conn.execute(_KEEP, args)
                self._conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise _translate(self.path, error) from error
        log.debug("Index: committed %d rows", self.queued)
        for queue in (self._queued, self._forget, self._unsaved_ops):
            queue.clear()

    # ---------------------------------------------------------------- search

    def search(self, query: str, folder: Path | None = None, limit: int = 50) -> list[SearchHit]:
        """Photos whose captions match ``query``, best first; within ``folder`` when given.

        Photos whose captions hold every word of the query come first, ranked by SQLite FTS5's
        bm25; when there are fewer than ``limit`` of them, photos matching some of the words
        follow. Common words ("a", "on", "the") are ignored when the query has others, and the
        last word also matches as a prefix ("bea" finds "beach"), for search-as-you-type.
        """
        terms = query_terms(query)
        if not terms or limit <= 0:
            return []
        low, high = folder_range(folder) if folder is not None else (b"", b"\xff" * 8)
        if not self.fts:
            return self._search_like(terms, low, high, limit)
        quoted = ['"' + t.replace('"', '""') + '"' for t in terms]
        quoted[-1] += "*"
        hits = self._search_fts(" AND ".join(quoted), low, high, limit, exclude=())
        if len(hits) < limit and len(terms) > 1:
            seen = tuple(str(h.path) for h in hits)
            more = self._search_fts(" OR ".join(quoted), low, high, limit, exclude=seen)
            hits.extend(more[: limit - len(hits)])
        return hits

    def _search_fts(
        self, match: str, low: bytes, high: bytes, limit: int, exclude: Sequence[str]
    ) -> list[SearchHit]:
        cursor = self._query(
            "SELECT p.path, p.caption, p.store, bm25(captions_fts) AS rank, p.store_path, "
            f"p.{self._confidence} "
            "FROM captions_fts JOIN photos AS p ON p.id = captions_fts.rowid "
            "WHERE captions_fts MATCH ? AND p.path >= ? AND p.path < ? AND p.status = 'done' "
            "ORDER BY rank, p.path LIMIT ?",
            (match, low, high, limit + len(exclude)),
        )
        skip = set(exclude)
        hits = []
        for key, caption, store, rank, store_path, confidence in cursor.fetchall():
            path = _path(key)
            assert path is not None
            if str(path) not in skip:
                hits.append(
                    SearchHit(
                        path=path,
                        caption=caption,
                        store=store,
                        rank=float(rank),
                        store_path=_path(store_path),
                        confidence=confidence,
                    )
                )
        return hits[:limit]

    def _search_like(
        self, terms: list[str], low: bytes, high: bytes, limit: int
    ) -> list[SearchHit]:
        # Without FTS5: every word as a substring, shorter (more focused) captions first.
        where = " AND ".join("lower(caption) LIKE ? ESCAPE '\\'" for _ in terms)
        args = [f"%{_like_escape(t)}%" for t in terms]
        cursor = self._query(
            f"SELECT path, caption, store, store_path, {self._confidence} FROM photos "
            f"WHERE status = 'done' AND {where} "
            "AND path >= ? AND path < ? ORDER BY length(caption), path LIMIT ?",
            (*args, low, high, limit),
        )
        return [
            SearchHit(
                path=Path(os.fsdecode(k)),
                caption=c,
                store=s,
                rank=float(i),
                store_path=_path(sp),
                confidence=conf,
            )
            for i, (k, c, s, sp, conf) in enumerate(cursor.fetchall())
        ]

    # ---------------------------------------------------------------- helpers

    def _query(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, args)
        except sqlite3.Error as error:
            raise _translate(self.path, error) from error

    def _fetch(self, cursor: sqlite3.Cursor) -> list[tuple]:
        try:
            return cursor.fetchmany(500)
        except sqlite3.Error as error:
            raise _translate(self.path, error) from error


def search_library(
    query: str,
    folder: Path | None = None,
    limit: int = 50,
    index_path: Path | None = None,
) -> list[SearchHit]:
    """Search the captions of the whole library (or of ``folder``), best matches first.

    Opens the index read-only for this one query, so it can be called from any thread, also
    while a caption run is writing. Photos that are no longer on disk, and captions whose
    sidecar was deleted since (the index is brought up to date by the next run), are left out.
    Raises
    LibraryIndexError when there is no index yet or it cannot be read. Within ``folder`` the
    paths are spelled as ``folder`` is (the index keeps resolved paths).
    """
    folder = Path(os.path.abspath(folder)) if folder is not None else None
    index = LibraryIndex.open(index_path, readonly=True)
    try:
        hits = index.search(query, folder, limit + 20)
    finally:
        index.close()
    if folder is not None:
        real = resolved(folder)
        hits = [
            replace(hit, path=folder / hit.path.relative_to(real))
            if hit.path.is_relative_to(real)
            else hit
            for hit in hits
        ]
    return [
        hit
        for hit in hits
        if os.path.lexists(hit.path) and (hit.store_path is None or hit.store_path.is_file())
    ][:limit]


def query_terms(query: str) -> list[str]:
    """The words of a search, lower case, without common words unless that leaves none."""
    words = re.findall(r"\w+", query.lower())
    useful = [w for w in words if w not in STOP_WORDS]
    return useful or words


def move_aside(path: Path) -> Path:
    """Rename a damaged index (and its -wal and -shm files) out of the way; return the new name.

    Kept rather than deleted, so nothing is destroyed; the stores hold every caption anyway.
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    try:
        os.replace(path, target)
        for suffix in ("-wal", "-shm"):
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                os.replace(extra, target.with_name(target.name + suffix))
    except OSError as error:
        raise LibraryIndexError(
            path,
            f"the library index is damaged and could not be moved aside "
            f"({error.strerror or error}); delete it by hand (your captions are in the stores).",
        ) from error
    log.warning("Moved damaged library index %s to %s", path, target)
    return target


def _entry(row: tuple) -> IndexEntry:
    key, size, mtime_ns, status, caption, store, store_path, model, error, updated, conf = row
    path = _path(key)
    assert path is not None
    return IndexEntry(
        path=path,
        size=size,
        mtime_ns=mtime_ns,
        status=status,
        caption=caption,
        store=store,
        store_path=_path(store_path),
        model=model,
        error=error,
        updated=updated,
        confidence=conf,
    )


def _unsaved(row: tuple) -> UnsavedCaption:
    key, caption, typed, store, error, model, confidence, updated = row
    path = _path(key)
    assert path is not None
    return UnsavedCaption(
        path=path,
        caption=caption,
        typed=bool(typed),
        store=store,
        error=error,
        model=model,
        confidence=confidence,
        updated=updated,
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _translate(path: Path, error: sqlite3.Error) -> LibraryIndexError:
    """sqlite3 errors as errors a user can act on, naming the index file."""
    text = str(error)
    lower = text.lower()
    if "locked" in lower or "busy" in lower:
        return IndexLockedError(
            path,
            "the library index is in use by another program (another PhotoScribe run, or the "
            "app); wait for it to finish and try again. No photo or caption was changed.",
            cli_hint="Or pass --index FILE to use a separate index.",
        )
    if isinstance(error, sqlite3.DatabaseError) and (
        "malformed" in lower
        or "not a database" in lower
        or "corrupt" in lower
        or "no such table" in lower
        or "no such column" in lower
    ):
        return IndexDamagedError(
            path,
            f"the library index is damaged ({text}). Your captions are safe in the photos and "
            "their sidecars, and the index can be rebuilt from them.",
            cli_hint="Run `photoscribe index FOLDER -r` to rebuild it.",
        )
    return LibraryIndexError(path, f"the library index could not be used ({text}).")
