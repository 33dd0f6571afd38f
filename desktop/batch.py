"""Captioning batches from the app: starting one on the inference thread, showing its events."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from core.datatypes import CaptionSettings
from core.engine import (
    EngineEvent,
    IndexReplaced,
    LibraryJob,
    PhotoCaptioned,
    PhotoFailed,
    PhotoSkipped,
    RunProgress,
)
from core.library import ScanProblem
from core.storage import StoredCaption, StoreKind
from desktop.captioning import CaptionService, JobEvents, JobSummary, ModelChoice
from desktop.environment import AppEnvironment, chosen_weights
from desktop.photos import Photo, PhotoListModel
from desktop.saving import Refused, Saver, kept_unsaved
from desktop.settings import Settings
from desktop.status import split_error

log = logging.getLogger(__name__)

EVENTS_PER_TICK = 1000  # engine events handled per turn of the event loop, so it never stalls


class BatchRunner(QObject):
    """Starts batches on the inference thread and applies their events to the rows.

    The commands Caption Selected, Caption Folder and Cancel come here; its signals tell the
    status bar, the commands and the window how the batch goes.
    """

    problem_found = Signal(object, str)  # path, message: for the Problems panel
    problem_solved = Signal(object)  # path: captioned and saved, no longer a problem
    message_posted = Signal(str, int)  # status-bar text, how long to show it (ms)
    batch_started = Signal(int)  # photos the batch covers
    photos_finished = Signal(int, int)  # more photos of the batch done: captioned/failed, skipped
    batch_total_changed = Signal(int)  # the engine counted the photos the batch covers
    in_flight_changed = Signal(int)  # photos at the model or being saved, not done yet
    batch_cancelled = Signal()  # Cancel was asked for; batch_finished follows once it stopped
    batch_finished = Signal(object)  # JobSummary, once the inference thread has really stopped
    refused = Signal(object)  # list[Refused]: captions the batch made and could not save

    def __init__(
        self,
        env: AppEnvironment,
        photos: PhotoListModel,
        captioning: CaptionService,
        saver: Saver,
        settings: Settings,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.env = env
        self.photos = photos
        self.captioning = captioning
        self.saver = saver
        self._settings = settings
        self.folder: Path | None = None  # the open folder (FolderSession keeps it up to date)
        self._job_id: int | None = None  # the batch being shown, until its thread stops
        self._job_store: StoreKind = settings.current.store
        self._cancelling = False  # the batch shown was cancelled; its thread has not stopped
        self._backlog: deque[tuple[int, EngineEvent]] = deque()  # events not handled yet
        self._finished: deque[JobSummary] = deque()  # handled once the events before them are
        self.batches_started = 0  # counted when asked for, so waiting for one never starts early
        self.batches_finished = 0
        self.closed = False
        self._refused: list[Refused] = []  # this batch's captions that could not be saved
        captioning.events_arrived.connect(self._events_arrived)
        captioning.job_finished.connect(self._job_finished)

    @property
    def running(self) -> bool:
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
        folder = self.folder
        paths = [photo.path for photo in self.photos.photos()]
        if folder is None or not paths:
            self.message_posted.emit("There are no photos here to caption.", 4000)
            return False
        todo = self._todo(paths, "photos in this folder")
        # The engine goes through the whole folder (skipping what is done), so every listed
        # photo counts towards the progress.
        return bool(todo) and self._start(
            (folder,), todo, len(paths), recursive=self._settings.current.recursive
        )

    def cancel(self) -> bool:
        """Stop the batch. False when none was running.

        Captions the engine saves while stopping still show (they are on disk); suggestions
        still in flight are dropped.
        """
        if not self.captioning.busy:
            return False
        self.captioning.cancel()
        self._cancelling = True
        self._clear_working()
        self.batch_cancelled.emit()
        return True

    def _refuse_while_busy(self) -> bool:
        if self.captioning.busy:
            self.message_posted.emit("Already captioning; cancel it first (Esc).", 4000)
            return True
        return False

    def _todo(self, paths: list[Path], what: str) -> list[Path]:
        if self._settings.current.recaption:
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
        s = self._settings.current
        # The engine saves each caption as it is made (through the writer thread) and records
        # it in the library index, which is what lets a later batch resume. Re-captioning
        # without overwriting, a photo's new caption comes back as a suggestion beside the one
        # stored; with saving as captions arrive off (review first), every one does.
        if s.autosave and not self.saver.guard.allows(s.store, todo):
            self.message_posted.emit(
                "Captioning not started: the photos stay untouched. Choose a sidecar in "
                "Settings (Save captions as), or turn off saving as captions arrive.",
                8000,
            )
            return False
        job = LibraryJob(
            roots=roots,
            recursive=recursive,
            store=s.store if s.autosave else None,
            xmp_name=s.xmp_name,
            overwrite=s.recaption and s.overwrite,
            skip_captioned=not s.recaption,
            recaption=s.recaption,
            settings=CaptionSettings(
                beam_size=s.beam_size,
                batch_size=s.batch_size,
                n_candidates=min(s.n_candidates, s.beam_size),
            ),
        )
        started = self.captioning.start(
            job, ModelChoice(chosen_weights(self.env, s), s.device, s.precision)
        )
        self._job_id = started.job_id
        self._job_store = s.store  # where this batch saves, whatever Settings say meanwhile
        self._cancelling = False
        self._refused = []
        self.batches_started += 1
        for path in todo:
            self._mark(path, working=True, error=None)
        self.batch_started.emit(total)
        return True

    def _mark(self, path: Path, *, working: bool, error: str | None) -> None:
        photo = self.photos.photo(path)
        if photo is not None:
            self.photos.put(replace(photo, working=working, error=error))

    # ---------------------------------------------------------------- events

    @Slot(object)
    def _events_arrived(self, events: JobEvents) -> None:
        idle = not self._backlog
        self._backlog.extend((events.job_id, event) for event in events.events)
        if idle:  # not already being worked through
            self._work_backlog()

    def _work_backlog(self) -> None:
        done = skipped = 0
        progress: RunProgress | None = None
        for _ in range(min(len(self._backlog), EVENTS_PER_TICK)):
            job_id, event = self._backlog.popleft()
            if self.closed or job_id != self._job_id:
                continue  # quitting, or an older batch replaced before its thread stopped
            if isinstance(event, PhotoSkipped):
                skipped += 1
                self._photo_skipped(event)
            elif isinstance(event, PhotoCaptioned):
                done += 1
                self._photo_captioned(event)
            elif isinstance(event, PhotoFailed):
                done += 1
                self._photo_failed(event)
            elif isinstance(event, RunProgress):
                progress = event
            elif isinstance(event, ScanProblem):
                self.problem_found.emit(event.path, event.reason)
                self._mark(event.path, working=False, error=split_error(event.path, event.reason))
            elif isinstance(event, IndexReplaced):
                log.warning("Library index replaced: %s", event.reason)
                self.message_posted.emit(
                    f"The library index was damaged, so a new one was started (the old one "
                    f"was kept as {event.moved_to.name}). Your captions are safe.",
                    10000,
                )
        if done or skipped:
            self.photos_finished.emit(done, skipped)
        if progress is not None:
            if progress.total is not None and not self._cancelling:
                self.batch_total_changed.emit(progress.total)
            # A batch at the model is finished and saved even after Cancel: it shows until then.
            self.in_flight_changed.emit(progress.in_flight)
        if self._backlog:
            QTimer.singleShot(0, self._work_backlog)  # the rest after the GUI had its turn
        else:
            while self._finished:
                self._batch_done(self._finished.popleft())

    def _photo_captioned(self, event: PhotoCaptioned) -> None:
        path = event.path
        photo = self.photos.photo(path)
        if photo is None:
            return  # another folder is open, or not listed (a subfolder)
        if event.message:
            self.message_posted.emit(f"{path.name}: {event.message}", 8000)
        editing = photo.draft is not None and photo.typed  # keep the user's text, always
        photo = replace(photo, working=False, candidates=event.candidates, error=None)
        if event.store is not None:  # saved by the engine, through the writer thread
            self.problem_solved.emit(path)
            photo = replace(
                photo,
                caption=event.caption.strip(),
                store=event.store,
                loaded=True,
                identity=event.identity or photo.identity,
                confidence=event.confidence,
                others=_others_after_save(photo, event),
            )
            if not editing:
                photo = replace(photo, draft=None, typed=False, draft_confidence=None)
            self.photos.put(photo)
            return
        if self._cancelling:
            return  # a suggestion of a cancelled batch: dropped like any result after cancel
        if not editing:  # else keep the user's text; the new caption is offered beside it
            photo = replace(
                photo, draft=event.caption, typed=False, draft_confidence=event.confidence
            )
        self.photos.put(photo)

    def _photo_skipped(self, event: PhotoSkipped) -> None:
        photo = self.photos.photo(event.path)
        if photo is None:
            return
        photo = replace(photo, working=False)
        # "has_caption" was just read from the stores; "done" comes from the index, which is
        # only news when the stores have not been read yet.
        if event.caption is not None and (event.reason == "has_caption" or not photo.loaded):
            photo = replace(
                photo,
                caption=event.caption,
                store=event.store,
                loaded=True,
                confidence=event.confidence,
            )
        self.photos.put(photo)

    def _photo_failed(self, event: PhotoFailed) -> None:
        path = event.path
        self.problem_found.emit(path, event.reason)
        if event.caption:  # kept in the index by the writer; summed up when the batch ends
            self._refused.append(Refused(path, event.reason, event.problem, self._job_store))
        photo = self.photos.photo(path)
        if photo is None:
            return
        photo = replace(photo, working=False)
        reason = split_error(path, event.reason)
        if event.caption:  # made but not saved: kept as an unsaved suggestion, not lost
            photo = kept_unsaved(photo, reason, event.caption, typed=False)
        else:
            photo = replace(photo, error=reason)
        self.photos.put(photo)

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
        refused, self._refused = self._refused, []
        if refused and not self.closed:
            self.refused.emit(refused)

    def _clear_working(self) -> None:
        for photo in list(self.photos.photos()):
            if photo.working:
                self.photos.put(replace(photo, working=False))


def _others_after_save(photo: Photo, event: PhotoCaptioned) -> tuple[StoredCaption, ...]:
    """The caption panel's "stores disagree" list once the batch saved ``event``'s caption:
    empty when every store was brought up to date; else what the other stores still hold that
    differs (the caption shown before, too, when it came from another store)."""
    if event.stores_agree:
        return ()
    before = photo.others
    if photo.caption is not None and photo.store is not None:
        before = (StoredCaption(photo.caption, photo.store), *before)
    text = event.caption.strip()
    return tuple(o for o in before if o.store != event.store and o.caption.strip() != text)
