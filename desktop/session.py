"""The open folder: listing its photos and their stored captions, and the threads that work on them.

FolderSession lives on the GUI thread; it and the two objects it builds (desktop.saving.Saver,
desktop.batch.BatchRunner) are the only code that changes PhotoListModel rows. It hands work to
the library pool (scan, caption look-ups), the thumbnail loader, the inference thread and the
writer thread, and takes their results back. The window connects its commands straight to
``saver`` and ``batches``; none of them opens a dialog: they report through signals and the
window decides how to show them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from core.datatypes import Candidate
from core.errors import LibraryIndexError
from core.index import LibraryIndex, UnsavedCaption, default_index_path
from core.isolation import reader_pool
from core.library import find_photos
from core.storage import (
    CaptionStore,
    FileIdentity,
    StorageError,
    StoredCaption,
    XmpName,
    all_stores,
    read_caption_any,
)
from desktop.batch import BatchRunner
from desktop.captioning import CaptionService
from desktop.environment import AppEnvironment
from desktop.photos import Photo, PhotoListModel, thumbnail_pixels
from desktop.saving import OriginalsGuard, Saver, kept_unsaved
from desktop.settings import Settings
from desktop.status import plural, split_error
from desktop.tasks import TaskPool
from desktop.thumbnails import ThumbnailCache, ThumbnailLoader
from desktop.writer import CaptionWriter

log = logging.getLogger(__name__)

LOOKUP_CHUNK = 64  # stored captions found are handed to the GUI thread this many at a time

__all__ = ["FolderSession", "lookup_captions", "plural"]

# A photo, its stored caption, its identity, a problem reading it, the caption's confidence,
# a caption kept in the index because it could not be saved, the different captions other
# stores hold, and the model's other candidates (from the index).
CaptionFound = tuple[
    Path,
    StoredCaption | None,
    FileIdentity | None,
    str | None,
    float | None,
    UnsavedCaption | None,
    tuple[StoredCaption, ...],
    tuple[str, ...],
]


def read_stores(
    path: Path, stores: list[CaptionStore]
) -> tuple[StoredCaption | None, tuple[StoredCaption, ...]]:
    """The caption shown (the first store holding one, as ``read_caption_any`` finds it) and
    the different captions the stores after it hold (a sidecar edited by another program)."""
    found = read_caption_any(path, stores)
    if found is None:
        return None, ()
    kinds = [store.name for store in stores]
    others: list[StoredCaption] = []
    for store in stores[kinds.index(found.store) + 1 :]:
        try:
            caption = store.read(path)
        except StorageError as error:
            log.info("Could not read the %s caption of %s: %s", store.name, path, error)
            continue
        if caption is not None and caption.strip() != found.caption.strip():
            others.append(StoredCaption(caption, store.name))
    return found, tuple(others)


def lookup_captions(
    paths: list[Path],
    xmp_name: XmpName,
    cancel: threading.Event,
    deliver: Callable[[list[CaptionFound]], None],
    index_path: Path | None = None,
) -> None:
    """On a worker thread: each photo's stored caption and identity, delivered in chunks.

    With ``index_path``, also the model's confidence in each caption, from the library index,
    when the index recorded one for this very caption (a caption changed since by hand or by
    another program has none) with the model's other candidates for it, and the caption the
    index keeps for a photo because it could not be saved.
    """
    stores = all_stores(xmp_name)
    index = _open_reader(index_path) if index_path is not None else None
    chunk: list[CaptionFound] = []
    last = time.monotonic()
    try:
        for path in paths:
            if cancel.is_set():
                return
            kept = _kept(index, path) if index is not None else None
            try:
                identity = FileIdentity.of(path)
                found, others = read_stores(path, stores)
                sure, alts = _recorded(index, path, found) if index is not None else (None, ())
                chunk.append((path, found, identity, None, sure, kept, others, alts))
            except StorageError as error:
                chunk.append((path, None, None, str(error), None, kept, (), ()))
            now = time.monotonic()
            if len(chunk) >= LOOKUP_CHUNK or now - last > 0.1:
                deliver(chunk)
                chunk, last = [], now
        if chunk and not cancel.is_set():
            deliver(chunk)
    finally:
        if index is not None:
            index.close()


def _open_reader(index_path: Path) -> LibraryIndex | None:
    """A read-only connection, or None when there is no index (yet) or it cannot be read: the
    captions then show without their confidence."""
    if not index_path.is_file():
        return None
    try:
        return LibraryIndex.open(index_path, readonly=True)
    except LibraryIndexError as error:
        log.info("Captions shown without their confidence: %s", error)
        return None


def _kept(index: LibraryIndex, path: Path) -> UnsavedCaption | None:
    try:
        return index.unsaved(path)
    except LibraryIndexError as error:
        log.warning("Could not look up an unsaved caption of %s: %s", path, error)
        return None


def _recorded(
    index: LibraryIndex, path: Path, found: StoredCaption | None
) -> tuple[float | None, tuple[str, ...]]:
    """The confidence and the alternatives the index recorded with this very caption."""
    if found is None:
        return None, ()
    try:
        row = index.lookup(path)
    except LibraryIndexError as error:
        log.debug("No confidence for %s: %s", path, error)
        return None, ()
    if row is None or row.status != "done" or row.caption is None:
        return None, ()
    if row.caption.strip() != found.caption.strip():
        return None, ()
    return row.confidence, row.alternatives


def _suggestions(caption: str, alternatives: tuple[str, ...]) -> tuple[Candidate, ...]:
    """The stored caption and the model's alternatives as the panel's suggestions (their scores
    were not kept: NaN), or none when the index kept no alternatives."""
    if not alternatives:
        return ()
    return tuple(Candidate(caption=text, score=math.nan) for text in (caption, *alternatives))


def _with_kept(photo: Photo, kept: UnsavedCaption) -> Photo:
    """The photo showing the caption the index kept because it could not be saved."""
    reason = split_error(photo.path, kept.error or "it could not be saved.")
    return kept_unsaved(
        replace(photo, draft=None, typed=False),  # nothing is typed yet at a folder's opening
        reason,
        kept.caption,
        typed=kept.typed,
        confidence=kept.confidence,
    )


class FolderSession(QObject):
    """The photos of one folder at a time, and every thread that works on them."""

    opened = Signal(object)  # folder: its listing has begun (the rows are empty)
    listed = Signal(object, int)  # folder, number of photos: the rows are in the model now
    failed = Signal(str, str)  # title, readable message: something the user must see
    problem_found = Signal(object, str)  # path, message: for the Problems panel
    message_posted = Signal(
        str, int
    )  # status-bar text, how long to show it (ms; 0: until replaced)

    def __init__(
        self,
        env: AppEnvironment,
        settings: Settings,
        guard: OriginalsGuard,
        device_pixel_ratio: float = 1.0,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.env = env
        self.folder: Path | None = None
        self.settings = settings
        self.photos = PhotoListModel(settings, self)
        self.photos.device_pixel_ratio = device_pixel_ratio
        self.library = TaskPool("library", 1, self)
        # A reader process for each thumbnail thread and one for the caption look-ups, so that
        # listing a folder's captions does not wait behind its thumbnails.
        reader_pool().reserve(env.thumbnail_workers + 1)
        self.thumbnails = ThumbnailLoader(
            ThumbnailCache(env.cache_dir),
            env.thumbnail_workers,
            display=thumbnail_pixels(device_pixel_ratio),
            parent=self,
        )
        self.index_path = env.index_path or default_index_path()
        # The process's one writer thread: user saves and the engine's saves alike.
        self.writer = CaptionWriter(self, index_path=self.index_path)
        self.captioning = CaptionService(env.captioner_factory, self, self.writer.core)
        self.saver = Saver(self.photos, self.writer, settings, guard, self)
        self.batches = BatchRunner(env, self.photos, self.captioning, self.saver, settings, self)
        self._generation = 0  # bumped per folder opened; late results of older ones are dropped
        self._scan_cancel: threading.Event | None = None
        self._listing = False
        self._closed = False

        self.photos.thumbnail_requested.connect(self.thumbnails.request)
        self.thumbnails.thumbnail_ready.connect(self.photos.set_thumbnail)
        self.thumbnails.thumbnail_failed.connect(self._thumbnail_failed)
        self.thumbnails.reader_crashed.connect(self.problem_found)
        # A batch's failed saves join the saver's: one summary for all of them.
        self.batches.refused.connect(self.saver.report_refused)

    @property
    def listing(self) -> bool:
        """A folder is open and its photos are not listed yet."""
        return self._listing

    # ================================================================ listing

    def open(self, folder: Path, recursive: bool) -> None:
        """List ``folder``'s photos on the library thread, then look up their captions."""
        if self.batches.cancel():
            self.message_posted.emit("Captioning stopped: another folder was opened.", 5000)
        self._generation += 1
        generation = self._generation
        if self._scan_cancel is not None:
            self._scan_cancel.set()
        cancel = threading.Event()
        self._scan_cancel = cancel
        self.folder = self.batches.folder = folder
        self._listing = True
        self.thumbnails.clear()
        self.photos.set_photos([])
        self.opened.emit(folder)
        self.message_posted.emit(f"Opening {folder}…", 0)

        def scan() -> list[Path]:
            return list(find_photos(folder, recursive))

        def scan_failed(error: BaseException) -> None:
            if generation == self._generation:
                self._listing = False
                self.message_posted.emit("", 0)
                self.failed.emit(f"Cannot open {folder.name}", str(error))

        self.library.submit(
            scan, on_done=lambda paths: self._scanned(generation, paths), on_error=scan_failed
        )

    def _scanned(self, generation: int, paths: list[Path]) -> None:
        if generation != self._generation or self._scan_cancel is None:
            return
        self._listing = False
        self.photos.set_photos(paths)
        n = len(paths)
        self.message_posted.emit(
            f"{plural(n, 'photo')} in {self.folder}" if n else "No photos here.", 5000
        )
        self.listed.emit(self.folder, n)
        self.library.submit(
            lookup_captions,
            paths,
            self.settings.current.xmp_name,
            self._scan_cancel,
            lambda chunk: self.library.post(lambda c: self._captions_found(generation, c), chunk),
            self.index_path,
        )

    def _captions_found(self, generation: int, chunk: list[CaptionFound]) -> None:
        if generation != self._generation:
            return
        stale: list[Path] = []
        for path, found, identity, error, confidence, kept, others, alts in chunk:
            photo = self.photos.photo(path)
            if photo is None or photo.loaded:
                continue  # captioned meanwhile: the batch knows better
            if error is not None:
                # Shown on the photo (badge, tooltip, panel); the Problems panel is for what
                # failed while captioning or saving, which will name this again if it matters.
                photo = replace(photo, loaded=True, error=split_error(path, error))
            else:
                photo = replace(
                    photo,
                    loaded=True,
                    caption=found.caption if found else None,
                    store=found.store if found else None,
                    identity=photo.identity or identity,
                    confidence=confidence,
                    others=others,
                    candidates=_suggestions(found.caption, alts) if found else (),
                )
            if kept is not None and photo.draft is None:
                if found is not None and found.caption.strip() == kept.caption.strip():
                    stale.append(path)  # saved since (by another program?): nothing to keep
                else:
                    photo = _with_kept(photo, kept)
            self.photos.put(photo)
        self.saver.discard_unsaved(stale)

    @Slot(object, str)
    def _thumbnail_failed(self, path: Path, reason: str) -> None:
        log.info("No thumbnail for %s: %s", path, reason)
        self.photos.set_thumbnail_failed(path)

    # ================================================================ quitting

    def shutdown(self) -> None:
        """Cancel the batch and the scan, stop every thread, let the writer finish its queue."""
        if self._closed:
            return
        self._closed = True
        self.batches.closed = True
        self.saver.closed = True  # what fails from now on is kept in the index, not shown
        if self._scan_cancel is not None:
            self._scan_cancel.set()
        self.captioning.shutdown()  # the step in progress finishes; nothing else starts
        self.thumbnails.shutdown()
        self.library.shutdown(wait=True, cancel_pending=True)
        self.writer.shutdown()  # every queued write completes; each one is atomic
