"""The folder tree at the left of the window: where the open folder is, and the way to others;
above it, the named places (the sample photos)."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QDir,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileSystemModel,
    QFrame,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QTreeView,
    QWidget,
)

from desktop.folders import is_within, tree_root
from desktop.tasks import TaskPool

HOME_NAME = "Home"
FOLDER_THREADS = 4  # looking into folders waits on the disk (or the network), not the CPU
RELAYOUT_MS = 250  # the tree lays its rows out again at most this often for new arrows
AGAIN_S = 5.0  # arrows looked into again when the app is back, if this long since the last look


def has_subfolders(folder: Path) -> bool:
    """Whether ``folder`` holds a folder that is not hidden (stops at the first one)."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=True):
                    return True
    except OSError:
        return False
    return False


class FolderScope(QSortFilterProxyModel):
    """The folders under one top folder, with the top folder itself as the tree's only root.

    Hidden folders are left out, except those on the way to the open folder, so the open
    folder always has a row; the app's own folder (``app_dir``: the sample photos' copy, the
    library index) is always left out: the samples are a named place above the tree.

    Whether a folder not listed yet holds folders (its expand arrow) is looked up on ``pool``'s
    threads, so a slow disk or a network share never holds up the window; until the answer
    comes the folder has an arrow, and ``subfolders_known`` says when one is to go (or, after
    ``refresh``, to come).
    """

    subfolders_known = Signal()  # a folder's arrow is to come or go

    def __init__(
        self,
        home: Path,
        app_dir: Path | None = None,
        parent: QObject | None = None,
        pool: TaskPool | None = None,
    ):
        super().__init__(parent)
        self.home = home
        self.app_dir = app_dir
        self.top: Path | None = None  # None: every drive
        self.folder: Path | None = None
        self._subfolders: dict[Path, bool] = {}  # has_subfolders of the folders shown
        self._stale: set[Path] = set()  # answers to renew when next asked for (refresh)
        self._refreshes = 0  # how many times refresh was called
        self._asking: dict[Path, int] = {}  # looked into on the pool: since which refresh
        self._pool = pool  # None: looked into at once, on the calling thread

    def set_scope(self, top: Path | None, folder: Path | None) -> None:
        if folder is not None and self.app_dir is not None and is_within(folder, self.app_dir):
            folder = None  # an app folder (the samples) has no row: no way down to it
        if (top, folder) != (self.top, self.folder):
            self.beginFilterChange()
            self.top, self.folder = top, folder
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        model = self.sourceModel()
        assert isinstance(model, QFileSystemModel), "FolderScope filters a QFileSystemModel"
        index = model.index(source_row, 0, source_parent)
        path = Path(model.filePath(index))
        if self.top is not None and not is_within(path, self.top):
            return path in self.top.parents  # the way down to the top folder
        if self.app_dir is not None and is_within(path, self.app_dir):
            return False
        if self.folder is not None and (path == self.folder or path in self.folder.parents):
            return True
        return not model.fileInfo(index).isHidden()

    def hasChildren(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> bool:
        """No expand arrow on a folder without subfolders (the file system model offers one
        on every folder it has not listed yet)."""
        parent = parent if parent is not None else QModelIndex()
        if not parent.isValid():
            return super().hasChildren(parent)
        model = self.sourceModel()
        assert isinstance(model, QFileSystemModel), "FolderScope filters a QFileSystemModel"
        source = self.mapToSource(parent)
        if not model.canFetchMore(source):  # listed: what the filter lets through counts
            return self.rowCount(parent) > 0
        path = Path(model.filePath(source))
        known = self._subfolders.get(path)
        if known is not None and path not in self._stale:
            return known
        if self._pool is None:  # looked into here and now
            self._found(path, has_subfolders(path))
            return self._subfolders[path]
        if path not in self._asking:
            self._asking[path] = self._refreshes
            self._pool.submit(has_subfolders, path, on_done=partial(self._found, path))
        # Until the folder has been looked into, an arrow (as QFileSystemModel has), or the
        # answer from the last look while a new one is under way.
        return True if known is None else known

    def refresh(self) -> None:
        """Look into the folders again the next time their arrows are asked for (folders may
        have been made or removed meanwhile); the arrows stay as they are until then."""
        self._refreshes += 1
        self._stale = set(self._subfolders)

    def _found(self, path: Path, has: bool) -> None:
        if self._asking.pop(path, self._refreshes) < self._refreshes:
            self._stale.add(path)  # looked into before the last refresh: again when next asked
        else:
            self._stale.discard(path)
        before = self._subfolders.get(path)
        self._subfolders[path] = has
        if has != (True if before is None else before):
            self.subfolders_known.emit()

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and index.isValid():
            source = self.mapToSource(index)
            model = self.sourceModel()
            assert isinstance(model, QFileSystemModel), "FolderScope filters a QFileSystemModel"
            if Path(model.filePath(source)) == self.home:
                return HOME_NAME
        if role == Qt.ItemDataRole.ToolTipRole and index.isValid():
            model = self.sourceModel()
            assert isinstance(model, QFileSystemModel), "FolderScope filters a QFileSystemModel"
            return model.filePath(self.mapToSource(index))
        return super().data(index, role)


class FolderTree(QTreeView):
    """Folders only, from home (or the folder holding home and the open one) down.

    The open folder is selected with the way to it unfolded; any folder can be unfolded to
    browse, and clicking one asks for it to be opened (``folder_requested``).
    """

    folder_requested = Signal(object)  # path of the folder clicked

    def __init__(
        self, home: Path, app_dir: Path | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("folderTree")
        self.home = home
        # Threads that look into folders for their expand arrows: a share that does not answer
        # holds up one of them (and with it the arrows still to be looked into, once all are
        # held up), never the window or the app's exit (daemon threads).
        self.pool = TaskPool("folders", FOLDER_THREADS, self, daemon=True)
        self.fs_model = QFileSystemModel(self)
        self.fs_model.setFilter(
            QDir.Filter.AllDirs
            | QDir.Filter.NoDotAndDotDot
            | QDir.Filter.Drives
            | QDir.Filter.Hidden  # hidden ones are left out by FolderScope, but for the way
        )
        self.scope = FolderScope(home, app_dir, self, self.pool)
        self.scope.setSourceModel(self.fs_model)
        # The view keeps each row's arrow from its last layout: lay the rows out again when an
        # arrow is to come or go, at most once per RELAYOUT_MS however many answers come in
        # (a folder of thousands of folders on a slow share answers for seconds).
        self._relayout = QTimer(self)
        self._relayout.setSingleShot(True)
        self._relayout.setInterval(RELAYOUT_MS)
        self._relayout.timeout.connect(self.scheduleDelayedItemsLayout)
        self.scope.subfolders_known.connect(self._arrows_changed)
        self._looked_again = time.monotonic()
        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):
            app.applicationStateChanged.connect(self._application_state)
        self.setModel(self.scope)
        for column in range(1, self.scope.columnCount()):
            self.hideColumn(column)
        self.setHeaderHidden(True)
        self.setMinimumWidth(160)
        self.setToolTip("Folders; click one to open it, unfold one to look inside")
        self._root_at(None)
        self.expand(self.index_of(self.top))
        self.clicked.connect(self._clicked)

    @property
    def top(self) -> Path | None:
        return self.scope.top

    def look_again(self) -> None:
        """Bring the arrows up to date with folders made or removed since they were looked
        into (the user is back from a file manager, say); each keeps its arrow meanwhile."""
        self.scope.refresh()
        self.scheduleDelayedItemsLayout()  # the view asks for the arrows again

    @Slot()
    def _arrows_changed(self) -> None:
        if not self._relayout.isActive():
            self._relayout.start()

    @Slot(Qt.ApplicationState)
    def _application_state(self, state: Qt.ApplicationState) -> None:
        # Not at every switch back and forth (nor at the start, when the arrows are new).
        now = time.monotonic()
        if state == Qt.ApplicationState.ApplicationActive and now - self._looked_again > AGAIN_S:
            self._looked_again = now
            self.look_again()

    def shutdown(self) -> None:
        """Deliver no more answers; a look into a folder that hangs is not waited for, here or
        when the process exits."""
        self.pool.shutdown(wait=False, cancel_pending=True)

    def index_of(self, folder: Path | None) -> QModelIndex:
        """The row for ``folder`` (invalid when the tree does not show it)."""
        source = self.fs_model.index(str(folder)) if folder is not None else QModelIndex()
        return self.scope.mapFromSource(source)

    def path_of(self, index: QModelIndex | QPersistentModelIndex) -> Path | None:
        """The folder of one of the rows (None for the invisible top)."""
        if not index.isValid():
            return None
        return Path(self.fs_model.filePath(self.scope.mapToSource(index)))

    def show_folder(self, folder: Path) -> None:
        """Select ``folder`` with the way to it unfolded, re-rooting the tree if need be."""
        self._root_at(folder)
        # The way down is unfolded, the folder itself is not: unfolding it would make the
        # tree's model list every file in it on the GUI thread (it keeps files, only hides them).
        for parent in reversed(folder.parents):
            if self.top is None or is_within(parent, self.top):
                self.expand(self.index_of(parent))
        index = self.index_of(folder)
        if index.isValid():
            self.setCurrentIndex(index)
            QTimer.singleShot(0, lambda: self.scrollTo(self.index_of(folder)))
        else:  # not in the tree (a named place): nothing here is the open folder
            self.setCurrentIndex(QModelIndex())
            self.clearSelection()

    def _root_at(self, folder: Path | None) -> None:
        """Home at the top; for a folder outside home, the folder holding both."""
        top = tree_root(self.home, folder)
        if top == self.top and folder == self.scope.folder and self.fs_model.rootPath():
            return
        self.scope.set_scope(top, folder)
        self.fs_model.setRootPath(str(top) if top is not None else "")
        # The top folder is the one row at the top, so the tree says where everything is.
        self.setRootIndex(self.index_of(top).parent() if top is not None else QModelIndex())

    @Slot(QModelIndex)
    def _clicked(self, index: QModelIndex) -> None:
        path = self.path_of(index)
        if path is not None:
            self.folder_requested.emit(path)


class PlacesList(QListWidget):
    """Named places above the folder tree ("Sample photos"): clicking one asks for it."""

    place_requested = Signal(object)  # path of the place clicked

    def __init__(self, places: dict[Path, str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("places")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # A click target only (File ▸ Open Sample Photos from the keyboard): taking the focus
        # would make its first place current, as if it were the open folder.
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        icon = self.style().standardIcon(QStyle.StandardPixmap.SP_DirHomeIcon)
        for path, name in places.items():
            item = QListWidgetItem(icon, name, self)
            item.setData(Qt.ItemDataRole.UserRole, path)
            item.setToolTip(str(path))
        rows = sum(self.sizeHintForRow(row) for row in range(self.count()))
        self.setFixedHeight(rows + 2 * self.frameWidth() + 4)
        self.folder: Path | None = None  # the open folder
        self.itemClicked.connect(self._clicked)

    def path_at(self, row: int) -> Path:
        return self.item(row).data(Qt.ItemDataRole.UserRole)

    def show_folder(self, folder: Path | None) -> None:
        """Select the place ``folder`` is in, or none."""
        self.folder = folder
        for row in range(self.count()):
            if folder is None:
                break
            if is_within(folder, self.path_at(row)):
                self.setCurrentRow(row)
                return
        self.setCurrentRow(-1)
        self.clearSelection()

    @Slot(QListWidgetItem)
    def _clicked(self, item: QListWidgetItem) -> None:
        # Selected once it is open (show_folder), not before: the user may stay where they are.
        self.show_folder(self.folder)
        self.place_requested.emit(item.data(Qt.ItemDataRole.UserRole))
