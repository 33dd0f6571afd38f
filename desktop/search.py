"""Searching captions: the open folder at once, the whole library index off the GUI thread."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QMenu, QToolButton, QWidget

from core.errors import LibraryIndexError
from core.index import SearchHit, search_library
from desktop.photos import PhotoFilter, PhotoListModel
from desktop.tasks import TaskPool

log = logging.getLogger(__name__)

LIBRARY_LIMIT = 200  # matches fetched from the whole library
MENU_LIMIT = 25  # of those outside the open folder, listed in the menu
TYPING_PAUSE_MS = 250  # search once the user pauses typing
SEARCH_BOX_MARGIN = 48  # the box's frame, text margins and clear button beside its hint


@dataclass(frozen=True)
class SearchResults:
    """What one search found in the library index."""

    query: str
    in_folder: tuple[SearchHit, ...] = ()  # every match under the open folder
    library: tuple[SearchHit, ...] = ()  # the best matches of the whole library, best first
    problem: str | None = None  # why the index could not be searched (none yet, in use, ...)

    @property
    def paths(self) -> frozenset[Path]:
        return frozenset(hit.path for hit in (*self.in_folder, *self.library))


def search_everywhere(
    query: str, folder: Path | None, folder_size: int, index_path: Path
) -> SearchResults:
    """On a worker thread: ``query`` over the open folder (all its matches) and the library.

    The same search as `photoscribe search`: every word of the query first, then some of
    them; stemmed, so "dogs" finds "dog"; the last word also as a prefix.
    """
    try:
        in_folder = search_library(query, folder, max(folder_size, 1), index_path) if folder else []
        library = search_library(query, None, LIBRARY_LIMIT, index_path)
    except LibraryIndexError as error:
        return SearchResults(query, problem=str(error))
    return SearchResults(query, tuple(in_folder), tuple(library))


class LibrarySearch(QObject):
    """Runs searches on a task pool after a pause in typing; only the latest result is kept."""

    finished = Signal(object)  # SearchResults of the latest request

    def __init__(self, pool: TaskPool, index_path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = pool
        self.index_path = index_path
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(TYPING_PAUSE_MS)
        self._timer.timeout.connect(self._run)
        self._request: tuple[str, Path | None, int] | None = None
        self._generation = 0

    @property
    def busy(self) -> bool:
        """A search is waiting for the pause in typing, or running."""
        return self._timer.isActive() or self._request is not None

    def request(self, query: str, folder: Path | None, folder_size: int, now: bool = False) -> None:
        """Search for ``query`` soon (``now``: without waiting for a pause in typing)."""
        self._generation += 1  # whatever is running now is out of date
        self._request = (query, folder, folder_size)
        self._timer.start(0 if now else TYPING_PAUSE_MS)

    def clear(self) -> None:
        self._generation += 1
        self._request = None
        self._timer.stop()

    def _run(self) -> None:
        if self._request is None:
            return
        query, folder, size = self._request
        generation = self._generation

        def done(results: SearchResults) -> None:
            if generation == self._generation:
                self._request = None
                self.finished.emit(results)

        def failed(error: BaseException) -> None:
            log.warning("Searching the library index failed: %s", error)
            done(SearchResults(query, problem=str(error)))

        self._pool.submit(
            search_everywhere, query, folder, size, self.index_path, on_done=done, on_error=failed
        )


class ElsewhereButton(QToolButton):
    """ "N more in other folders": its menu lists those photos; picking one asks to open it."""

    photo_requested = Signal(object)  # path

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("searchElsewhere")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.results_menu = QMenu(self)
        self.setMenu(self.results_menu)
        self.hits: tuple[SearchHit, ...] = ()
        self.hide()

    def show_hits(self, hits: list[SearchHit] | tuple[SearchHit, ...]) -> None:
        """List ``hits`` (best first); hidden when there are none."""
        self.hits = tuple(hits)
        self.results_menu.clear()
        if not hits:
            self.hide()
            return
        n = len(hits)
        more = f"{LIBRARY_LIMIT}+" if n >= LIBRARY_LIMIT else str(n)
        self.setText(f"{more} more in other folders")
        self.setToolTip("Photos elsewhere in your library whose captions match; pick one to open")
        for hit in hits[:MENU_LIMIT]:
            caption = hit.caption if len(hit.caption) <= 60 else hit.caption[:59] + "…"
            action = self.results_menu.addAction(
                f"{caption}  —  {hit.path.parent.name}/{hit.path.name}"
            )
            action.setToolTip(str(hit.path))
            action.triggered.connect(
                lambda _checked=False, path=hit.path: self.photo_requested.emit(path)
            )
        if n > MENU_LIMIT:
            note = self.results_menu.addAction(f"… and {n - MENU_LIMIT} more; refine the search")
            note.setEnabled(False)
        self.show()


class SearchBar(QWidget):
    """The search box and, beside it, the photos that match in other folders.

    Typing filters the open folder's grid at once (unsaved and not yet indexed captions
    included), and searches the whole library index once the user pauses.
    """

    photo_requested = Signal(object)  # path of a match in another folder, picked to open

    def __init__(
        self,
        pool: TaskPool,
        index_path: Path,
        photos: PhotoListModel,
        photo_filter: PhotoFilter,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.photos = photos
        self.filter = photo_filter
        self.folder: Path | None = None  # the open folder, set by the window
        self.box = QLineEdit(self)
        self.box.setObjectName("searchBox")
        self.box.setPlaceholderText("Search captions")
        self.box.setClearButtonEnabled(True)
        self.box.setAcceptDrops(False)
        self.box.setMaximumWidth(280)
        # Its hint readable, whatever the window's width: "Search captions", not "Sear..."
        hint = self.box.fontMetrics().horizontalAdvance(self.box.placeholderText())
        self.box.setMinimumWidth(min(hint + SEARCH_BOX_MARGIN, 280))
        self.box.setToolTip(
            "Search the captions of your whole library (Ctrl+F): matches in this folder are "
            "shown, matches elsewhere are listed beside this box"
        )
        # The button lives in this widget, not the toolbar, so that it can hide itself.
        self.elsewhere = ElsewhereButton(self)
        self.library = LibrarySearch(pool, index_path, self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.box)
        layout.addWidget(self.elsewhere)
        self.box.textChanged.connect(self._text_changed)
        self.library.finished.connect(self._finished)
        self.elsewhere.photo_requested.connect(self.photo_requested)

    @property
    def query(self) -> str:
        return self.box.text().strip()

    def focus(self) -> None:
        self.box.setFocus()
        self.box.selectAll()

    def search_now(self) -> None:
        """Search again at once: another folder is listed, or the index has new captions."""
        self._search_library(now=True)

    @Slot(str)
    def _text_changed(self, text: str) -> None:
        self.filter.set_search(text)
        self._search_library()

    def _search_library(self, now: bool = False) -> None:
        query = self.query
        if not query:
            self.library.clear()
            self.filter.set_matches(frozenset())
            self.elsewhere.show_hits(())
            return
        self.library.request(query, self.folder, self.photos.rowCount(), now=now)

    @Slot(object)
    def _finished(self, results: SearchResults) -> None:
        if results.query != self.query:
            return  # typed on since
        if results.problem is not None:
            log.info("Library search unavailable: %s", results.problem)
        self.filter.set_matches(results.paths)
        self.elsewhere.show_hits([h for h in results.library if self.photos.photo(h.path) is None])
