"""Saving captions from the app: snapshots handed to the writer thread, outcomes shown on rows."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from core.engine import SaveOutcome
from core.storage import SaveRequest
from desktop.photos import Photo, PhotoListModel
from desktop.settings import AppSettings
from desktop.status import split_error
from desktop.writer import CaptionWriter

log = logging.getLogger(__name__)


KEPT_NOTE = "The caption is kept: Ctrl+S tries again, or choose another place in Settings."
"""Added to the reason a caption was not saved, on the photo (editor, grid tooltip)."""


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


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
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.photos = photos
        self.writer = writer
        self._settings = settings
        # Saves queued per photo: a row stays "saving" until the last of them has come back.
        self._in_flight: Counter[Path] = Counter()
        self._generated: dict[SaveRequest, bool] = {}
        writer.written.connect(self._written)

    def save(self, photo: Photo, text: str, generated: bool = False) -> None:
        """Queue a write of ``text`` (a snapshot) on the writer thread."""
        settings = self._settings()
        request = SaveRequest(
            photo.path,
            text,
            settings.store,
            settings.xmp_name,
            # Typed by the user: they are replacing the caption on purpose.
            overwrite=True if not generated else settings.overwrite,
            expected=photo.identity,
        )
        self._generated[request] = generated
        self.writer.submit(request)
        self._in_flight[photo.path] += 1
        self.photos.put(replace(photo, saving=True))

    def save_all(self) -> int:
        unsaved = self.photos.unsaved()
        for photo in unsaved:
            self.save(photo, photo.draft or "")
        if unsaved:
            self.message_posted.emit(f"Saving {plural(len(unsaved), 'caption')}…", 3000)
        return len(unsaved)

    @Slot(object)
    def _written(self, outcome: SaveOutcome) -> None:
        request = outcome.request
        generated = self._generated.pop(request, False)
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
            elif not generated:
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
            )
            if photo.draft is not None and photo.draft.strip() == text:
                saved = replace(saved, draft=None, typed=False)  # nothing typed since
            self.photos.put(saved)
            return
        if outcome.exists and generated:
            # A caption is stored and may not be replaced: the new one waits as an unsaved
            # suggestion that the user can review and save (Ctrl+S replaces it).
            if photo is not None:
                self.photos.put(replace(photo, saving=still_saving))
            self.message_posted.emit(
                f"{name} already has a caption, so the new one waits for review "
                "(Ctrl+S replaces it; Settings can allow replacing captions).",
                8000,
            )
            return
        error = outcome.error or f"{path}: could not be saved"
        self.problem_found.emit(path, error)
        if photo is not None:
            reason = f"{split_error(path, error)} {KEPT_NOTE}"
            kept = replace(photo, saving=still_saving, error=reason)
            if photo.draft is None:  # the caption that failed stays, unsaved, to retry
                kept = replace(kept, draft=request.caption, typed=not generated)
            self.photos.put(kept)
        if not generated:
            self.failed.emit("The caption was not saved", error)
