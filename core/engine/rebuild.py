"""Rebuilding the library index from the captions the stores hold."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core import library
from core.engine.job import EventHandler, PhotoFailed, RunProgress, ignore
from core.engine.plan import PhotoFacts, adopted_row, first_caption
from core.engine.upkeep import prune_missing, read_stores, stores_by_kind
from core.engine.writer import Writer
from core.errors import PhotoScribeError
from core.index import LibraryIndex
from core.library import ScanProblem
from core.storage import LOOKUP_ORDER, FileIdentity, XmpName

PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True, kw_only=True)
class RebuildSummary:
    """The outcome of rebuilding the index from the stores."""

    indexed: int  # photos with a caption, now recorded
    uncaptioned: int  # photos without a caption in any store
    failed: int  # photos whose stores could not be read
    problems: tuple[ScanProblem, ...]
    seconds: float
    cancelled: bool


def rebuild_index(
    roots: tuple[Path, ...],
    recursive: bool = True,
    *,
    index_path: Path | None = None,
    xmp_name: XmpName = "photo.jpg.xmp",
    cancel: threading.Event | None = None,
    on_event: EventHandler | None = None,
    lock_timeout: float | None = None,
    writer: Writer | None = None,
) -> RebuildSummary:
    """Record in the index the captions the stores hold for the photos under ``roots``.

    The stores are the source of truth: each photo's caption is read from them (embedded,
    XMP sidecar, text sidecar, in that order) and its row replaced; rows of photos that no
    longer have a caption, or no longer exist, are removed. A damaged index file is moved aside
    first (an IndexReplaced event says so). Use it after the index was lost, or to make photos
    captioned by other programs searchable. Rows are written through ``writer`` (the process's
    writer thread; without one, a writer of its own for ``index_path``).
    """
    cancel = cancel or threading.Event()
    emit = on_event or ignore
    own = writer is None
    if writer is None:
        writer = Writer(index_path, lock_timeout=lock_timeout)
    stores = stores_by_kind(xmp_name)
    t0 = last = time.monotonic()
    indexed = uncaptioned = failed = 0
    problems: list[ScanProblem] = []
    complete = False
    reader: LibraryIndex | None = None
    try:
        replaced = writer.open_index()
        if replaced is not None:
            emit(replaced)
        reader = LibraryIndex.open(writer.index_path, readonly=True)
        for found in library.scan_library(roots, recursive):
            if cancel.is_set():
                break
            if isinstance(found, ScanProblem):
                if found.kind == "folder":
                    problems.append(found)
                else:
                    failed += 1
                emit(found)
                continue
            try:
                stored = read_stores(found.path, LOOKUP_ORDER, stores, strict=True)
            except PhotoScribeError as error:
                failed += 1
                emit(PhotoFailed(found.path, str(error)))
                continue
            row = reader.lookup(found.path)
            held = first_caption(stored)
            if held is None:
                uncaptioned += 1
                if row is not None and row.status != "failed":
                    writer.forget(found.path)
            else:
                indexed += 1
                facts = PhotoFacts(found.path, FileIdentity(found.size, found.mtime_ns), row)
                writer.record(adopted_row(facts, held[1], held[0]))
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                done = indexed + uncaptioned + failed
                emit(
                    RunProgress(
                        done=done,
                        total=None,
                        captioned=0,
                        skipped=done,
                        failed=failed,
                        elapsed=last - t0,
                        rate=0.0,
                    )
                )
        else:
            complete = True
        if complete:
            writer.with_index(lambda index: prune_missing(index, roots, recursive)).result()
        writer.flush()
    finally:
        if reader is not None:
            reader.close()
        if own:
            writer.close()
    return RebuildSummary(
        indexed=indexed,
        uncaptioned=uncaptioned,
        failed=failed,
        problems=tuple(problems),
        seconds=time.monotonic() - t0,
        cancelled=not complete,
    )
