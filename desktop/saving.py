"""Saving captions from the app: snapshots handed to the writer thread, outcomes shown on rows."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from core.engine import SaveOutcome
from core.storage import EMBED_EXTENSIONS, SaveRequest, StoreKind
from desktop.photos import Photo, PhotoListModel
from desktop.settings import AppSettings
from desktop.status import split_error
from desktop.writer import CaptionWriter

log = logging.getLogger(__name__)


KEPT_NOTE = "The caption is kept: Ctrl+S tries again, or choose another place in Settings."
"""Added to the reason a caption was not saved, on the photo (editor, grid tooltip)."""


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class OriginalsGuard:
    """Asks once, before the first write into photo files themselves (the embedded store).

    ``ask`` is set by the window (it shows the question); it returns True to go ahead. A
    "yes" holds for the rest of the session; a "no" is asked again next time.
    """

    def __init__(self) -> None:
        self.ask: Callable[[], bool] = lambda: True
        self.confirmed = False

    def allows(self, store: StoreKind, photos: Iterable[Path]) -> bool:
        """Whether saving into ``store`` for ``photos`` may go ahead (asking if need be)."""
        if self.confirmed or store != "embed":
            return True
        if not any(p.suffix.lower() in EMBED_EXTENSIONS for p in photos):
            return True  # HEIC and RAW get an XMP sidecar: the photo is not touched
        self.confirmed = self.ask()
        return self.confirmed


class Saver(QObject):
    """Queues the saves of the open folder's captions and shows how each went on its row.

    A save always goes to the store chosen in Settings; other stores that held an older caption
    of the photo are brought up to the same text by core.storage.save_caption. A save that
    fails keeps the caption as the photo's unsaved text, with the reason, so it is never lost.
    """

    failed = Signal(str, str)  # title, readable message
    problem_found = Signal(object, str)  # path, message: for the Problems panel
    message_posted = Signal(str, int)  # status-bar text, how long to show it (ms)

    def __init__(
        self,
        photos: PhotoListModel,
        writer: CaptionWriter,
        settings: Callable[[], AppSettings],
        guard: OriginalsGuard,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.photos = photos
        self.writer = writer
        self._settings = settings
        self.guard = guard
        # Saves queued per photo: a row stays "saving" until the last of them has come back.
        self._in_flight: Counter[Path] = Counter()
        writer.written.connect(self._written)

    def save(self, photo: Photo, text: str) -> bool:
        """Queue a write of ``text`` (a snapshot, typed or picked by the user: it replaces the
        caption stored) on the writer thread; False when the user would not have the photo
        itself written to."""
        settings = self._settings()
        if not self.guard.allows(settings.store, [photo.path]):
            self._not_into_photos()
            return False
        request = SaveRequest(
            photo.path,
            text,
            settings.store,
            settings.xmp_name,
            overwrite=True,
            expected=photo.identity,
            # Kept (in the index too) only for the model's own text, saved as it made it: a
            # caption the user wrote or changed is theirs, never marked "check this".
            confidence=photo.confidence_of(text),
        )
        self.writer.save(request)
        self._in_flight[photo.path] += 1
        self.photos.put(replace(photo, saving=True))
        return True

    def save_all(self) -> int:
        unsaved = self.photos.unsaved()
        if not self.guard.allows(self._settings().store, [p.path for p in unsaved]):
            self._not_into_photos()
            return 0
        for photo in unsaved:
            self.save(photo, photo.draft or "")
        if unsaved:
            self.message_posted.emit(f"Saving {plural(len(unsaved), 'caption')}…", 3000)
        return len(unsaved)

    def _not_into_photos(self) -> None:
        self.message_posted.emit(
            "Not saved: the captions stay unsaved. To keep photos untouched, choose a sidecar "
            "in Settings (Save captions as).",
            8000,
        )

    @Slot(object)
    def _written(self, outcome: SaveOutcome) -> None:
        request = outcome.request
        path, name = request.photo, request.photo.name
        self._in_flight[path] -= 1
        if self._in_flight[path] <= 0:
            del self._in_flight[path]
        still_saving = path in self._in_flight
        photo = self.photos.photo(path)
        if outcome.result is not None:
            result = outcome.result
            if result.message:
                self.message_posted.emit(f"{name}: {result.message}", 8000)
            else:
                self.message_posted.emit(f"Saved the caption of {name}.", 3000)
            if photo is None:
                return  # another folder is open now
            text = request.caption.strip()
            saved = replace(
                photo,
                saving=still_saving,
                caption=text,
                store=result.store,
                loaded=True,
                error=None,
                identity=outcome.identity or photo.identity,
                confidence=request.confidence,
            )
            if photo.draft is not None and photo.draft.strip() == text:
                # nothing typed since
                saved = replace(saved, draft=None, typed=False, draft_confidence=None)
            self.photos.put(saved)
            return
        error = outcome.error or f"{path}: could not be saved"
        self.problem_found.emit(path, error)
        if photo is not None:
            reason = f"{split_error(path, error)} {KEPT_NOTE}"
            kept = replace(photo, saving=still_saving, error=reason)
            if photo.draft is None:  # the caption that failed stays, unsaved, to retry
                kept = replace(kept, draft=request.caption, typed=True)
            self.photos.put(kept)
        self.failed.emit("The caption was not saved", error)
