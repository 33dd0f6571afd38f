"""Reviewing captions: the panel follows the grid's current photo; save, revert and step.

The commands Save, Save and Next, Revert, Next and Previous come here: they act on the photo
being edited, which only the Editor knows; the saves themselves are the Saver's.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QObject, Qt, Signal, Slot

from core.errors import PhotoScribeError
from desktop.grid import PhotoGrid
from desktop.panel import CaptionPanel
from desktop.photos import PHOTO_ROLE, Photo, PhotoFilter, PhotoListModel
from desktop.saving import Saver
from desktop.tasks import TaskPool
from desktop.thumbnails import decode_scaled

PREVIEW_EDGE = 1600  # the preview is decoded at most this large


class Editor(QObject):
    """Binds the grid's selection to the caption panel, and the panel's edits to the saver."""

    changed = Signal()  # what can be saved, reverted or captioned may be different now
    message_posted = Signal(str, int)  # status-bar text, how long to show it (ms)

    def __init__(
        self,
        grid: PhotoGrid,
        photo_filter: PhotoFilter,
        panel: CaptionPanel,
        saver: Saver,
        tasks: TaskPool,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.grid = grid
        self.filter = photo_filter
        self.panel = panel
        self.saver = saver
        self.photos: PhotoListModel = saver.photos
        self.tasks = tasks
        self.select_when_listed: Path | None = None  # the photo to select once it is listed
        grid.selectionModel().currentChanged.connect(self._current_changed)
        grid.selectionModel().selectionChanged.connect(lambda *_: self.changed.emit())
        panel.text_edited.connect(self._text_edited)
        panel.keep_requested.connect(self.keep_caption)
        self.photos.dataChanged.connect(self._rows_changed)
        # The filter (uncaptioned only, search) hides and shows rows: the panel follows.
        photo_filter.rowsRemoved.connect(self._filtered)
        photo_filter.rowsInserted.connect(self._filtered)
        photo_filter.layoutChanged.connect(self._filtered)

    # ---------------------------------------------------------------- which photo

    def selected_paths(self) -> list[Path]:
        rows = sorted(
            self.filter.mapToSource(index).row()
            for index in self.grid.selectionModel().selectedIndexes()
        )
        return [self.photos.photo_at(row).path for row in rows]

    def current_photo(self) -> Photo | None:
        return self.photos.photo(self.panel.path) if self.panel.path is not None else None

    def select_photo(self, path: Path) -> None:
        index = self.filter.mapFromSource(self.photos.index_of(path))
        if index.isValid():
            self._make_current(index)

    def select_first(self) -> None:
        if self.filter.rowCount() > 0:
            self.grid.setCurrentIndex(self.filter.index(0, 0))

    def listed(self, _folder: Path, count: int) -> None:
        """A folder's photos are listed: select the one asked for, else the first."""
        wanted, self.select_when_listed = self.select_when_listed, None
        if wanted is not None and self.photos.photo(wanted) is not None:
            self.select_photo(wanted)
        elif count:
            self.select_first()
        self.changed.emit()

    def next_photo(self) -> None:
        self._step(1)

    def previous_photo(self) -> None:
        self._step(-1)

    def _step(self, delta: int) -> None:
        count = self.filter.rowCount()
        if count == 0:
            return
        current = self.grid.currentIndex()
        row = max(0, min(count - 1, current.row() + delta if current.isValid() else 0))
        self._make_current(self.filter.index(row, 0))

    def _make_current(self, index: QModelIndex) -> None:
        self.grid.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        # Not ``index``: moving the selection lets go of the photo the filter held in place
        # (_current_changed), which re-sorts the grid and leaves ``index`` pointing into the
        # proxy's freed mapping (a crash). The view's current index is kept up to date.
        self.grid.scrollTo(self.grid.currentIndex())

    @Slot(QModelIndex, QModelIndex)
    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        photo: Photo | None = current.data(PHOTO_ROLE) if current.isValid() else None
        if photo is None or photo.path != self.filter.held:
            self.filter.hold(None)  # the selection moved: the photo edited takes its place
        if photo is not None and photo.path != self.panel.path:
            self.panel.show_photo(photo)
            self._load_preview(photo.path)
        self.changed.emit()

    def _filtered(self, *_args: object) -> None:
        """Rows were hidden or shown: the panel shows the grid's current photo, selected.

        When the filter hides the current photo, the view makes a neighbour current but does
        not select it; when it hides every photo, the panel shows none.
        """
        current = self.grid.currentIndex()
        selection = self.grid.selectionModel()
        if current.isValid():
            if not selection.isSelected(current):
                selection.select(current, QItemSelectionModel.SelectionFlag.Select)
        elif self.filter.rowCount() > 0:
            self.select_first()
        elif self.panel.path is not None:
            self.panel.show_photo(None)
        self.changed.emit()

    def _load_preview(self, path: Path) -> None:
        def failed(error: BaseException) -> None:
            problem = error.problem if isinstance(error, PhotoScribeError) else str(error)
            self.panel.set_preview(path, None, f"Cannot show this photo:\n{problem}")

        self.tasks.submit(
            decode_scaled,
            path,
            PREVIEW_EDGE,
            on_done=lambda image: self.panel.set_preview(path, image),
            on_error=failed,
        )

    # ---------------------------------------------------------------- editing

    @Slot(object, str)
    def _text_edited(self, path: Path, text: str) -> None:
        # Least sure first: the photo being edited keeps its place until the selection moves.
        self.filter.hold(path)
        self.saver.set_draft(path, text)
        self.changed.emit()

    def _rows_changed(self, top: QModelIndex, bottom: QModelIndex, roles: list[int] = ()) -> None:
        if list(roles) == [Qt.ItemDataRole.DecorationRole]:
            return  # only a thumbnail arrived
        path = self.panel.path
        if path is not None and top.row() <= self.photos.index_of(path).row() <= bottom.row():
            self.panel.refresh(self.photos.photo(path))
            self.changed.emit()

    def save_current(self) -> bool:
        photo = self.current_photo()
        if photo is None or not photo.unsaved:
            self.message_posted.emit("Nothing to save: the caption has not changed.", 3000)
            return False
        self.filter.hold(photo.path)
        self.saver.save(photo, photo.draft or "")
        return True

    def keep_caption(self, path: Path, text: str) -> None:
        """The photo's stores disagree and the user keeps ``text``: saved to the store chosen
        in Settings, every other store is brought to it (Saver saves with overwrite)."""
        photo = self.photos.photo(path)
        if photo is not None:
            self.filter.hold(path)
            self.saver.save(photo, text)

    def save_and_next(self) -> None:
        self.save_current()
        self.next_photo()

    def revert_current(self) -> None:
        photo = self.current_photo()
        if photo is not None:
            self.panel.show_photo(self.saver.revert(photo.path))
            self._load_preview(photo.path)
