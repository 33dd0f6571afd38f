"""The folder tree's scope: the user's home, and the way to an open folder outside it."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
)
from PySide6.QtWidgets import QFileSystemModel


def is_within(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or inside it (by name; links are not followed)."""
    return path == folder or folder in path.parents


def tree_root(home: Path, folder: Path | None) -> Path | None:
    """Where the tree starts: home, or the folder holding both home and an open folder
    outside it; None (every drive) when they have nothing in common (Windows drives)."""
    if folder is None or is_within(folder, home):
        return home
    try:
        return Path(os.path.commonpath([home, folder]))
    except ValueError:
        return None


class FolderTreeFilter(QSortFilterProxyModel):
    """Shows only the folders inside the given places, and those on the way to them.

    With home and an open folder elsewhere as the places, the tree shows home's folders and
    the open folder's, reached through its ancestors, but none of the system folders beside
    them ("/usr", "/proc", "C:/Windows").
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._places: tuple[Path, ...] = ()

    @property
    def places(self) -> tuple[Path, ...]:
        return self._places

    def set_places(self, places: tuple[Path, ...]) -> None:
        if places != self._places:
            self.beginFilterChange()
            self._places = places
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        model = self.sourceModel()
        assert isinstance(model, QFileSystemModel), "FolderTreeFilter filters a QFileSystemModel"
        path = Path(model.filePath(model.index(source_row, 0, source_parent)))
        return any(is_within(path, place) or path in place.parents for place in self._places)
