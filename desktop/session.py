"""The open folder and what happens to its photos: listing, stored captions, batches, saves.

FolderSession lives on the GUI thread and is the only code that changes PhotoListModel rows. It
hands work to the library pool (scan, caption look-ups), the thumbnail loader, the inference
thread and the writer thread, and takes their results back. It never opens a dialog: it reports
through signals and the window decides how to show them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from core.errors import StorageError
from core.library import find_photos
from core.storage import FileIdentity, StoredCaption, all_stores, read_caption_any
from desktop.captioning import (
    CaptionOptions,
    CaptionService,
    JobSummary,
    ModelChoice,
    PhotoOutcome,
)
from desktop.environment import AppEnvironment, chosen_weights
from desktop.photos import Photo, PhotoListModel, thumbnail_pixels
from desktop.settings import AppSettings
from desktop.status import split_error
from desktop.tasks import TaskPool
from desktop.thumbnails import ThumbnailCache, ThumbnailLoader
from desktop.writer import CaptionWriter, WriteOutcome, WriteRequest

log = logging.getLogger(__name__)

LOOKUP_CHUNK = 64  # stored captions found are handed to the GUI thread this many at a time

CaptionFound = tuple[Path, StoredCaption | None, FileIdentity | None, str | None]


def lookup_captions(
    paths: list[Path],
    xmp_name: str,
    cancel: threading.Event,
    deliver: Callable[[list[CaptionFound]], None],
) -> None:
    """On a worker thread: each photo's stored caption and identity, delivered in chunks."""
    stores = all_stores(xmp_name)  # type: ignore[arg-type]
    chunk: list[CaptionFound] = []
    last = time.monotonic()
    for path in paths:
        if cancel.is_set():
            return
        try:
            identity = FileIdentity.of(path)
            found = read_caption_any(path, stores)
            chunk.append((path, found, identity, None))
        except StorageError as error:
            chunk.append((path, None, None, str(error)))
        now = time.monotonic()
        if len(chunk) >= LOOKUP_CHUNK or now - last > 0.1:
            deliver(chunk)
            chunk, last = [], now
    if chunk and not cancel.is_set():
        deliver(chunk)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class FolderSession(QObject):
    """The photos of one folder at a time, and every thread that works on them."""

    listed = Signal(object, int)  # folder, number of photos: the rows are in the model now
    failed = Signal(str, str)  # title, readable message: something the user must see
    problem_found = Signal(object, str)  # path, message: for the Problems panel
    message_posted = Signal(
        str, int
    )  # status-bar text, how long to show it (ms; 0 = until replaced)
    batch_started = Signal(int)  # photos queued
    photo_finished = Signal(bool)  # one photo of the batch is done: True captioned, False skipped
    batch_finished = Signal(object)  # JobSummary, once the inference thread has really stopped
    model_load_started = Signal()
    model_loaded = Signal(object)  # ModelInfo

    def __init__(
        self,
        env: AppEnvironment,
        settings: AppSettings,
        device_pixel_ratio: float = 1.0,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.env = env
        self.settings = settings  # replaced by the window when the user changes settings
        self.folder: Path | None = None
        self.photos = PhotoListModel(self)
        self.photos.device_pixel_ratio = device_pixel_ratio
        self.library = TaskPool("library", 1, self)
        self.thumbnails = ThumbnailLoader(
            ThumbnailCache(env.cache_dir),
            env.thumbnail_workers,
            display=thumbnail_pixels(device_pixel_ratio),
            parent=self,
        )
        self.captioning = CaptionService(env.captioner_factory, self)
        self.writer = CaptionWriter(self)
        self._generation = 0  # bumped per folder opened; late results of older ones are dropped
        self._scan_cancel: threading.Event | None = None
        self._job_id: int | None = None  # the batch being shown, until its thread stops
        self._closed = False

        self.photos.thumbnail_requested.connect(self.thumbnails.request)
        self.thumbnails.thumbnail_ready.connect(self.photos.set_thumbnail)
        self.thumbnails.thumbnail_failed.connect(self._thumbnail_failed)
        self.captioning.model_load_started.connect(self.model_load_started)
        self.captioning.model_loaded.connect(self.model_loaded)
        self.captioning.photo_done.connect(self._photo_done)
        self.captioning.job_finished.connect(self._job_finished)
        self.writer.written.connect(self._written)

    # ================================================================ listing

    def open(self, folder: Path, recursive: bool) -> None:
        """List ``folder``'s photos on the library thread, then look up their captions."""
        if self.captioning.busy:
            self.cancel_batch()
            self.message_posted.emit("Captioning stopped: another folder was opened.", 5000)
        self._generation += 1
        generation = self._generation
        if self._scan_cancel is not None:
            self._scan_cancel.set()
        cancel = threading.Event()
        self._scan_cancel = cancel
        self.folder = folder
        self.thumbnails.clear()
        self.photos.set_photos([])
        self.message_posted.emit(f"Opening {folder}…", 0)

        def scan() -> list[Path]:
            return list(find_photos(folder, recursive))

        def scan_failed(error: BaseException) -> None:
            if generation == self._generation:
                self.message_posted.emit("", 0)
                self.failed.emit(f"Cannot open {folder.name}", str(error))

        self.library.submit(
            scan, on_done=lambda paths: self._scanned(generation, paths), on_error=scan_failed
        )

    def _scanned(self, generation: int, paths: list[Path]) -> None:
        if generation != self._generation or self._scan_cancel is None:
            return
        self.photos.set_photos(paths)
        n = len(paths)
        self.message_posted.emit(
            f"{plural(n, 'photo')} in {self.folder}" if n else "No photos here.", 5000
        )
        self.listed.emit(self.folder, n)
        self.library.submit(
            lookup_captions,
            paths,
            self.settings.xmp_name,
            self._scan_cancel,
            lambda chunk: self.library.post(lambda c: self._captions_found(generation, c), chunk),
        )

    def _captions_found(self, generation: int, chunk: list[CaptionFound]) -> None:
        if generation != self._generation:
            return
        for path, found, identity, error in chunk:
            photo = self.photos.photo(path)
            if photo is None or photo.loaded:
                continue  # captioned meanwhile: the batch knows better
            if error is not None:
                # Shown on the photo (badge, tooltip, panel); the Problems panel is for what
                # failed while captioning or saving, which will name this again if it matters.
                self.photos.update(path, loaded=True, error=split_error(path, error))
            else:
                self.photos.update(
                    path,
                    loaded=True,
                    caption=found.caption if found else None,
                    store=found.store if found else None,
                    identity=photo.identity or identity,
                )

    @Slot(object, str)
    def _thumbnail_failed(self, path: Path, reason: str) -> None:
        log.info("No thumbnail for %s: %s", path, reason)
        self.photos.set_thumbnail_failed(path)

    # ================================================================ editing and saving

    def set_draft(self, path: Path, text: str) -> None:
        """The user typed (or picked) ``text`` for ``path``."""
        photo = self.photos.photo(path)
        if photo is not None:
            draft = text if text != (photo.caption or "") else None
            self.photos.update(path, draft=draft, typed=draft is not None, error=None)

    def revert(self, path: Path) -> Photo | None:
        return self.photos.update(path, draft=None, typed=False, error=None)

    def save(self, photo: Photo, text: str, generated: bool = False) -> None:
        """Queue a write of ``text`` (a snapshot) on the writer thread."""
        self.writer.submit(
            WriteRequest(
                photo.path,
                text,
                # An existing caption is replaced where it is, so it is the one found next time.
                store=photo.store or self.settings.store,  # type: ignore[arg-type]
                xmp_name=self.settings.xmp_name,
                # Typed by the user: they are replacing the caption on purpose.
                overwrite=True if not generated else self.settings.overwrite,
                expected=photo.identity,
                generated=generated,
            )
        )
        self.photos.update(photo.path, saving=True)

    def save_all(self) -> int:
        unsaved = self.photos.unsaved()
        for photo in unsaved:
            self.save(photo, photo.draft or "")
        if unsaved:
            self.message_posted.emit(f"Saving {plural(len(unsaved), 'caption')}…", 3000)
        return len(unsaved)

    @Slot(object)
    def _written(self, outcome: WriteOutcome) -> None:
        request = outcome.request
        name = request.photo.name
        photo = self.photos.photo(request.photo)
        if outcome.ok:
            result = outcome.result
            assert result is not None
            if result.message:
                self.message_posted.emit(f"{name}: {result.message}", 8000)
            elif not request.generated:
                self.message_posted.emit(f"Saved the caption of {name}.", 3000)
            if photo is None:
                return  # another folder is open now
            text = request.caption.strip()
            changes: dict[str, object] = dict(
                saving=False, caption=text, store=result.store, loaded=True, error=None
            )
            if result.photo_identity is not None:
                changes["identity"] = result.photo_identity
            if photo.draft is not None and photo.draft.strip() == text:
                changes.update(draft=None, typed=False)  # nothing typed since this snapshot
            self.photos.update(request.photo, **changes)
            return
        if outcome.exists and request.generated:
            # A caption is stored and may not be replaced: the new one waits as an unsaved
            # suggestion that the user can review and save (Ctrl+S replaces it).
            if photo is not None:
                self.photos.update(request.photo, saving=False)
            self.message_posted.emit(
                f"{name} already has a caption, so the new one waits for review "
                "(Ctrl+S replaces it; Settings can allow replacing captions).",
                8000,
            )
            return
        error = outcome.error or f"{request.photo}: could not be saved"
        self.problem_found.emit(request.photo, error)
        if photo is not None:
            self.photos.update(request.photo, saving=False, error=split_error(request.photo, error))
        if not request.generated:
            self.failed.emit("The caption was not saved", error)

    # ================================================================ captioning

    @property
    def batch_running(self) -> bool:
        """A batch is shown (it may be cancelling: its thread has not stopped yet)."""
        return self._job_id is not None

    def start_batch(self, paths: list[Path], what: str) -> bool:
        """Caption ``paths`` (those with a caption are left out unless re-captioning)."""
        if self.captioning.busy:
            self.message_posted.emit("Already captioning; cancel it first (Esc).", 4000)
            return False
        if not paths:
            self.message_posted.emit("Select the photos to caption first.", 4000)
            return False
        s = self.settings
        if not s.recaption:
            paths = [
                p for p in paths if not ((photo := self.photos.photo(p)) and photo.has_caption)
            ]
            if not paths:
                self.message_posted.emit(
                    f"All the {what} already have a caption. To caption them again, turn on "
                    "Caption ▸ Re-caption Photos That Have a Caption.",
                    8000,
                )
                return False
        job = self.captioning.start(
            tuple(paths),
            options=CaptionOptions(s.beam_size, s.batch_size, s.n_candidates),
            model=ModelChoice(chosen_weights(self.env, s), s.device),
            skip_captioned=not s.recaption,  # checked again on the thread, just before reading
            xmp_name=s.xmp_name,
        )
        self._job_id = job.job_id
        for path in paths:
            self.photos.update(path, working=True, error=None)
        self.batch_started.emit(len(paths))
        return True

    def cancel_batch(self) -> bool:
        """Stop the batch; results still in flight are dropped. False when none was running."""
        if not self.captioning.busy:
            return False
        self.captioning.cancel()
        self._clear_working()
        return True

    @Slot(object)
    def _photo_done(self, outcome: PhotoOutcome) -> None:
        if self._closed:
            return  # arrived while quitting: the batch was cancelled, nothing more is written
        path = outcome.path
        self.photo_finished.emit(outcome.result is not None)
        photo = self.photos.photo(path)
        if photo is None:
            return
        if outcome.existing is not None:
            self.photos.update(
                path,
                working=False,
                loaded=True,
                caption=outcome.existing.caption,
                store=outcome.existing.store,
            )
            return
        result = outcome.result
        assert result is not None
        if not result.ok or not result.caption:
            error = result.error or f"{path}: the model produced no caption"
            self.photos.update(path, working=False, error=split_error(path, error))
            self.problem_found.emit(path, error)
            return
        changes: dict[str, object] = dict(working=False, candidates=result.candidates, error=None)
        if outcome.identity is not None:
            changes["identity"] = outcome.identity
        if photo.draft is not None and photo.typed:
            # The user is editing this caption: keep their text, offer the new one beside it.
            self.photos.update(path, **changes)
            return
        photo = self.photos.update(path, draft=result.caption, typed=False, **changes)
        if self.settings.autosave and photo is not None:
            self.save(photo, result.caption, generated=True)

    @Slot(object)
    def _job_finished(self, summary: JobSummary) -> None:
        if summary.job_id != self._job_id:
            return  # an older batch, replaced before its thread stopped
        self._job_id = None
        self._clear_working()
        self.batch_finished.emit(summary)

    def _clear_working(self) -> None:
        for photo in list(self.photos.photos()):
            if photo.working:
                self.photos.update(photo.path, working=False)

    # ================================================================ quitting

    def shutdown(self) -> None:
        """Cancel the batch and the scan, stop every thread, let the writer finish its queue."""
        if self._closed:
            return
        self._closed = True
        if self._scan_cancel is not None:
            self._scan_cancel.set()
        self.captioning.shutdown()  # the step in progress finishes; nothing else starts
        self.thumbnails.shutdown()
        self.library.shutdown(wait=True, cancel_pending=True)
        self.writer.shutdown()  # every queued write completes; each one is atomic
