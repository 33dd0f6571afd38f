"""The folder tree at the left of the window: where the open folder is, and the way to others."""

from __future__ import annotations

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
from PySide6.QtWidgets import QFileSystemModel, QTreeView, QWidget

from desktop.folders import is_within, tree_root

HOME_NAME = "Home"


class FolderScope(QSortFilterProxyModel):
    """The folders under one top folder, with the top folder itself as the tree's only root.

    Hidden folders are left out, except those on the way to the open folder (the sample
    photos live under ~/.local/share), so the open folder always has a row.
    """

    def __init__(self, home: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.home = home
        self.top: Path | None = None  # None: every drive
        self.folder: Path | None = None

    def set_scope(self, top: Path | None, folder: Path | None) -> None:
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
        if self.folder is not None and (path == self.folder or path in self.folder.parents):
            return True
        return not model.fileInfo(index).isHidden()

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

    def __init__(self, home: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("folderTree")
        self.home = home
        self.fs_model = QFileSystemModel(self)
        self.fs_model.setFilter(
            QDir.Filter.AllDirs
            | QDir.Filter.NoDotAndDotDot
            | QDir.Filter.Drives
            | QDir.Filter.Hidden  # hidden ones are left out by FolderScope, but for the way
        )
        self.scope = FolderScope(home, self)
        self.scope.setSourceModel(self.fs_model)
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
