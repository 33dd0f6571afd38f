"""Saving captions from the app: snapshots handed to the writer thread, outcomes shown on rows."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from core.engine import SaveOutcome
from core.engine.job import saved_where
from core.storage import EMBED_EXTENSIONS, SaveRequest, StoreKind
from desktop.originals import WriteIntoPhotosChoice
from desktop.photos import Photo, PhotoListModel
from desktop.settings import Settings
from desktop.status import plural, split_error
from desktop.writer import CaptionWriter

log = logging.getLogger(__name__)


KEPT_NOTE = (
    "The caption is kept, also when PhotoScribe is closed: Ctrl+S tries again, or choose "
    "another place in Settings; Revert discards it."
)
"""Added to the reason a caption was not saved, on the photo (editor, grid tooltip)."""


def kept_unsaved(
    photo: Photo,
    reason: str,
    caption: str | None,
    *,
    typed: bool,
    confidence: float | None = None,
) -> Photo:
    """``photo`` showing a caption that could not be saved and is kept (in the index too) to
    try again: "Not saved: <reason> <KEPT_NOTE>", with ``caption`` as its unsaved text unless
    the user is typing their own (which stays)."""
    kept = replace(photo, error=f"Not saved: {reason} {KEPT_NOTE}")
    if caption and not (photo.draft is not None and photo.typed):
        kept = replace(
            kept,
            draft=caption,
            typed=typed,
            draft_confidence=None if typed else confidence,
        )
    return kept


# Why saves fail, by core.errors class, as the end of "N captions: ...".
_REASONS = {
    "ReadOnlyError": "the photo or its folder is read-only",
    "DiskFullError": "the disk is full",
    "FileChangedError": "the photo was changed by another program since PhotoScribe read it",
    "FileMissingError": "the photo is no longer there",
    "InvalidCaptionError": "the caption is too long or holds characters metadata cannot hold",
}
_INSIDE = "PhotoScribe would not write inside the photo: it could not be done safely"
_OTHER = "other problems (see the Problems panel)"


@dataclass(frozen=True)
class Refused:
    """One caption that could not be saved, as the summary needs it."""

    path: Path
    error: str  # readable, names the file
    problem: str | None  # core.errors class name, when known
    store: StoreKind | None  # where it was to be saved


@dataclass(frozen=True)
class Refusals:
    """Captions that could not be saved in one go (Save All, a batch): one summary for all."""

    photos: tuple[Path, ...]
    reasons: tuple[tuple[str, int], ...]  # (why, how many), most first
    details: str  # one line per photo: its name and the reason
    embedded: tuple[Path, ...]  # those that were to go inside the photos: sidecars can help

    @property
    def count(self) -> int:
        return len(self.photos)

    @property
    def into_photos(self) -> bool:
        return bool(self.embedded)

    def text(self) -> str:
        """The summary's main text: how many and why."""
        head = f"{plural(self.count, 'caption')} could not be saved."
        why = "; ".join(
            f"{n}: {reason}" if self.count > 1 else reason for reason, n in self.reasons
        )
        return f"{head} Why: {why}."

    def advice(self) -> str:
        """What to do."""
        ways = (
            "Save them as XMP sidecar files beside the photos (the photos stay untouched), "
            "or fix the problem and save again (Ctrl+Shift+S saves all)."
            if self.into_photos
            else "Fix the problem (or choose another place in Settings) and save again "
            "(Ctrl+Shift+S saves all)."
        )
        return (
            "They are kept, marked with a red “!”, also when PhotoScribe is closed, until they "
            f"are saved or you revert them. {ways}"
        )


def summarise(refused: Sequence[Refused]) -> Refusals:
    """Group refused saves by why they failed."""
    reasons: Counter[str] = Counter()
    for item in refused:
        reasons[_reason(item)] += 1
    details = "\n".join(
        f"{item.path.name}: {split_error(item.path, item.error)}" for item in refused
    )
    return Refusals(
        tuple(item.path for item in refused),
        tuple(reasons.most_common()),
        details,
        tuple(item.path for item in refused if item.store == "embed"),
    )


def _reason(item: Refused) -> str:
    if item.problem in _REASONS:
        return _REASONS[item.problem]
    if item.store == "embed" and item.problem in (
        "StorageError",
        "CorruptMetadataError",
        "UnsupportedFormatError",
    ):
        return _INSIDE
    return _OTHER


class OriginalsGuard:
    """Asks once, before the first write into photo files themselves (the embedded store).

    ``ask`` is the question (the window's dialog), given when the guard is built. A "yes"
    holds for the rest of the session, "always" also turns the question off in ``settings``;
    a "no" is asked again next time.
    """

    def __init__(self, settings: Settings, ask: Callable[[], WriteIntoPhotosChoice]) -> None:
        self._settings = settings
        self._ask = ask
        self.confirmed = False

    def allows(self, store: StoreKind, photos: Iterable[Path]) -> bool:
        """Whether saving into ``store`` for ``photos`` may go ahead (asking if need be)."""
        if self.confirmed or store != "embed":
            return True
        if not any(p.suffix.lower() in EMBED_EXTENSIONS for p in photos):
            return True  # HEIC and RAW get an XMP sidecar: the photo is not touched
        if not self._settings.current.ask_before_writing_into_photos:
            self.confirmed = True
            return True
        answer = self._ask()
        if answer == "always":
            self._settings.change(ask_before_writing_into_photos=False)
        self.confirmed = answer != "no"
        return self.confirmed


class Saver(QObject):
    """The open folder's unsaved captions: typed, reverted, saved; how each save went.

    The commands Save, Save All and Revert come here. A save always goes to the store chosen
    in Settings; other stores that held an older caption of the photo are brought up to the
    same text by core.storage.save_caption. A save that fails keeps the caption as the photo's
    unsaved text, with the reason, so it is never lost (the index keeps it too, until it is
    saved or the user reverts or discards it).
    """

    refused = Signal(object)  # Refusals: saves that failed, once the saves in flight are back
    problem_found = Signal(object, str)  # path, message: for the Problems panel
    problem_solved = Signal(object)  # path: its caption was saved, it is no longer a problem
    message_posted = Signal(str, int)  # status-bar text, how long to show it (ms)

    def __init__(
        self,
        photos: PhotoListModel,
        writer: CaptionWriter,
        settings: Settings,
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
        self._refused: list[Refused] = []  # failures not summarised yet
        self._inside = self._beside = 0  # saves into photos since the last summary, by where
        self.closed = False  # quitting: failures are kept in the index, nothing is shown
        writer.written.connect(self._written)

    # ---------------------------------------------------------------- drafts

    def set_draft(self, path: Path, text: str) -> None:
        """The user typed (or picked) ``text`` for ``path``."""
        photo = self.photos.photo(path)
        if photo is not None:
            draft = text if text != (photo.caption or "") else None
            self.photos.put(replace(photo, draft=draft, typed=draft is not None, error=None))

    def revert(self, path: Path) -> Photo | None:
        """Forget ``path``'s unsaved text (in the index too); the photo as it is now."""
        photo = self.photos.photo(path)
        if photo is None:
            return None
        if photo.draft is not None:
            self.discard_unsaved([path])
        return self.photos.put(
            replace(photo, draft=None, typed=False, error=None, draft_confidence=None)
        )

    def discard_unsaved(self, paths: list[Path]) -> None:
        """The user discarded these photos' unsaved captions: the index forgets them too."""
        if paths:
            self.writer.core.discard_unsaved(paths)

    # ---------------------------------------------------------------- saves

    def save(self, photo: Photo, text: str, store: StoreKind | None = None) -> bool:
        """Queue a write of ``text`` (a snapshot, typed or picked by the user: it replaces the
        caption stored) on the writer thread, to ``store`` or else the one chosen in Settings;
        False when the user would not have the photo itself written to."""
        settings = self._settings.current
        store = store or settings.store
        if not self.guard.allows(store, [photo.path]):
            self._not_into_photos()
            return False
        request = SaveRequest(
            photo=photo.path,
            caption=text,
            store=store,
            xmp_name=settings.xmp_name,
            overwrite=True,
            expected=photo.identity,
            # Kept (in the index too) only for the model's own text, saved as it made it: a
            # caption the user wrote or changed is theirs, never marked "check this".
            confidence=photo.confidence_of(text),
            # The model's other suggestions stay on offer after a restart (library index).
            alternatives=tuple(
                c.caption for c in photo.candidates if c.caption.strip() != text.strip()
            ),
        )
        self.writer.save(request)
        self._in_flight[photo.path] += 1
        self.photos.put(replace(photo, saving=True))
        return True

    def save_all(self) -> int:
        unsaved = self.photos.unsaved()
        if not self.guard.allows(self._settings.current.store, [p.path for p in unsaved]):
            self._not_into_photos()
            return 0
        for photo in unsaved:
            self.save(photo, photo.draft or "")
        if unsaved:
            self.message_posted.emit(f"Saving {plural(len(unsaved), 'caption')}…", 3000)
        return len(unsaved)

    def save_to_sidecars(self, paths: Iterable[Path]) -> int:
        """Save the unsaved captions of ``paths`` as XMP sidecars (the photos stay as they are)."""
        count = 0
        for path in paths:
            photo = self.photos.photo(path)
            if photo is not None and photo.unsaved:
                count += self.save(photo, photo.draft or "", store="xmp")
        if count:
            self.message_posted.emit(f"Saving {plural(count, 'caption')} as XMP sidecars…", 3000)
        return count

    def report_refused(self, refused: Iterable[Refused]) -> None:
        """Add failures (a batch's) to the next summary, shown once no save is in flight."""
        self._refused.extend(refused)
        self._summarise_when_done()

    def _summarise_when_done(self) -> None:
        if self._in_flight:
            return
        if self._beside:
            self.message_posted.emit(
                f"Captions {saved_where(self._inside, self._beside)} (writing inside those "
                "photos was not safe, or not possible).",
                10000,
            )
        self._inside = self._beside = 0
        if not self._refused:
            return
        refused, self._refused = self._refused, []
        if not self.closed:
            self.refused.emit(summarise(refused))

    def _not_into_photos(self) -> None:
        self.message_posted.emit(
            "Not saved: the captions stay unsaved. To keep photos untouched, choose a sidecar "
            "in Settings (Save captions as).",
            8000,
        )

    @Slot(object)
    def _written(self, outcome: SaveOutcome) -> None:
        try:
            self._show_outcome(outcome)
        finally:
            # One summary for every save that failed, once the saves in flight are back.
            self._summarise_when_done()

    def _show_outcome(self, outcome: SaveOutcome) -> None:
        request = outcome.request
        path, name = request.photo, request.photo.name
        self._in_flight[path] -= 1
        if self._in_flight[path] <= 0:
            del self._in_flight[path]
        still_saving = path in self._in_flight
        photo = self.photos.photo(path)
        if outcome.result is not None:
            result = outcome.result
            if request.store == "embed":
                if result.store == "embed":
                    self._inside += 1
                else:
                    self._beside += 1
            if not result.written and request.confidence is None:
                # e.g. a marked caption accepted in review: the file already held it, and
                # the index now records it as the user's
                self.message_posted.emit(
                    f"Kept the caption of {name} as yours (it was already saved).", 4000
                )
            elif result.message:
                self.message_posted.emit(f"{name}: {result.message}", 8000)
            else:
                self.message_posted.emit(f"Saved the caption of {name}.", 3000)
            if not still_saving and not self.closed:
                self.problem_solved.emit(path)
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
                others=(),  # saved with overwrite: every store holds this text now
            )
            if photo.draft is not None and photo.draft.strip() == text:
                # nothing typed since
                saved = replace(saved, draft=None, typed=False, draft_confidence=None)
            self.photos.put(saved)
            return
        error = outcome.error or f"{path}: could not be saved"
        if self.closed:
            return  # quitting: the writer kept the caption in the index; nothing to show
        self.problem_found.emit(path, error)
        if photo is not None:  # the caption that failed stays, unsaved, to retry
            kept = kept_unsaved(
                replace(photo, saving=still_saving),
                split_error(path, error),
                request.caption,
                typed=request.confidence is None,
                confidence=request.confidence,
            )
            self.photos.put(kept)
        self._refused.append(Refused(path, error, outcome.problem, request.store))
