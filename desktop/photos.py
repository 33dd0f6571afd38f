"""The photos of the open folder as rows for Qt views, and the filter for the grid."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QImage, QPixmap

from core.datatypes import CHECK_BELOW, Candidate
from core.storage import STORE_NAMES, FileIdentity, StoredCaption, StoreKind
from core.storage.files import display_name, display_path
from desktop.settings import AppSettings, Settings
from desktop.thumbnails import fit

log = logging.getLogger(__name__)

PHOTO_ROLE = Qt.ItemDataRole.UserRole + 1  # the Photo itself
STATUS_ROLE = Qt.ItemDataRole.UserRole + 2  # its Status
CHECK_ROLE = Qt.ItemDataRole.UserRole + 3  # its "check this" note, or None (see check_note)

THUMBNAIL_BOX = QSize(168, 126)  # thumbnails are scaled to fit this box in the grid
PIXMAP_CACHE_SIZE = 800  # decoded thumbnails kept in memory; the rest come from the disk cache


def thumbnail_pixels(device_pixel_ratio: float) -> QSize:
    """THUMBNAIL_BOX in device pixels."""
    return QSize(
        round(THUMBNAIL_BOX.width() * device_pixel_ratio),
        round(THUMBNAIL_BOX.height() * device_pixel_ratio),
    )


class Status(Enum):
    """What the grid shows about a photo's caption."""

    UNKNOWN = "not read yet"
    NONE = "no caption"
    SAVED = "saved"
    UNSAVED = "unsaved changes"
    WORKING = "captioning"
    SAVING = "saving"
    ERROR = "error"


# Where a caption is, as the end of "Caption stored ...", named as core names the stores.
STORED_IN = {kind: f"in the {name}" for kind, name in STORE_NAMES.items()}


@dataclass(frozen=True, kw_only=True)
class Photo:
    """One photo as the app knows it; replaced, never changed, when something new is known."""

    path: Path
    caption: str | None = None  # the caption stored on disk
    store: StoreKind | None = None  # which store holds it
    loaded: bool = False  # whether the stored caption has been looked up
    draft: str | None = None  # text not saved yet: typed, or generated and awaiting review
    typed: bool = False  # the draft was typed (or picked) by the user, not just generated
    candidates: tuple[Candidate, ...] = ()  # alternatives from the last captioning, best first
    identity: FileIdentity | None = None  # the photo file when its caption was read or made
    working: bool = False  # queued for captioning in the current batch
    saving: bool = False  # a write is queued or running
    error: str | None = None  # the last problem with this photo, readable
    # The model's confidence (0 to 1) in ``caption``; None when a person wrote it, or unknown.
    confidence: float | None = None
    # The model's confidence in a generated ``draft``. Kept while the user edits that draft,
    # so that the row keeps its place in a least-sure-first grid; it no longer marks the text.
    draft_confidence: float | None = None
    # Other stores holding a different caption (a sidecar edited by another program): the
    # user picks which to keep, and saving brings every store to it.
    others: tuple[StoredCaption, ...] = ()

    @property
    def text(self) -> str:
        """What the editor and the grid show: the unsaved text, else the stored caption."""
        if self.draft is not None:
            return self.draft
        return self.caption or ""

    @property
    def unsaved(self) -> bool:
        return self.draft is not None and self.draft.strip() != (self.caption or "")

    @property
    def has_caption(self) -> bool:
        return self.caption is not None

    @property
    def shown_confidence(self) -> float | None:
        """The model's confidence in the text shown; None when the user typed it or picked it
        (the user's own), or when it is not known."""
        if self.draft is not None:
            return None if self.typed else self.draft_confidence
        return self.confidence

    @property
    def review_confidence(self) -> float | None:
        """What a least-sure-first order goes by: the model's confidence in what it made for
        this photo, unchanged while the user edits it (so the row stays where it is)."""
        if self.draft is not None and self.draft_confidence is not None:
            return self.draft_confidence
        return self.confidence

    def confidence_of(self, text: str) -> float | None:
        """The model's confidence in ``text`` when it is exactly what the model made (saving
        it keeps the mark); None for anything the user wrote."""
        text = text.strip()
        if self.draft is not None:
            return self.shown_confidence if text == self.draft.strip() else None
        return self.confidence if text == (self.caption or "").strip() else None

    def needs_check(self, review_below: float) -> bool:
        """The model made the text shown and was less sure of it than ``review_below``."""
        sure = self.shown_confidence
        return sure is not None and sure < review_below and bool(self.text.strip())

    @property
    def status(self) -> Status:
        if self.saving:
            return Status.SAVING
        if self.working:
            return Status.WORKING
        if self.error is not None:
            return Status.ERROR
        if self.unsaved:
            return Status.UNSAVED
        if not self.loaded:
            return Status.UNKNOWN
        return Status.SAVED if self.has_caption else Status.NONE


class PhotoListModel(QAbstractListModel):
    """Rows of Photo, changed only on the GUI thread, looked up by path (never by index).

    With ``settings``, the "check this" threshold follows them (``Settings.changed``);
    without, it is core's default until ``set_review_below``.
    """

    thumbnail_requested = Signal(object)  # path: the view wants a thumbnail not in memory yet

    def __init__(self, settings: Settings | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._photos: list[Photo] = []
        self._rows: dict[Path, int] = {}
        self._thumbs: OrderedDict[Path, QPixmap] = OrderedDict()
        self._broken: set[Path] = set()
        self.device_pixel_ratio = 1.0  # of the screen the grid is on: thumbnails stay sharp
        self._review_below = CHECK_BELOW
        if settings is not None:
            self._review_below = settings.current.review_below
            settings.changed.connect(self._settings_changed)

    @property
    def review_below(self) -> float:
        """Captions the model is less sure of than this are marked "check this"."""
        return self._review_below

    def set_review_below(self, value: float) -> None:
        if value != self._review_below:
            self._review_below = value
            if self._photos:
                self.dataChanged.emit(self.index(0, 0), self.index(len(self._photos) - 1, 0))

    def _settings_changed(self, settings: AppSettings) -> None:
        self.set_review_below(settings.review_below)

    def check_note(self, photo: Photo) -> str | None:
        return check_note(photo, self._review_below)

    # ---------------------------------------------------------------- Qt model interface

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._photos)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid() or index.row() >= len(self._photos):
            return None
        photo = self._photos[index.row()]
        if role == PHOTO_ROLE:
            return photo
        if role == STATUS_ROLE:
            return photo.status
        if role == CHECK_ROLE:
            return self.check_note(photo)
        if role == Qt.ItemDataRole.DisplayRole:
            return photo.text or display_name(photo.path)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(photo.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [display_path(photo.path)]
            if photo.text:
                lines.append(photo.text)
            if note := confidence_note(photo, self._review_below):
                lines.append(note)
            if photo.error:
                lines.append(f"Problem: {photo.error}")
            elif photo.store:
                lines.append(f"Caption stored {STORED_IN.get(photo.store, photo.store)}.")
            return "\n".join(lines)
        return None

    # ---------------------------------------------------------------- rows

    def set_photos(self, paths: Iterable[Path]) -> None:
        self.beginResetModel()
        self._photos = [Photo(path=p) for p in paths]
        self._rows = {p.path: i for i, p in enumerate(self._photos)}
        self._thumbs.clear()
        self._broken.clear()
        self.endResetModel()

    def photos(self) -> Iterator[Photo]:
        return iter(self._photos)

    def photo(self, path: Path) -> Photo | None:
        row = self._rows.get(path)
        return self._photos[row] if row is not None else None

    def photo_at(self, row: int) -> Photo:
        return self._photos[row]

    def index_of(self, path: Path) -> QModelIndex:
        row = self._rows.get(path)
        return self.index(row, 0) if row is not None else QModelIndex()

    def put(self, photo: Photo) -> Photo | None:
        """Replace the row of ``photo.path`` with ``photo``; None when it is not listed."""
        row = self._rows.get(photo.path)
        if row is None:
            return None
        if photo != self._photos[row]:
            self._photos[row] = photo
            index = self.index(row, 0)
            self.dataChanged.emit(index, index)
        return photo

    def unsaved(self) -> list[Photo]:
        return [p for p in self._photos if p.unsaved]

    # ---------------------------------------------------------------- thumbnails

    def thumbnail(self, path: Path) -> QPixmap | None:
        pixmap = self._thumbs.get(path)
        if pixmap is not None:
            self._thumbs.move_to_end(path)
            return pixmap
        if path not in self._broken:
            self.thumbnail_requested.emit(path)
        return None

    def has_thumbnail(self, path: Path) -> bool:
        return path in self._thumbs

    def is_broken(self, path: Path) -> bool:
        return path in self._broken

    def set_thumbnail(self, path: Path, image: QImage) -> None:
        if path not in self._rows:
            return  # from a folder that is no longer open
        pixmap = QPixmap.fromImage(fit(image, thumbnail_pixels(self.device_pixel_ratio)))
        pixmap.setDevicePixelRatio(self.device_pixel_ratio)
        self._thumbs[path] = pixmap
        while len(self._thumbs) > PIXMAP_CACHE_SIZE:
            self._thumbs.popitem(last=False)
        index = self.index_of(path)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def set_thumbnail_failed(self, path: Path) -> None:
        if path in self._rows:
            self._broken.add(path)
            index = self.index_of(path)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


def percent(confidence: float) -> str:
    return f"{round(confidence * 100)}%"


def check_note(photo: Photo, review_below: float) -> str | None:
    """ "Check this: ..." for a caption the model was unsure of, else None."""
    if not photo.needs_check(review_below):
        return None
    sure = photo.shown_confidence
    assert sure is not None
    return (
        f"Check this: the model was unsure of this caption (confidence {percent(sure)}, "
        f"below the {percent(review_below)} set in Settings)."
    )


def confidence_note(photo: Photo, review_below: float) -> str | None:
    """What the model thinks of the caption shown: the "Check this" note when it is below the
    threshold, else its confidence (always shown for a generated caption); None for a caption
    a person wrote, or one of unknown origin."""
    if note := check_note(photo, review_below):
        return note
    sure = photo.shown_confidence
    return None if sure is None else f"The model's confidence in this caption: {percent(sure)}."


def review_key(photo: Photo) -> tuple[int, float]:
    """Least sure first: captions whose confidence is known, lowest first; then captions of
    unknown confidence (the user's own, other programs', older ones); photos without a caption
    last, since there is nothing to check."""
    sure = photo.review_confidence
    if sure is not None and photo.text.strip():
        return (0, sure)
    return (1, 0.0) if photo.text.strip() else (2, 0.0)


class PhotoFilter(QSortFilterProxyModel):
    """Shows only uncaptioned photos and/or those that match the search; in folder order, or
    least sure first.

    A photo matches when its text (unsaved edits included) contains the search text, or when
    the library index found it for the search (which also matches other word forms).
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._uncaptioned_only = False
        self._search = ""
        self._matches: frozenset[Path] = frozenset()
        self._least_sure_first = False
        # The photo being edited and its sort key when its editing began: it keeps its place
        # in a least-sure-first order (saving an edit changes its key) until another is held.
        self._held: tuple[Path, tuple[int, float]] | None = None

    @property
    def least_sure_first(self) -> bool:
        return self._least_sure_first

    def set_least_sure_first(self, enabled: bool) -> None:
        """Sort by review_key (ties in folder order), or back to the folder's order."""
        if enabled != self._least_sure_first:
            self._least_sure_first = enabled
            self.sort(0 if enabled else -1)

    @property
    def held(self) -> Path | None:
        return self._held[0] if self._held is not None else None

    def hold(self, path: Path | None) -> None:
        """Keep ``path`` where it is now in a least-sure-first order until another photo, or
        none, is held (the editor holds the photo being edited, and lets go when the selection
        moves): saving an edit must not move it out of view. The photo held before takes its
        own place again."""
        if self._held is not None and self._held[0] == path:
            return
        model = self.sourceModel()
        photo = (
            model.photo(path) if path is not None and isinstance(model, PhotoListModel) else None
        )
        released = self._held is not None
        self._held = (photo.path, review_key(photo)) if photo is not None else None
        if released and self._least_sure_first:
            self.invalidate()  # the photo let go moves to its place now

    def _key(self, photo: Photo) -> tuple[int, float]:
        if self._held is not None and self._held[0] == photo.path:
            return self._held[1]
        return review_key(photo)

    def lessThan(
        self,
        left: QModelIndex | QPersistentModelIndex,
        right: QModelIndex | QPersistentModelIndex,
    ) -> bool:
        model = self.sourceModel()
        assert isinstance(model, PhotoListModel), "PhotoFilter sorts a PhotoListModel"
        a, b = model.photo_at(left.row()), model.photo_at(right.row())
        return (self._key(a), left.row()) < (self._key(b), right.row())

    @property
    def uncaptioned_only(self) -> bool:
        return self._uncaptioned_only

    @property
    def search(self) -> str:
        return self._search

    def set_uncaptioned_only(self, enabled: bool) -> None:
        if enabled != self._uncaptioned_only:
            self.beginFilterChange()
            self._uncaptioned_only = enabled
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_search(self, text: str) -> None:
        text = text.strip().casefold()
        if text != self._search:
            self.beginFilterChange()
            self._search = text
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_matches(self, paths: frozenset[Path]) -> None:
        """The photos the library index found for the search."""
        if paths != self._matches:
            self.beginFilterChange()
            self._matches = paths
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        model = self.sourceModel()
        assert isinstance(model, PhotoListModel), "PhotoFilter filters a PhotoListModel"
        photo = model.photo_at(source_row)
        if self._uncaptioned_only and photo.has_caption:
            return False
        if self._search:
            return self._search in photo.text.casefold() or photo.path in self._matches
        return True
