"""The folder tree at the left of the window: where the open folder is, and the way to others."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QDir, QModelIndex, QTimer, Signal, Slot
from PySide6.QtWidgets import QFileSystemModel, QTreeView, QWidget

from desktop.folders import FolderTreeFilter, tree_root


class FolderTree(QTreeView):
    """Folders only; clicking one asks for it to be opened (``folder_requested``)."""

    folder_requested = Signal(object)  # path of the folder clicked

    def __init__(self, home: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("folderTree")
        self.home = home
        self.fs_model = QFileSystemModel(self)
        self.fs_model.setFilter(
            QDir.Filter.AllDirs | QDir.Filter.NoDotAndDotDot | QDir.Filter.Drives
        )
        self.folder_filter = FolderTreeFilter(self)
        self.folder_filter.setSourceModel(self.fs_model)
        self.setModel(self.folder_filter)
        for column in range(1, self.folder_filter.columnCount()):
            self.hideColumn(column)
        self._root_at(None)
        self.setHeaderHidden(True)
        self.setMinimumWidth(160)
        self.setToolTip("Folders; click one to open it")
        self.clicked.connect(self._clicked)

    def index_of(self, folder: Path | None) -> QModelIndex:
        """The row for ``folder`` (invalid when the tree does not show it)."""
        source = self.fs_model.index(str(folder)) if folder is not None else QModelIndex()
        return self.folder_filter.mapFromSource(source)

    def path_of(self, index: QModelIndex) -> Path | None:
        """The folder of one of the rows (None for the invisible top)."""
        if not index.isValid():
            return None
        return Path(self.fs_model.filePath(self.folder_filter.mapToSource(index)))

    def show_folder(self, folder: Path) -> None:
        """Select ``folder``, re-rooting the tree when it lies outside what is shown."""
        self._root_at(folder)
        # Selected but not expanded: expanding would make the tree's model list every file in
        # the folder on the GUI thread (it keeps files too, only hides them).
        index = self.index_of(folder)
        if index.isValid():
            self.setCurrentIndex(index)
            QTimer.singleShot(0, lambda: self.scrollTo(self.index_of(folder)))

    def _root_at(self, folder: Path | None) -> None:
        """Start the tree at home; an open folder outside home is shown with its ancestors."""
        outside = folder is not None and tree_root(self.home, folder) != self.home
        places = (self.home, folder) if outside and folder is not None else (self.home,)
        self.folder_filter.set_places(places)
        root = tree_root(self.home, folder if outside else None)
        self.fs_model.setRootPath(str(root) if root is not None else "")
        self.setRootIndex(self.index_of(root))

    @Slot(QModelIndex)
    def _clicked(self, index: QModelIndex) -> None:
        path = self.path_of(index)
        if path is not None:
            self.folder_requested.emit(path)
