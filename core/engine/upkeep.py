"""Helpers the run and the rebuild share: reading the stores, index upkeep, clean-up."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from core.errors import FileMissingError, StorageError
from core.index import IndexEntry, LibraryIndex
from core.storage import CaptionStore, StoreKind, XmpName, all_stores
from core.storage.files import TEMP_PREFIX, TEMP_SUFFIX

log = logging.getLogger(__name__)


def stores_by_kind(xmp_name: XmpName) -> dict[StoreKind, CaptionStore]:
    return {store.name: store for store in all_stores(xmp_name)}


def read_stores(
    photo: Path,
    kinds: Iterable[StoreKind],
    stores: Mapping[StoreKind, CaptionStore],
    required: StoreKind | None = None,
    *,
    strict: bool = False,
) -> dict[StoreKind, str | None]:
    """What each of ``kinds`` holds for ``photo``; each store read once.

    A store that cannot be read is logged and counts as empty, except ``required`` (the store
    a run saves to: without knowing what it holds, saving could overwrite it), whose error is
    raised; with ``strict`` (rebuilding the index), so is the first error when no store read
    has a caption. Without it, a photo whose own metadata cannot be read is captioned like one
    without a caption when its captions go elsewhere. A missing photo raises FileMissingError.
    """
    if not photo.is_file():
        raise FileMissingError(
            photo, "the photo is no longer there; it may have been moved, renamed or deleted."
        )
    found: dict[StoreKind, str | None] = {}
    first_error: StorageError | None = None
    for kind in kinds:
        try:
            found[kind] = stores[kind].read(photo)
        except StorageError as error:
            if kind == required:
                raise
            log.warning("Could not read the %s caption of %s: %s", kind, photo, error)
            first_error = first_error or error
            found[kind] = None
    if strict and first_error is not None and not any(c is not None for c in found.values()):
        raise first_error
    return found


def store_still_there(
    photo: Path, row: IndexEntry, stores: Mapping[StoreKind, CaptionStore]
) -> bool:
    """Whether the file the row says holds the caption is still there (one stat or two).

    For "embed" that is the photo itself, whose size and time the row was checked against.
    """
    if row.store_path is not None:
        return os.path.isfile(row.store_path)
    if row.store is None:
        return True
    return any(os.path.isfile(f) for f in stores[row.store].files(photo))


def remove_stale_temp_files(index: LibraryIndex, started_wall: float) -> None:
    """Clean up after a run that was killed while writing: its temporary files.

    Pending rows say which folders it was writing in; their captions are adopted or redone
    as the scan reaches them (see core.engine.plan).
    """
    folders: set[Path] = set()
    for entry in index.entries("pending"):
        folders.add(entry.path.parent)
    for folder in folders:
        try:
            with os.scandir(folder) as scan:
                stale = [
                    Path(e.path)
                    for e in scan
                    if e.name.startswith(TEMP_PREFIX)
                    and e.name.endswith(TEMP_SUFFIX)
                    and e.stat(follow_symlinks=False).st_mtime < started_wall
                ]
        except OSError as error:
            log.debug("Could not look for temporary files in %s: %s", folder, error)
            continue
        for temp in stale:
            with contextlib.suppress(OSError):
                temp.unlink()
                log.warning("Removed %s, left by a run that was stopped while saving", temp)


def prune_missing(index: LibraryIndex, roots: Iterable[Path], recursive: bool) -> None:
    """Forget photos under the scanned folders that are no longer there."""
    for root in roots:
        root = Path(os.path.realpath(root))
        if not root.is_dir():
            continue
        gone = [
            entry.path
            for entry in index.entries_under(root)
            if (recursive or entry.path.parent == root) and not os.path.lexists(entry.path)
        ]
        for path in gone:
            index.forget(path)
        # A caption kept unsaved goes with its photo (it was for that photo alone).
        for kept in index.unsaved_entries(root):
            if (recursive or kept.path.parent == root) and not os.path.lexists(kept.path):
                index.drop_unsaved(kept.path)
        if gone:
            log.info("Forgot %d photos no longer under %s", len(gone), root)
    index.commit()
