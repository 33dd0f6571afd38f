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
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from core.datatypes import CaptionSettings
from core.engine import (
    IndexReplaced,
    PhotoCaptioned,
    PhotoFailed,
    PhotoSkipped,
    RunProgress,
)
from core.errors import StorageError
from core.index import default_index_path
from core.library import ScanProblem, find_photos
from core.storage import FileIdentity, StoredCaption, all_stores, read_caption_any
from desktop.captioning import CaptionService, JobEvent, JobSummary, ModelChoice
from desktop.environment import AppEnvironment, chosen_weights
from desktop.photos import Photo, PhotoListModel, thumbnail_pixels
from desktop.settings import AppSettings
from desktop.status import split_error
from desktop.tasks import TaskPool
from desktop.thumbnails import ThumbnailCache, ThumbnailLoader
from desktop.writer import CaptionWriter, WriteOutcome, WriteRequest

log = logging.getLogger(__name__)

LOOKUP_CHUNK = 64  # stored captions found are handed to the GUI thread this many at a time
EVENTS_PER_TICK = 1000  # engine events handled per turn of the event loop, so it never stalls

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
    batch_started = Signal(int)  # photos the batch covers
    photos_finished = Signal(int, int)  # more photos of the batch done: captioned/failed, skipped
    batch_total_changed = Signal(int)  # the engine counted the photos the batch covers
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
        self.index_path = env.index_path or default_index_path()
        self.writer = CaptionWriter(self, index_path=self.index_path)
        # Saves queued per photo: a row stays "saving" until the last of them has come back.
        self._saves_in_flight: Counter[Path] = Counter()
        self.captioning = CaptionService(env.captioner_factory, self, self.writer.write_and_wait)
        self._generation = 0  # bumped per folder opened; late results of older ones are dropped
        self._scan_cancel: threading.Event | None = None
        self._job_id: int | None = None  # the batch being shown, until its thread stops
        self._cancelling = False  # the batch shown was cancelled; its thread has not stopped
        self._backlog: deque[JobEvent] = deque()  # engine events not handled yet
        self._finished: deque[JobSummary] = deque()  # handled once the events before them are
        self.batches_started = 0  # counted when asked for, so waiting for one never starts early
        self.batches_finished = 0
        self._closed = False

        self.photos.thumbnail_requested.connect(self.thumbnails.request)
        self.thumbnails.thumbnail_ready.connect(self.photos.set_thumbnail)
        self.thumbnails.thumbnail_failed.connect(self._thumbnail_failed)
        self.captioning.model_load_started.connect(self.model_load_started)
        self.captioning.model_loaded.connect(self.model_loaded)
        self.captioning.events_arrived.connect(self._events_arrived)
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
        self._saves_in_flight[photo.path] += 1
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
        self._saves_in_flight[request.photo] -= 1
        if self._saves_in_flight[request.photo] <= 0:
            del self._saves_in_flight[request.photo]
        still_saving = request.photo in self._saves_in_flight
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
                saving=still_saving, caption=text, store=result.store, loaded=True, error=None
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
                self.photos.update(request.photo, saving=still_saving)
            self.message_posted.emit(
                f"{name} already has a caption, so the new one waits for review "
                "(Ctrl+S replaces it; Settings can allow replacing captions).",
                8000,
            )
            return
        error = outcome.error or f"{request.photo}: could not be saved"
        self.problem_found.emit(request.photo, error)
        if photo is not None:
            self.photos.update(
                request.photo, saving=still_saving, error=split_error(request.photo, error)
            )
        if not request.generated:
            self.failed.emit("The caption was not saved", error)

    # ================================================================ captioning

    @property
    def batch_running(self) -> bool:
        """A batch is shown (it may be cancelling: its thread has not stopped yet)."""
        return self._job_id is not None

    def caption_photos(self, paths: list[Path]) -> bool:
        """Caption the photos picked (those with a caption are left out unless re-captioning)."""
        if self._refuse_while_busy():
            return False
        if not paths:
            self.message_posted.emit("Select the photos to caption first.", 4000)
            return False
        todo = self._todo(paths, "selected photos")
        return bool(todo) and self._start(tuple(todo), todo, len(todo), recursive=False)

    def caption_folder(self) -> bool:
        """Caption the open folder as listed; a batch interrupted before resumes where it was."""
        if self._refuse_while_busy():
            return False
        paths = [photo.path for photo in self.photos.photos()]
        if self.folder is None or not paths:
            self.message_posted.emit("There are no photos here to caption.", 4000)
            return False
        todo = self._todo(paths, "photos in this folder")
        # The engine goes through the whole folder (skipping what is done), so every listed
        # photo counts towards the progress.
        return bool(todo) and self._start(
            (self.folder,), todo, len(paths), recursive=self.settings.recursive
        )

    def _refuse_while_busy(self) -> bool:
        if self.captioning.busy:
            self.message_posted.emit("Already captioning; cancel it first (Esc).", 4000)
            return True
        return False

    def _todo(self, paths: list[Path], what: str) -> list[Path]:
        if self.settings.recaption:
            return paths
        todo = [p for p in paths if not ((photo := self.photos.photo(p)) and photo.has_caption)]
        if not todo:
            self.message_posted.emit(
                f"All the {what} already have a caption. To caption them again, turn on "
                "Caption ▸ Re-caption Photos That Have a Caption.",
                8000,
            )
        return todo

    def _start(
        self, roots: tuple[Path, ...], todo: list[Path], total: int, recursive: bool
    ) -> bool:
        s = self.settings
        # The engine saves each caption as it is made (through the writer thread) and records
        # it in the library index, which is what lets a later batch resume. A caption that
        # must wait for review, or may not replace the one stored, is not saved by the engine:
        # it comes back as a suggestion (store None) and the review flow takes it from there.
        saving = s.autosave and (s.overwrite or not s.recaption)
        job = self.captioning.start(
            roots,
            recursive=recursive,
            settings=CaptionSettings(
                beam_size=s.beam_size,
                batch_size=s.batch_size,
                n_candidates=min(s.n_candidates, s.beam_size),
            ),
            model=ModelChoice(chosen_weights(self.env, s), s.device),
            store=s.store if saving else None,
            xmp_name=s.xmp_name,
            overwrite=s.recaption and s.overwrite,
            skip_captioned=not s.recaption,
            index_path=self.index_path,
        )
        self._job_id = job.job_id
        self._cancelling = False
        self.batches_started += 1
        for path in todo:
            self.photos.update(path, working=True, error=None)
        self.batch_started.emit(total)
        return True

    def cancel_batch(self) -> bool:
        """Stop the batch. False when none was running.

        Captions the engine saves while stopping still show (they are on disk); suggestions
        still in flight are dropped.
        """
        if not self.captioning.busy:
            return False
        self.captioning.cancel()
        self._cancelling = True
        self._clear_working()
        return True

    @Slot(object)
    def _events_arrived(self, events: list[JobEvent]) -> None:
        self._backlog.extend(events)
        if len(self._backlog) == len(events):  # not already being worked through
            self._work_backlog()

    def _work_backlog(self) -> None:
        done = skipped = 0
        total: int | None = None
        for _ in range(min(len(self._backlog), EVENTS_PER_TICK)):
            item = self._backlog.popleft()
            if self._closed or item.job_id != self._job_id:
                continue  # quitting, or an older batch replaced before its thread stopped
            event = item.event
            if isinstance(event, PhotoSkipped):
                skipped += 1
                self._photo_skipped(event)
            elif isinstance(event, PhotoCaptioned):
                done += 1
                self._photo_captioned(event, item.identity)
            elif isinstance(event, PhotoFailed):
                done += 1
                self._photo_failed(event)
            elif isinstance(event, RunProgress):
                total = event.total
            elif isinstance(event, ScanProblem):
                self.problem_found.emit(event.path, event.reason)
                if self.photos.photo(event.path) is not None:
                    self.photos.update(
                        event.path, working=False, error=split_error(event.path, event.reason)
                    )
            elif isinstance(event, IndexReplaced):
                log.warning("Library index replaced: %s", event.reason)
                self.message_posted.emit(
                    f"The library index was damaged, so a new one was started (the old one "
                    f"was kept as {event.moved_to.name}). Your captions are safe.",
                    10000,
                )
        if done or skipped:
            self.photos_finished.emit(done, skipped)
        if total is not None and not self._cancelling:
            self.batch_total_changed.emit(total)
        if self._backlog:
            QTimer.singleShot(0, self._work_backlog)  # the rest after the GUI had its turn
        else:
            while self._finished:
                self._batch_done(self._finished.popleft())

    def _photo_captioned(self, event: PhotoCaptioned, identity: FileIdentity | None) -> None:
        path = event.path
        photo = self.photos.photo(path)
        if photo is None:
            return  # another folder is open, or not listed (a subfolder)
        if event.message:
            self.message_posted.emit(f"{path.name}: {event.message}", 8000)
        changes: dict[str, object] = dict(working=False, candidates=event.candidates, error=None)
        editing = photo.draft is not None and photo.typed  # keep the user's text, always
        if event.store is not None:  # saved by the engine, through the writer thread
            changes.update(caption=event.caption.strip(), store=event.store, loaded=True)
            if identity is not None:
                changes["identity"] = identity
            if not editing:
                changes.update(draft=None, typed=False)
            self.photos.update(path, **changes)
            return
        if self._cancelling:
            return  # a suggestion of a cancelled batch: dropped like any result after cancel
        if not event.caption:
            error = f"{path}: the model produced no caption"
            self.photos.update(path, working=False, error=split_error(path, error))
            self.problem_found.emit(path, error)
            return
        if editing:
            # The user is editing this caption: keep their text, offer the new one beside it.
            self.photos.update(path, **changes)
            return
        photo = self.photos.update(path, draft=event.caption, typed=False, **changes)
        if self.settings.autosave and photo is not None:
            # Only when it may not replace the stored caption: then it waits for review.
            self.save(photo, event.caption, generated=True)

    def _photo_skipped(self, event: PhotoSkipped) -> None:
        photo = self.photos.photo(event.path)
        if photo is None:
            return
        changes: dict[str, object] = dict(working=False)
        # "has_caption" was just read from the stores; "done" comes from the index, which is
        # only news when the stores have not been read yet.
        if event.caption is not None and (event.reason == "has_caption" or not photo.loaded):
            changes.update(caption=event.caption, store=event.store, loaded=True)
        self.photos.update(event.path, **changes)

    def _photo_failed(self, event: PhotoFailed) -> None:
        path = event.path
        self.problem_found.emit(path, event.reason)
        photo = self.photos.photo(path)
        if photo is None:
            return
        changes: dict[str, object] = dict(working=False, error=split_error(path, event.reason))
        if event.caption and not (photo.draft is not None and photo.typed):
            # Made but not saved: kept as an unsaved suggestion, so it is not lost.
            changes.update(draft=event.caption, typed=False)
        self.photos.update(path, **changes)

    @Slot(object)
    def _job_finished(self, summary: JobSummary) -> None:
        if self._backlog:
            self._finished.append(summary)  # after the events that came before it
        else:
            self._batch_done(summary)

    def _batch_done(self, summary: JobSummary) -> None:
        self.batches_finished += 1
        if summary.job_id != self._job_id:
            return  # an older batch, replaced before its thread stopped
        self._job_id = None
        self._cancelling = False
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
