"""The main window: folder tree, thumbnail grid and caption panel, wired to the folder session."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QDir, QItemSelectionModel, QModelIndex, QSize, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon
from PySide6.QtWidgets import (
    QDockWidget,
    QFileSystemModel,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

import core
from core.datatypes import default_weights_path
from core.errors import PhotoScribeError
from core.export import export_captions
from core.storage import all_stores
from desktop.actions import build_menus, build_toolbar, create_commands
from desktop.captioning import JobSummary, ModelInfo
from desktop.dialogs import ExportRequest, Prompts
from desktop.environment import AppEnvironment, Probe, chosen_weights, probe
from desktop.folders import FolderTreeFilter, tree_root
from desktop.grid import PhotoGrid
from desktop.model_card import about_html, read_model_card
from desktop.panel import CaptionPanel
from desktop.photos import PHOTO_ROLE, Photo, PhotoFilter
from desktop.samples import APP_ICON, prepare_samples
from desktop.search import ElsewhereButton, LibrarySearch, SearchResults
from desktop.session import FolderSession, plural
from desktop.settings import AppSettings, SettingsStore, WindowState
from desktop.status import BatchProgress, ErrorsPanel
from desktop.tasks import TaskPool
from desktop.thumbnails import decode_scaled

log = logging.getLogger(__name__)

PREVIEW_EDGE = 1600  # the preview is decoded at most this large
DEFAULT_SIZE = QSize(1280, 800)
NO_MODEL = "⚠ No caption model installed"


class WelcomePage(QWidget):
    """What the middle of the window shows before a folder is open."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        icon = QLabel(self)
        icon.setPixmap(QIcon(str(APP_ICON)).pixmap(96, 96))
        icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel("<h2>Caption your photos, on your own computer</h2>", self)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title.setWordWrap(True)
        text = QLabel(
            "Open a folder of photos (or drop one on this window). PhotoScribe writes a short "
            "description of each photo that you can review, edit and save next to it, where "
            "Lightroom, darktable, digiKam and search tools find it.",
            self,
        )
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text.setMaximumWidth(520)
        self.open_button = QPushButton("Open a Folder…", self)
        self.samples_button = QPushButton("Try the Sample Photos", self)
        self.samples_button.setToolTip("Five public-domain photos, copied to PhotoScribe's folder")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.samples_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(icon)
        layout.addWidget(title)
        layout.addWidget(text, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(12)
        layout.addLayout(buttons)
        layout.addStretch(2)


def _on(action: QAction, slot: Callable[[], object]) -> None:
    action.triggered.connect(lambda _checked=False: slot())


class MainWindow(QMainWindow):
    """Lays out the widgets, wires them to the FolderSession and asks the user through Prompts."""

    def __init__(self, env: AppEnvironment | None = None, prompts: Prompts | None = None) -> None:
        super().__init__()
        self.env = env or AppEnvironment()
        self.prompts = prompts or Prompts()
        self.settings_store = SettingsStore(self.env.settings_path)
        self.settings = self.settings_store.load()
        self.devices: tuple[str, ...] | None = None  # found by the start-up probe
        self.shipped_model: bool | None = None
        self.model_info: ModelInfo | None = None
        self._select_after_scan: Path | None = None
        self._shut_down = False

        self.tasks = TaskPool("tasks", 2, self)  # instant work: previews, export, about, probe
        self.session = FolderSession(self.env, self.settings, self.devicePixelRatioF(), self)
        self.photos = self.session.photos
        self.filter = PhotoFilter(self)
        self.filter.setSourceModel(self.photos)

        self._build_widgets()
        self.commands = create_commands(self)
        self.problems_action = self.errors_dock.toggleViewAction()
        self.problems_action.setText("&Problems Panel")
        build_menus(self.menuBar(), self.commands, self.problems_action)
        self.toolbar = build_toolbar(self, self.commands, self.search_bar)
        self.addToolBar(self.toolbar)
        self._connect()
        self._restore_window_state()
        self.setAcceptDrops(True)
        self.setWindowIcon(QIcon(str(APP_ICON)))
        self._update_title()
        self._update_actions()
        self.tasks.submit(probe, on_done=self._probed, on_error=self._probe_failed)

    # ================================================================ construction

    def _build_widgets(self) -> None:
        self.home = Path.home()
        self.fs_model = QFileSystemModel(self)
        self.fs_model.setFilter(
            QDir.Filter.AllDirs | QDir.Filter.NoDotAndDotDot | QDir.Filter.Drives
        )
        self.folder_filter = FolderTreeFilter(self)
        self.folder_filter.setSourceModel(self.fs_model)
        self.tree = QTreeView(self)
        self.tree.setObjectName("folderTree")
        self.tree.setModel(self.folder_filter)
        for column in range(1, self.folder_filter.columnCount()):
            self.tree.hideColumn(column)
        self._root_tree(None)
        self.tree.setHeaderHidden(True)
        self.tree.setMinimumWidth(160)
        self.tree.setToolTip("Folders; click one to open it")

        self.grid = PhotoGrid(self)
        self.grid.setObjectName("photoGrid")
        self.grid.setModel(self.filter)
        self.welcome = WelcomePage(self)
        self.middle = QStackedWidget(self)
        self.middle.addWidget(self.welcome)
        self.middle.addWidget(self.grid)

        self.panel = CaptionPanel(self)
        self.panel.setObjectName("captionPanel")
        self.panel.editor.setAcceptDrops(False)  # a dropped folder opens it, not pastes its path

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("mainSplitter")
        for widget, stretch in ((self.tree, 0), (self.middle, 1), (self.panel, 0)):
            self.splitter.addWidget(widget)
            self.splitter.setStretchFactor(self.splitter.count() - 1, stretch)
        self.splitter.setSizes([220, 680, 380])
        self.setCentralWidget(self.splitter)

        self.errors = ErrorsPanel(self)
        self.errors_dock = QDockWidget("Problems", self)
        self.errors_dock.setObjectName("errorsDock")
        self.errors_dock.setWidget(self.errors)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.errors_dock)
        self.errors_dock.hide()

        self.progress = BatchProgress(self)
        self.counts_label = QLabel(self)
        self.counts_label.setObjectName("countsLabel")
        self.device_label = QLabel("Model: loads when you first caption", self)
        self.device_label.setObjectName("deviceLabel")
        for widget in (self.progress, self.counts_label, self.device_label):
            self.statusBar().addPermanentWidget(widget)
        self._counts_timer = QTimer(self)  # coalesces recounting while rows change quickly
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(200)

        self.search = QLineEdit(self)
        self.search.setObjectName("searchBox")
        self.search.setPlaceholderText("Search captions")
        self.search.setClearButtonEnabled(True)
        self.search.setAcceptDrops(False)
        self.search.setMaximumWidth(280)
        self.search.setToolTip(
            "Search the captions of your whole library (Ctrl+F): matches in this folder are "
            "shown, matches elsewhere are listed beside this box"
        )
        self.elsewhere = ElsewhereButton(self)
        self.library_search = LibrarySearch(self.tasks, self.session.index_path, self)
        # One toolbar widget, so the button can hide itself (a toolbar's own widgets cannot).
        self.search_bar = QWidget(self)
        search_layout = QHBoxLayout(self.search_bar)
        search_layout.setContentsMargins(0, 0, 0, 0)
        search_layout.addWidget(self.search)
        search_layout.addWidget(self.elsewhere)

    def _connect(self) -> None:
        c = self.commands
        for action, slot in (
            (c.open, self.choose_folder),
            (c.samples, self.open_samples),
            (c.reload, self.reload_folder),
            (c.export, self.choose_export),
            (c.settings, self.edit_settings),
            (c.quit, self.close),
            (c.undo, self.panel.editor.undo),
            (c.redo, self.panel.editor.redo),
            (c.save, self.save_current),
            (c.save_next, self.save_and_next),
            (c.save_all, self.save_all),
            (c.revert, self.revert_current),
            (c.next, self.next_photo),
            (c.previous, self.previous_photo),
            (c.caption_selected, self.caption_selected),
            (c.caption_folder, self.caption_folder),
            (c.cancel, self.cancel_batch),
            (c.find, self._focus_search),
            (c.about, self.show_about),
        ):
            _on(action, slot)
        c.recursive.setChecked(self.settings.recursive)
        c.recaption.setChecked(self.settings.recaption)
        c.recursive.toggled.connect(self.set_recursive)
        c.recaption.toggled.connect(self.set_recaption)
        c.uncaptioned.toggled.connect(self.filter.set_uncaptioned_only)
        c.undo.setEnabled(False)
        c.redo.setEnabled(False)
        self.panel.editor.undoAvailable.connect(c.undo.setEnabled)
        self.panel.editor.redoAvailable.connect(c.redo.setEnabled)
        self.panel.previous_button.setDefaultAction(c.previous)
        self.panel.next_button.setDefaultAction(c.next)
        self.panel.revert_button.setDefaultAction(c.revert)
        self.panel.save_button.setDefaultAction(c.save)
        self.panel.text_edited.connect(self._text_edited)
        self.welcome.open_button.clicked.connect(self.choose_folder)
        self.welcome.samples_button.clicked.connect(self.open_samples)
        self.tree.clicked.connect(self._tree_clicked)
        self.grid.selectionModel().currentChanged.connect(self._current_changed)
        self.grid.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.search.textChanged.connect(self._search_changed)
        self.library_search.finished.connect(self._search_finished)
        self.elsewhere.photo_requested.connect(self.open_photo)
        self.errors.photo_activated.connect(self.select_photo)
        self.progress.cancel_requested.connect(self.cancel_batch)
        self._counts_timer.timeout.connect(self._update_counts)
        self.photos.dataChanged.connect(self._rows_changed)
        self.photos.modelReset.connect(self._schedule_counts)

        s = self.session
        s.listed.connect(self._listed)
        s.failed.connect(lambda title, text: self.prompts.show_error(self, title, text))
        s.problem_found.connect(self._add_problem)
        s.message_posted.connect(self._show_message)
        s.batch_started.connect(self.progress.start)
        s.photos_finished.connect(self.progress.advance)
        s.batch_total_changed.connect(self.progress.set_total)
        s.batch_finished.connect(self._batch_finished)
        s.model_load_started.connect(self._model_loading)
        s.model_loaded.connect(self._model_loaded)

    def _restore_window_state(self) -> None:
        state = self.settings_store.load_window_state()
        if state.geometry is None or not self.restoreGeometry(state.geometry):
            self.resize(DEFAULT_SIZE)
        if state.state is not None:
            self.restoreState(state.state)
        if state.splitter is not None:
            self.splitter.restoreState(state.splitter)

    def _save_window_state(self) -> None:
        self.settings_store.save_window_state(
            WindowState(self.saveGeometry(), self.saveState(), self.splitter.saveState())
        )

    def sizeHint(self) -> QSize:
        return DEFAULT_SIZE

    # ================================================================ start-up and the model

    def start(self, folder: str | Path | None) -> None:
        """Open ``folder``, else the last folder, else show the welcome page with the samples."""
        if folder is not None:
            path = Path(folder).expanduser()
            if path.is_file():
                self._select_after_scan = path
                path = path.parent
            if path.is_dir():
                self.open_folder(path, confirm=False)
                return
            self.prompts.show_error(
                self, "Cannot open the folder", f"{path}: this folder does not exist."
            )
        last = self.settings_store.last_folder
        if last is not None and last.is_dir():
            self.open_folder(last, confirm=False)
        else:
            self.middle.setCurrentWidget(self.welcome)

    def _probed(self, found: Probe) -> None:
        self.devices = found.devices
        self.shipped_model = found.shipped_model
        if self.model_info is None:
            self._show_model_status()

    def _probe_failed(self, error: BaseException) -> None:
        log.warning("Could not check the compute devices: %s", error)

    def _show_model_status(self) -> None:
        if chosen_weights(self.env, self.settings) is None and self.shipped_model is False:
            self.device_label.setText(NO_MODEL)
            self.device_label.setToolTip(
                f"No trained caption model is installed at {default_weights_path()}. Choose a "
                "model file in Settings, or see the README on training one."
            )
            return
        devices = ", ".join(d.upper() for d in self.devices) if self.devices else "?"
        self.device_label.setText(f"Model: loads when you first caption ({devices})")
        self.device_label.setToolTip("The caption model loads the first time you caption")

    @Slot()
    def _model_loading(self) -> None:
        self.progress.set_message("Loading the caption model…")
        self.device_label.setText("Model: loading…")

    @Slot(object)
    def _model_loaded(self, info: ModelInfo) -> None:
        self.model_info = info
        self.device_label.setText(f"Model on {info.device_name}")
        self.device_label.setToolTip(str(info.path) if info.path else "")
        self.progress.set_message("Captioning…")

    # ================================================================ folders

    @property
    def folder(self) -> Path | None:
        return self.session.folder

    def choose_folder(self) -> None:
        folder = self.prompts.choose_folder(self, self.folder or self.settings_store.last_folder)
        if folder is not None:
            self.open_folder(folder)

    def reload_folder(self) -> None:
        if self.folder is not None:
            self.open_folder(self.folder)

    def open_samples(self) -> None:
        self._show_message("Copying the sample photos…", 0)
        self.tasks.submit(
            prepare_samples,
            self.env.data_dir,
            on_done=lambda folder: self.open_folder(folder),
            on_error=self._failed("Cannot open the sample photos"),
        )

    def open_folder(self, folder: Path, confirm: bool = True) -> bool:
        """Show ``folder``'s photos; False when the user chose to stay (unsaved changes)."""
        if confirm and not self._confirm_unsaved("opening another folder"):
            return False
        self.panel.show_photo(None)
        self.session.open(folder, self.settings.recursive)
        self.settings_store.last_folder = folder
        self.middle.setCurrentWidget(self.grid)
        self._update_title()
        self._show_in_tree(folder)
        self._update_actions()
        return True

    def _listed(self, folder: Path, count: int) -> None:
        self._search_library(now=True)  # the matches in this folder, and elsewhere from here
        wanted, self._select_after_scan = self._select_after_scan, None
        if wanted is not None and self.photos.photo(wanted) is not None:
            self.select_photo(wanted)
        elif count:
            self.grid.setCurrentIndex(self.filter.index(0, 0))
        self._update_actions()

    def tree_index(self, folder: Path | None) -> QModelIndex:
        """The tree's row for ``folder`` (invalid when the tree does not show it)."""
        source = self.fs_model.index(str(folder)) if folder is not None else QModelIndex()
        return self.folder_filter.mapFromSource(source)

    def tree_path(self, index: QModelIndex) -> Path | None:
        """The folder of one of the tree's rows (None for the invisible top)."""
        if not index.isValid():
            return None
        return Path(self.fs_model.filePath(self.folder_filter.mapToSource(index)))

    def _root_tree(self, folder: Path | None) -> None:
        """Start the tree at home; an open folder outside home is shown with its ancestors."""
        outside = folder is not None and tree_root(self.home, folder) != self.home
        places = (self.home, folder) if outside and folder is not None else (self.home,)
        self.folder_filter.set_places(places)
        root = tree_root(self.home, folder if outside else None)
        self.fs_model.setRootPath(str(root) if root is not None else "")
        self.tree.setRootIndex(self.tree_index(root))

    def _show_in_tree(self, folder: Path) -> None:
        self._root_tree(folder)
        # Selected but not expanded: expanding would make the tree's model list every file in
        # the folder on the GUI thread (it keeps files too, only hides them).
        index = self.tree_index(folder)
        if index.isValid():
            self.tree.setCurrentIndex(index)
            QTimer.singleShot(0, lambda: self.tree.scrollTo(self.tree_index(folder)))

    @Slot(QModelIndex)
    def _tree_clicked(self, index: QModelIndex) -> None:
        path = self.tree_path(index)
        if path is None:
            return
        if path != self.folder and not self.open_folder(path) and self.folder is not None:
            self._show_in_tree(self.folder)

    def set_recursive(self, enabled: bool) -> None:
        if enabled != self.settings.recursive:
            self.apply_settings(self.settings.with_changes(recursive=enabled))

    def set_recaption(self, enabled: bool) -> None:
        if enabled != self.settings.recaption:
            self.apply_settings(self.settings.with_changes(recaption=enabled))

    # ================================================================ selection and editing

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
            self.grid.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect
            )
            self.grid.scrollTo(index)

    @Slot(QModelIndex, QModelIndex)
    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        photo: Photo | None = current.data(PHOTO_ROLE) if current.isValid() else None
        if photo is not None and photo.path != self.panel.path:
            self.panel.show_photo(photo)
            self._load_preview(photo.path)
        # No photo (the filter just hid it): the panel keeps showing the last one.
        self._update_actions()

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

    @Slot(object, str)
    def _text_edited(self, path: Path, text: str) -> None:
        self.session.set_draft(path, text)
        self._update_actions()

    def _rows_changed(self, top: QModelIndex, bottom: QModelIndex, roles: list[int] = ()) -> None:
        if list(roles) == [Qt.ItemDataRole.DecorationRole]:
            return  # only a thumbnail arrived
        path = self.panel.path
        if path is not None and top.row() <= self.photos.index_of(path).row() <= bottom.row():
            self.panel.refresh(self.photos.photo(path))
            self._update_actions()
        self._schedule_counts()

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
        index = self.filter.index(row, 0)
        self.grid.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        self.grid.scrollTo(index)

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    # ================================================================ search

    def _search_changed(self, text: str) -> None:
        # At once in the open folder (unsaved and not yet indexed captions included), and
        # over the whole library index once the user pauses typing.
        self.filter.set_search(text)
        self._search_library()

    def _search_library(self, now: bool = False) -> None:
        query = self.search.text().strip()
        if not query:
            self.library_search.clear()
            self.filter.set_matches(frozenset())
            self.elsewhere.show_hits(())
            return
        self.library_search.request(query, self.folder, self.photos.rowCount(), now=now)

    @Slot(object)
    def _search_finished(self, results: SearchResults) -> None:
        if results.query != self.search.text().strip():
            return  # typed on since
        if results.problem is not None:
            log.info("Library search unavailable: %s", results.problem)
        self.filter.set_matches(results.paths)
        self.elsewhere.show_hits([h for h in results.library if self.photos.photo(h.path) is None])

    def open_photo(self, path: Path) -> None:
        """Show ``path``: select it here, or open its folder with it selected."""
        if self.photos.photo(path) is not None:
            self.select_photo(path)
            return
        self._select_after_scan = path
        if not self.open_folder(path.parent):
            self._select_after_scan = None

    def save_current(self) -> bool:
        photo = self.current_photo()
        if photo is None or not photo.unsaved:
            self._show_message("Nothing to save: the caption has not changed.", 3000)
            return False
        self.session.save(photo, photo.draft or "")
        return True

    def save_and_next(self) -> None:
        self.save_current()
        self.next_photo()

    def save_all(self) -> int:
        return self.session.save_all()

    def revert_current(self) -> None:
        photo = self.current_photo()
        if photo is not None:
            self.panel.show_photo(self.session.revert(photo.path))
            self._load_preview(photo.path)

    def _confirm_unsaved(self, doing: str) -> bool:
        unsaved = self.photos.unsaved()
        if not unsaved:
            return True
        choice = self.prompts.ask_unsaved(self, len(unsaved), doing)
        if choice == "cancel":
            return False
        if choice == "save":
            self.session.save_all()
        return True

    # ================================================================ captioning

    @property
    def batch_running(self) -> bool:
        return self.session.batch_running

    def caption_selected(self) -> None:
        self.session.caption_photos(self.selected_paths())
        self._update_actions()

    def caption_folder(self) -> None:
        self.session.caption_folder()
        self._update_actions()

    def cancel_batch(self) -> None:
        if self.session.cancel_batch():
            self.progress.cancelling()
        self._update_actions()

    @Slot(object)
    def _batch_finished(self, summary: JobSummary) -> None:
        self.progress.finish()
        self._update_actions()
        self._search_library(now=True)  # the new captions are in the index now
        if summary.no_model:
            self.device_label.setText(NO_MODEL)
            self.prompts.show_error(
                self,
                "No caption model installed",
                "PhotoScribe cannot caption photos yet because no caption model is installed. "
                "Choose a model file in Settings (Ctrl+,), or see the README on training one."
                f"\n\n{summary.error}",
            )
            return
        if summary.error:
            self.prompts.show_error(self, "Captioning could not start", summary.error)
            return
        parts = [f"Captioned {plural(summary.captioned, 'photo')}"]
        if summary.failed:
            parts.append(f"{summary.failed} failed (see Problems)")
        if summary.skipped:
            parts.append(f"{summary.skipped} skipped (already captioned)")
        text = ", ".join(parts) + "."
        self._show_message(f"Cancelled. {text}" if summary.cancelled else text, 10000)

    # ================================================================ settings, export, about

    def edit_settings(self) -> None:
        new = self.prompts.edit_settings(self, self.settings, self.devices)
        if new is not None:
            self.apply_settings(new)

    def apply_settings(self, new: AppSettings) -> None:
        old = self.settings
        relist = new.recursive != old.recursive and self.folder is not None
        if relist and not self._confirm_unsaved("showing a different set of photos"):
            new = new.with_changes(recursive=old.recursive)
            relist = False
        self.settings = self.session.settings = new
        self.settings_store.save(new)
        for action, value in (
            (self.commands.recursive, new.recursive),
            (self.commands.recaption, new.recaption),
        ):
            action.blockSignals(True)
            action.setChecked(value)
            action.blockSignals(False)
        if self.model_info is None:
            self._show_model_status()
        if relist and self.folder is not None:
            self.open_folder(self.folder, confirm=False)

    def choose_export(self) -> None:
        if self.folder is None:
            self._show_message("Open a folder first.", 4000)
            return
        request = self.prompts.choose_export(self, self.folder, self.settings.recursive)
        if request is not None:
            self.export(request)

    def export(self, request: ExportRequest) -> None:
        folder = self.folder
        assert folder is not None, "export needs an open folder"
        unsaved = len(self.photos.unsaved())
        stores = all_stores(self.settings.xmp_name)

        def run() -> int:
            return export_captions(
                folder,
                recursive=request.recursive,
                fmt=request.fmt,
                out=request.out,
                bom=request.bom,
                stores=stores,
            )

        def done(count: int) -> None:
            note = f" ({unsaved} unsaved captions were not included)" if unsaved else ""
            self._show_message(
                f"Exported {plural(count, 'caption')} to {request.out}{note}.", 10000
            )

        self._show_message(f"Exporting to {request.out}…", 0)
        self.tasks.submit(run, on_done=done, on_error=self._failed("Export failed"))

    def show_about(self) -> None:
        path = chosen_weights(self.env, self.settings) or default_weights_path()
        device = self.model_info.device_name if self.model_info else None
        if device is None and self.devices:
            device = f"not loaded yet (available: {', '.join(d.upper() for d in self.devices)})"
        self.tasks.submit(
            read_model_card,
            path,
            on_done=lambda card: self.prompts.show_about(
                self, about_html(core.__version__, card, device)
            ),
        )

    # ================================================================ messages and status

    def _failed(self, title: str) -> Callable[[BaseException], None]:
        """An on_error handler: readable errors in a dialog, anything else to the crash handler."""

        def handler(error: BaseException) -> None:
            if isinstance(error, (PhotoScribeError, OSError, ValueError)):
                self.statusBar().clearMessage()
                self.prompts.show_error(self, title, str(error))
            else:
                sys.excepthook(type(error), error, error.__traceback__)

        return handler

    def _show_message(self, text: str, timeout_ms: int) -> None:
        if text:
            self.statusBar().showMessage(text, timeout_ms)
        else:
            self.statusBar().clearMessage()

    def _add_problem(self, path: Path | None, message: str) -> None:
        self.errors.add(path, message)
        if not self.errors_dock.isVisible():
            self.errors_dock.show()

    def _schedule_counts(self, *_args: object) -> None:
        if not self._counts_timer.isActive():
            self._counts_timer.start()

    def _update_counts(self) -> None:
        if self.folder is None:
            self.counts_label.setText("")
            return
        photos = list(self.photos.photos())
        captioned = sum(1 for p in photos if p.has_caption)
        unsaved = sum(1 for p in photos if p.unsaved)
        text = f"{plural(len(photos), 'photo')}, {captioned} captioned"
        self.counts_label.setText(f"{text}, {unsaved} unsaved" if unsaved else text)

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.folder.name} — PhotoScribe" if self.folder else "PhotoScribe")

    def _update_actions(self) -> None:
        c = self.commands
        has_folder = self.folder is not None
        busy = self.session.captioning.busy
        photo = self.current_photo()
        has_selection = self.grid.selectionModel().hasSelection()
        c.caption_selected.setEnabled(has_folder and not busy and has_selection)
        c.caption_folder.setEnabled(has_folder and not busy and self.photos.rowCount() > 0)
        c.cancel.setEnabled(busy)
        c.export.setEnabled(has_folder)
        c.reload.setEnabled(has_folder)
        c.save.setEnabled(photo is not None and photo.unsaved)
        c.revert.setEnabled(photo is not None and photo.draft is not None)

    # ================================================================ drag and drop, quitting

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        for url in event.mimeData().urls():
            if self.open_dropped(url):
                event.acceptProposedAction()
                return

    def open_dropped(self, url: QUrl) -> bool:
        """Open a dropped folder, or the folder of a dropped photo with that photo selected."""
        if not url.isLocalFile():
            return False
        path = Path(url.toLocalFile())
        if path.is_file():
            self._select_after_scan = path
            path = path.parent
        return path.is_dir() and self.open_folder(path)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._shut_down and not self._confirm_unsaved("quitting"):
            event.ignore()
            return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Cancel the batch, stop every thread and wait for the writer to finish its queue."""
        if self._shut_down:
            return
        self._shut_down = True
        self._save_window_state()
        self.session.shutdown()
        self.tasks.shutdown(wait=True, cancel_pending=True)
        log.info("PhotoScribe closed cleanly")
