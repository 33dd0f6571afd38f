"""The main window: folder tree, thumbnail grid and caption panel, wired to the worker threads."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QDir, QItemSelectionModel, QModelIndex, QSize, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFileSystemModel,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QStyle,
    QToolBar,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

import core
from core.errors import PhotoScribeError, StorageError
from core.export import export_captions
from core.library import find_photos
from core.storage import FileIdentity, StoredCaption, all_stores, read_caption_any
from desktop.captioning import (
    CaptionOptions,
    CaptionService,
    JobSummary,
    ModelChoice,
    ModelInfo,
    PhotoOutcome,
)
from desktop.dialogs import ExportRequest, Prompts
from desktop.environment import AppEnvironment, Probe, probe
from desktop.grid import PhotoGrid
from desktop.model_card import SHIPPED_WEIGHTS, about_html, read_model_card
from desktop.panel import CaptionPanel
from desktop.photos import PHOTO_ROLE, Photo, PhotoFilter, PhotoListModel, thumbnail_pixels
from desktop.samples import APP_ICON, prepare_samples
from desktop.settings import AppSettings, SettingsStore, WindowState
from desktop.status import BatchProgress, ErrorsPanel, split_error
from desktop.tasks import TaskPool
from desktop.thumbnails import ThumbnailCache, ThumbnailLoader, decode_scaled
from desktop.writer import CaptionWriter, WriteOutcome, WriteRequest

log = logging.getLogger(__name__)

PREVIEW_EDGE = 1600  # the preview is decoded at most this large
LOOKUP_CHUNK = 64  # stored captions found are handed to the GUI thread this many at a time
DEFAULT_SIZE = QSize(1280, 800)

CaptionFound = tuple[Path, StoredCaption | None, FileIdentity | None, str | None]


def lookup_captions(
    paths: list[Path],
    xmp_name: str,
    cancel: threading.Event,
    deliver: Callable[[list[CaptionFound]], None],
) -> None:
    """On a worker thread: each photo's stored caption and identity, delivered in chunks."""
    stores = all_stores(xmp_name)  # type: ignore[arg-type]
    chunk: list[CaptionFound] = []
    last = time.monotonic()
    for path in paths:
        if cancel.is_set():
            return
        try:
            identity = FileIdentity.of(path)
            found = read_caption_any(path, stores)
            chunk.append((path, found, identity, None))
        except StorageError as error:
            chunk.append((path, None, None, str(error)))
        now = time.monotonic()
        if len(chunk) >= LOOKUP_CHUNK or now - last > 0.1:
            deliver(chunk)
            chunk, last = [], now
    if chunk and not cancel.is_set():
        deliver(chunk)


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


class MainWindow(QMainWindow):
    """The GUI thread's owner of every widget and row; work goes to TaskPools and two threads."""

    def __init__(self, env: AppEnvironment | None = None, prompts: Prompts | None = None) -> None:
        super().__init__()
        self.env = env or AppEnvironment()
        self.prompts = prompts or Prompts()
        self.settings_store = SettingsStore(self.env.settings_path)
        self.settings = self.settings_store.load()
        self.folder: Path | None = None
        self.devices: tuple[str, ...] | None = None
        self.shipped_model: bool | None = None
        self.model_info: ModelInfo | None = None
        self._generation = 0  # bumped per folder opened; late results of older ones are dropped
        self._scan_cancel: threading.Event | None = None
        self._select_after_scan: Path | None = None
        self._job_id: int | None = None  # the batch the progress bar shows
        self._job_cancelling = False
        self._shut_down = False

        # Threads: instant work, the folder scan and caption lookups, thumbnails, the model,
        # and the one writer.
        self.tasks = TaskPool("tasks", 2, self)
        self.library = TaskPool("library", 1, self)
        ratio = self.devicePixelRatioF()
        self.thumbnails = ThumbnailLoader(
            ThumbnailCache(self.env.cache_dir),
            self.env.thumbnail_workers,
            display=thumbnail_pixels(ratio),
            parent=self,
        )
        self.captioning = CaptionService(self.env.captioner_factory, self)
        self.writer = CaptionWriter(self)

        self.photos = PhotoListModel(self)
        self.photos.device_pixel_ratio = ratio
        self.filter = PhotoFilter(self)
        self.filter.setSourceModel(self.photos)
        self.photos.thumbnail_requested.connect(self.thumbnails.request)
        self.thumbnails.thumbnail_ready.connect(self.photos.set_thumbnail)
        self.thumbnails.thumbnail_failed.connect(self._thumbnail_failed)
        self.photos.dataChanged.connect(self._rows_changed)
        self.photos.modelReset.connect(self._schedule_counts)

        self.captioning.model_loading.connect(self._model_loading)
        self.captioning.model_loaded.connect(self._model_loaded)
        self.captioning.photo_done.connect(self._photo_done)
        self.captioning.job_finished.connect(self._job_finished)
        self.writer.written.connect(self._written)

        self._build_widgets()
        self._build_actions()
        self._build_menus_and_toolbar()
        self._restore_window_state()
        self.setAcceptDrops(True)
        self.setWindowIcon(QIcon(str(APP_ICON)))
        self._update_title()
        self._update_actions()
        self.tasks.submit(probe, on_done=self._probed, on_error=self._probe_failed)

    # ================================================================ construction

    def _build_widgets(self) -> None:
        self.fs_model = QFileSystemModel(self)
        self.fs_model.setFilter(
            QDir.Filter.AllDirs | QDir.Filter.NoDotAndDotDot | QDir.Filter.Drives
        )
        self.fs_model.setRootPath("")
        self.tree = QTreeView(self)
        self.tree.setObjectName("folderTree")
        self.tree.setModel(self.fs_model)
        for column in range(1, self.fs_model.columnCount()):
            self.tree.hideColumn(column)
        self.tree.setHeaderHidden(True)
        self.tree.setMinimumWidth(160)
        self.tree.setToolTip("Folders; click one to open it")
        self.tree.clicked.connect(self._tree_clicked)

        self.grid = PhotoGrid(self)
        self.grid.setObjectName("photoGrid")
        self.grid.setModel(self.filter)
        self.grid.selectionModel().currentChanged.connect(self._current_changed)
        self.grid.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.welcome = WelcomePage(self)
        self.middle = QStackedWidget(self)
        self.middle.addWidget(self.welcome)
        self.middle.addWidget(self.grid)

        self.panel = CaptionPanel(self)
        self.panel.setObjectName("captionPanel")
        self.panel.editor.setAcceptDrops(False)  # a dropped folder opens it, not pastes its path
        self.panel.text_edited.connect(self._text_edited)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(self.tree)
        self.splitter.addWidget(self.middle)
        self.splitter.addWidget(self.panel)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([220, 680, 380])
        self.setCentralWidget(self.splitter)

        self.errors = ErrorsPanel(self)
        self.errors.photo_activated.connect(self.select_photo)
        self.errors_dock = QDockWidget("Problems", self)
        self.errors_dock.setObjectName("errorsDock")
        self.errors_dock.setWidget(self.errors)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.errors_dock)
        self.errors_dock.hide()

        self.progress = BatchProgress(self)
        self.progress.cancel_requested.connect(self.cancel_batch)
        self.counts_label = QLabel(self)
        self.counts_label.setObjectName("countsLabel")
        self.device_label = QLabel("Model: loads when you first caption", self)
        self.device_label.setObjectName("deviceLabel")
        bar = self.statusBar()
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.counts_label)
        bar.addPermanentWidget(self.device_label)
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(200)
        self._counts_timer.timeout.connect(self._update_counts)

        self.search = QLineEdit(self)
        self.search.setObjectName("searchBox")
        self.search.setPlaceholderText("Search captions")
        self.search.setClearButtonEnabled(True)
        self.search.setAcceptDrops(False)
        self.search.setMaximumWidth(280)
        self.search.setToolTip("Show only photos whose caption contains this text (Ctrl+F)")
        self.search.textChanged.connect(self.filter.set_search)

    def _action(
        self,
        text: str,
        slot: Callable[..., object],
        shortcut: QKeySequence | str | list | None = None,
        icon: QStyle.StandardPixmap | None = None,
        tip: str = "",
        checkable: bool = False,
    ) -> QAction:
        action = QAction(text, self)
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        if isinstance(shortcut, list):
            action.setShortcuts(shortcut)
        elif shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip} ({keys})" if keys else tip)
            action.setStatusTip(tip)
        action.setCheckable(checkable)
        if checkable:
            action.toggled.connect(slot)
        else:
            action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)  # shortcuts work even when the toolbar is hidden
        return action

    def _build_actions(self) -> None:
        sp = QStyle.StandardPixmap
        key = QKeySequence.StandardKey
        self.open_action = self._action(
            "&Open Folder…", self.choose_folder, key.Open, sp.SP_DirOpenIcon, "Open a photo folder"
        )
        self.samples_action = self._action(
            "Open &Sample Photos", self.open_samples, None, sp.SP_DirHomeIcon,
            "Open the sample photos that come with PhotoScribe",
        )  # fmt: skip
        self.reload_action = self._action(
            "&Reload Folder", self.reload_folder, key.Refresh, sp.SP_BrowserReload,
            "Read the folder and its captions again",
        )  # fmt: skip
        self.export_action = self._action(
            "&Export Captions…", self.choose_export, "Ctrl+E", sp.SP_DialogSaveButton,
            "Write this folder's captions to CSV, JSON, JSON Lines or metadata.jsonl",
        )  # fmt: skip
        self.export_action.setIcon(QIcon.fromTheme("document-export", self.export_action.icon()))
        self.settings_action = self._action(
            "Se&ttings…", self.edit_settings, [QKeySequence(key.Preferences), "Ctrl+,"],
            sp.SP_FileDialogDetailedView, "Where captions go, device, beam and batch size",
        )  # fmt: skip
        self.quit_action = self._action("&Quit", self.close, key.Quit, None, "Quit PhotoScribe")

        self.undo_action = self._action(
            "&Undo", self.panel.editor.undo, key.Undo, sp.SP_ArrowBack, "Undo the last edit"
        )
        self.redo_action = self._action(
            "&Redo", self.panel.editor.redo, [QKeySequence(key.Redo), "Ctrl+Shift+Z"],
            sp.SP_ArrowForward, "Redo",
        )  # fmt: skip
        self.panel.editor.undoAvailable.connect(self.undo_action.setEnabled)
        self.panel.editor.redoAvailable.connect(self.redo_action.setEnabled)
        self.undo_action.setEnabled(False)
        self.redo_action.setEnabled(False)
        self.save_action = self._action(
            "&Save Caption", self.save_current, key.Save, sp.SP_DialogSaveButton,
            "Save this photo's caption",
        )  # fmt: skip
        self.save_all_action = self._action(
            "Save &All Captions", self.save_all, "Ctrl+Shift+S", None,
            "Save every unsaved caption in this folder",
        )  # fmt: skip
        self.save_next_action = self._action(
            "Save and &Next", self.save_and_next, "Ctrl+Return", None,
            "Save this caption and go to the next photo",
        )  # fmt: skip
        self.revert_action = self._action(
            "Re&vert Caption", self.revert_current, None, sp.SP_DialogResetButton,
            "Forget the unsaved changes to this caption",
        )  # fmt: skip
        self.next_action = self._action(
            "Ne&xt Photo", self.next_photo, ["Ctrl+Down", "Alt+Down"], sp.SP_ArrowDown,
            "Go to the next photo",
        )  # fmt: skip
        self.previous_action = self._action(
            "&Previous Photo", self.previous_photo, ["Ctrl+Up", "Alt+Up"], sp.SP_ArrowUp,
            "Go to the previous photo",
        )  # fmt: skip

        self.caption_selected_action = self._action(
            "Caption &Selected Photos", self.caption_selected, "Ctrl+R", sp.SP_MediaPlay,
            "Caption the selected photos",
        )  # fmt: skip
        self.caption_folder_action = self._action(
            "Caption &Folder", self.caption_folder, "Ctrl+Shift+R", sp.SP_MediaSeekForward,
            "Caption every photo in this folder",
        )  # fmt: skip
        self.cancel_action = self._action(
            "&Cancel Captioning", self.cancel_batch, "Esc", sp.SP_BrowserStop,
            "Stop captioning; captions already saved stay",
        )  # fmt: skip
        self.recursive_action = self._action(
            "Include Sub&folders", self.set_recursive, None, sp.SP_DirLinkIcon,
            "Show and caption the photos in subfolders too", checkable=True,
        )  # fmt: skip
        self.recaption_action = self._action(
            "&Re-caption Photos That Have a Caption", self.set_recaption, None, None,
            "Also caption photos that already have a caption (they are skipped otherwise)",
            checkable=True,
        )  # fmt: skip
        self.uncaptioned_action = self._action(
            "Only &Uncaptioned Photos", self.filter.set_uncaptioned_only, "Ctrl+U",
            sp.SP_FileDialogListView, "Show only photos without a saved caption", checkable=True,
        )  # fmt: skip
        self.find_action = self._action("&Find in Captions", self._focus_search, key.Find)
        self.errors_action = self.errors_dock.toggleViewAction()
        self.errors_action.setText("&Problems Panel")
        self.about_action = self._action(
            "&About PhotoScribe", self.show_about, None, sp.SP_MessageBoxInformation,
            "Version, model card and licences",
        )  # fmt: skip

        self.recursive_action.blockSignals(True)
        self.recursive_action.setChecked(self.settings.recursive)
        self.recursive_action.blockSignals(False)
        self.recaption_action.blockSignals(True)
        self.recaption_action.setChecked(self.settings.recaption)
        self.recaption_action.blockSignals(False)

        self.panel.previous_button.setDefaultAction(self.previous_action)
        self.panel.next_button.setDefaultAction(self.next_action)
        self.panel.revert_button.setDefaultAction(self.revert_action)
        self.panel.save_button.setDefaultAction(self.save_action)
        self.welcome.open_button.clicked.connect(self.choose_folder)
        self.welcome.samples_button.clicked.connect(self.open_samples)

    def _build_menus_and_toolbar(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        for action in (self.open_action, self.samples_action, self.reload_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = menus.addMenu("&Edit")
        for action in (self.undo_action, self.redo_action):
            edit_menu.addAction(action)
        edit_menu.addSeparator()
        for action in (self.save_action, self.save_next_action, self.save_all_action):
            edit_menu.addAction(action)
        edit_menu.addAction(self.revert_action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.next_action)
        edit_menu.addAction(self.previous_action)
        caption_menu = menus.addMenu("&Caption")
        for action in (self.caption_selected_action, self.caption_folder_action):
            caption_menu.addAction(action)
        caption_menu.addAction(self.cancel_action)
        caption_menu.addSeparator()
        caption_menu.addAction(self.recursive_action)
        caption_menu.addAction(self.recaption_action)
        view_menu = menus.addMenu("&View")
        view_menu.addAction(self.uncaptioned_action)
        view_menu.addAction(self.find_action)
        view_menu.addSeparator()
        view_menu.addAction(self.errors_action)
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.about_action)

        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("mainToolbar")
        toolbar.setIconSize(QSize(20, 20))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setMovable(False)
        toolbar.addAction(self.open_action)
        toolbar.addSeparator()
        toolbar.addAction(self.caption_selected_action)
        toolbar.addAction(self.caption_folder_action)
        toolbar.addAction(self.cancel_action)
        toolbar.addSeparator()
        toolbar.addAction(self.save_action)
        toolbar.addSeparator()
        toolbar.addAction(self.uncaptioned_action)
        toolbar.addAction(self.recursive_action)
        spacer = QWidget(toolbar)
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        toolbar.addWidget(self.search)
        self.caption_selected_action.setIconText("Caption Selected")
        self.caption_folder_action.setIconText("Caption Folder")
        self.cancel_action.setIconText("Cancel")
        self.save_action.setIconText("Save")
        self.uncaptioned_action.setIconText("Uncaptioned")
        self.recursive_action.setIconText("Subfolders")
        self.open_action.setIconText("Open")
        self.addToolBar(toolbar)
        self.toolbar = toolbar

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

    # ================================================================ start-up

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

    @Slot(object)
    def _probed(self, found: Probe) -> None:
        self.devices = found.devices
        self.shipped_model = found.shipped_model
        if self.model_info is None:
            self._show_model_status()

    def _probe_failed(self, error: BaseException) -> None:
        log.warning("Could not check the compute devices: %s", error)
        self.device_label.setText("Model: loads when you first caption")

    def _weights(self) -> Path | None:
        if self.env.weights is not None:
            return self.env.weights
        return Path(self.settings.weights).expanduser() if self.settings.weights else None

    def _show_model_status(self) -> None:
        if self._weights() is None and self.shipped_model is False:
            self.device_label.setText("⚠ No caption model installed")
            self.device_label.setToolTip(
                f"No trained caption model is installed at {SHIPPED_WEIGHTS}. Choose a model "
                "file in Settings, or see the README on training one."
            )
            return
        devices = ", ".join(d.upper() for d in self.devices) if self.devices else "?"
        self.device_label.setText(f"Model: loads when you first caption ({devices})")
        self.device_label.setToolTip("The caption model loads the first time you caption")

    # ================================================================ folders

    def choose_folder(self) -> None:
        folder = self.prompts.choose_folder(self, self.folder or self.settings_store.last_folder)
        if folder is not None:
            self.open_folder(folder)

    def reload_folder(self) -> None:
        if self.folder is not None:
            self.open_folder(self.folder)

    def open_samples(self) -> None:
        self.statusBar().showMessage("Copying the sample photos…")
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
        if self.captioning.busy:
            self.cancel_batch()
            self.statusBar().showMessage("Captioning stopped: another folder was opened.", 5000)
        self._generation += 1
        generation = self._generation
        if self._scan_cancel is not None:
            self._scan_cancel.set()
        cancel = threading.Event()
        self._scan_cancel = cancel
        self.folder = folder
        self.settings_store.last_folder = folder
        self.thumbnails.clear()
        self.photos.set_photos([])
        self.panel.show_photo(None)
        self.middle.setCurrentWidget(self.grid)
        self._update_title()
        self._show_in_tree(folder)
        self.statusBar().showMessage(f"Opening {folder}…")
        recursive = self.settings.recursive

        def scan() -> list[Path]:
            return list(find_photos(folder, recursive))

        self.library.submit(
            scan,
            on_done=lambda paths: self._scanned(generation, paths),
            on_error=self._failed(f"Cannot open {folder.name}"),
        )
        self._update_actions()
        return True

    def _scanned(self, generation: int, paths: list[Path]) -> None:
        if generation != self._generation or self._scan_cancel is None:
            return
        self.photos.set_photos(paths)
        self._schedule_counts()
        n = len(paths)
        self.statusBar().showMessage(
            f"{n} photo{'s' if n != 1 else ''} in {self.folder}" if n else "No photos here.",
            5000,
        )
        wanted = self._select_after_scan
        self._select_after_scan = None
        if wanted is not None and self.photos.photo(wanted) is not None:
            self.select_photo(wanted)
        elif n:
            self.grid.setCurrentIndex(self.filter.index(0, 0))
        cancel = self._scan_cancel
        xmp_name = self.settings.xmp_name
        self.library.submit(
            lookup_captions,
            paths,
            xmp_name,
            cancel,
            lambda chunk: self.library.post(lambda c: self._captions_found(generation, c), chunk),
        )
        self._update_actions()

    def _captions_found(self, generation: int, chunk: list[CaptionFound]) -> None:
        if generation != self._generation:
            return
        for path, found, identity, error in chunk:
            photo = self.photos.photo(path)
            if photo is None or photo.loaded:
                continue
            if error is not None:
                # Shown on the photo (badge, tooltip, panel); the Problems panel is for what
                # failed while captioning or saving, which will name this again if it matters.
                self.photos.update(path, loaded=True, error=split_error(path, error))
            else:
                self.photos.update(
                    path,
                    loaded=True,
                    caption=found.caption if found else None,
                    store=found.store if found else None,
                    identity=photo.identity or identity,
                )
        self._schedule_counts()

    def _show_in_tree(self, folder: Path) -> None:
        # Selected but not expanded: expanding would make the tree's model list every file in
        # the folder on the GUI thread (it keeps files too, only hides them).
        index = self.fs_model.index(str(folder))
        if index.isValid():
            self.tree.setCurrentIndex(index)
            QTimer.singleShot(0, lambda: self.tree.scrollTo(self.fs_model.index(str(folder))))

    @Slot(QModelIndex)
    def _tree_clicked(self, index: QModelIndex) -> None:
        path = Path(self.fs_model.filePath(index))
        if path != self.folder:
            if not self.open_folder(path) and self.folder is not None:
                self._show_in_tree(self.folder)

    def set_recursive(self, enabled: bool) -> None:
        if enabled == self.settings.recursive:
            return
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
        if photo is None:
            self._update_actions()
            return  # keep showing the last photo (e.g. the filter just hid it)
        if photo.path != self.panel.path:
            self.panel.show_photo(photo)
            self._load_preview(photo.path)
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
        photo = self.photos.photo(path)
        if photo is None:
            return
        draft = text if text != (photo.caption or "") else None
        self.photos.update(path, draft=draft, typed=draft is not None, error=None)
        self._update_actions()

    def _rows_changed(self, top: QModelIndex, bottom: QModelIndex, roles: list[int] = ()) -> None:
        if roles and Qt.ItemDataRole.DecorationRole in roles and len(roles) == 1:
            return
        path = self.panel.path
        if path is not None:
            row = self.photos.index_of(path).row()
            if top.row() <= row <= bottom.row():
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
        row = current.row() + delta if current.isValid() else 0
        row = max(0, min(count - 1, row))
        index = self.filter.index(row, 0)
        self.grid.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        self.grid.scrollTo(index)

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    # ================================================================ saving

    def save_current(self) -> bool:
        photo = self.current_photo()
        if photo is None or not photo.unsaved:
            self.statusBar().showMessage("Nothing to save: the caption has not changed.", 3000)
            return False
        self._save(photo, photo.draft or "")
        return True

    def save_and_next(self) -> None:
        self.save_current()
        self.next_photo()

    def save_all(self) -> int:
        unsaved = self.photos.unsaved()
        for photo in unsaved:
            self._save(photo, photo.draft or "")
        if unsaved:
            self.statusBar().showMessage(f"Saving {len(unsaved)} captions…", 3000)
        return len(unsaved)

    def _save(self, photo: Photo, text: str, generated: bool = False) -> None:
        """Queue a write of ``text`` (a snapshot) on the writer thread."""
        self.writer.submit(
            WriteRequest(
                photo.path,
                text,
                store=photo.store or self.settings.store,  # type: ignore[arg-type]
                xmp_name=self.settings.xmp_name,
                # Typed by the user: they are replacing the caption on purpose.
                overwrite=True if not generated else self.settings.overwrite,
                expected=photo.identity,
                generated=generated,
            )
        )
        self.photos.update(photo.path, saving=True)

    def revert_current(self) -> None:
        photo = self.current_photo()
        if photo is None:
            return
        photo = self.photos.update(photo.path, draft=None, typed=False, error=None)
        self.panel.show_photo(photo)
        self._load_preview(photo.path)

    @Slot(object)
    def _written(self, outcome: WriteOutcome) -> None:
        request = outcome.request
        photo = self.photos.photo(request.photo)
        if outcome.ok:
            result = outcome.result
            assert result is not None
            if result.message:
                self.statusBar().showMessage(f"{request.photo.name}: {result.message}", 8000)
            if photo is None:
                return
            text = request.caption.strip()
            changes: dict[str, object] = dict(
                saving=False, caption=text, store=result.store, loaded=True, error=None
            )
            if result.photo_identity is not None:
                changes["identity"] = result.photo_identity
            if photo.draft is not None and photo.draft.strip() == text:
                changes.update(draft=None, typed=False)  # nothing typed since this snapshot
            self.photos.update(request.photo, **changes)
            if not request.generated:
                self.statusBar().showMessage(f"Saved the caption of {request.photo.name}.", 3000)
            return
        if outcome.exists and request.generated:
            # A caption is already stored and may not be replaced: the new one waits as an
            # unsaved suggestion that the user can review and save (Ctrl+S replaces it).
            if photo is not None:
                self.photos.update(request.photo, saving=False)
            self.statusBar().showMessage(
                f"{request.photo.name} already has a caption, so the new one waits for review "
                "(Ctrl+S replaces it; Settings can allow replacing captions).",
                8000,
            )
            return
        message = outcome.error or f"{request.photo}: could not be saved"
        self._add_error(request.photo, message)
        if photo is not None:
            self.photos.update(
                request.photo, saving=False, error=split_error(request.photo, message)
            )
        if not request.generated:
            self.prompts.show_error(self, "The caption was not saved", message)

    def _confirm_unsaved(self, doing: str) -> bool:
        unsaved = self.photos.unsaved()
        if not unsaved:
            return True
        choice = self.prompts.ask_unsaved(self, len(unsaved), doing)
        if choice == "cancel":
            return False
        if choice == "save":
            self.save_all()
        return True

    # ================================================================ captioning

    def caption_selected(self) -> None:
        self._start_batch(self.selected_paths(), "selected photos")

    def caption_folder(self) -> None:
        self._start_batch([p.path for p in self.photos.photos()], "photos in this folder")

    def _start_batch(self, paths: list[Path], what: str) -> None:
        if self.captioning.busy:
            self.statusBar().showMessage("Already captioning; cancel it first (Esc).", 4000)
            return
        if not paths:
            self.statusBar().showMessage("Select the photos to caption first.", 4000)
            return
        recaption = self.settings.recaption
        if not recaption:
            known = [p for p in paths if (photo := self.photos.photo(p)) and photo.has_caption]
            if known:
                skip = set(known)
                paths = [p for p in paths if p not in skip]
            if not paths:
                self.statusBar().showMessage(
                    f"All the {what} already have a caption. To caption them again, turn on "
                    "Caption ▸ Re-caption Photos That Have a Caption.",
                    8000,
                )
                return
        s = self.settings
        job = self.captioning.start(
            tuple(paths),
            options=CaptionOptions(s.beam_size, s.batch_size, s.n_candidates),
            model=ModelChoice(self._weights(), s.device),
            skip_captioned=not recaption,
            xmp_name=s.xmp_name,
        )
        self._job_id = job.job_id
        self._job_cancelling = False
        for path in paths:
            self.photos.update(path, working=True, error=None)
        self.progress.start(len(paths))
        self.statusBar().clearMessage()
        self._update_actions()

    def cancel_batch(self) -> None:
        if not self.captioning.busy:
            return
        self.captioning.cancel()
        self._job_cancelling = True
        self.progress.cancelling()
        self._clear_working()
        self._update_actions()

    @property
    def batch_running(self) -> bool:
        """The progress bar shows a batch (possibly one that is being cancelled)."""
        return self._job_id is not None

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

    @Slot(object)
    def _photo_done(self, outcome: PhotoOutcome) -> None:
        if self._shut_down:
            return  # arrived while quitting: the batch was cancelled, nothing more is written
        path = outcome.path
        photo = self.photos.photo(path)
        self.progress.advance(captioned=outcome.result is not None)
        if photo is None:
            return
        if outcome.existing is not None:
            self.photos.update(
                path,
                working=False,
                loaded=True,
                caption=outcome.existing.caption,
                store=outcome.existing.store,
            )
            return
        result = outcome.result
        assert result is not None
        if not result.ok or not result.caption:
            message = result.error or f"{path}: the model produced no caption"
            self.photos.update(path, working=False, error=split_error(path, message))
            self._add_error(path, message)
            return
        changes: dict[str, object] = dict(working=False, candidates=result.candidates, error=None)
        if outcome.identity is not None:
            changes["identity"] = outcome.identity
        if photo.draft is not None and photo.typed:
            # The user is editing this caption: keep their text, offer the new one beside it.
            self.photos.update(path, **changes)
            return
        photo = self.photos.update(path, draft=result.caption, typed=False, **changes)
        if self.settings.autosave and photo is not None:
            self._save(photo, result.caption, generated=True)

    @Slot(object)
    def _job_finished(self, summary: JobSummary) -> None:
        if summary.job_id != self._job_id:
            return
        self._job_id = None
        self._job_cancelling = False
        self.progress.finish()
        self._clear_working()
        self._update_actions()
        if summary.error:
            if summary.no_model:
                self.device_label.setText("⚠ No caption model installed")
                self.prompts.show_error(
                    self,
                    "No caption model installed",
                    "PhotoScribe cannot caption photos yet because no caption model is "
                    "installed. Choose a model file in Settings (Ctrl+,), or see the README "
                    f"on training one.\n\n{summary.error}",
                )
            else:
                self.prompts.show_error(self, "Captioning could not start", summary.error)
            return
        parts = [f"Captioned {summary.captioned} photo{'s' if summary.captioned != 1 else ''}"]
        if summary.failed:
            parts.append(f"{summary.failed} failed (see Problems)")
        if summary.skipped:
            parts.append(f"{summary.skipped} skipped (already captioned)")
        text = ", ".join(parts) + "."
        if summary.cancelled:
            text = "Cancelled. " + text
        self.statusBar().showMessage(text, 10000)

    def _clear_working(self) -> None:
        for photo in list(self.photos.photos()):
            if photo.working:
                self.photos.update(photo.path, working=False)

    # ================================================================ settings, export, about

    def edit_settings(self) -> None:
        new = self.prompts.edit_settings(self, self.settings, self.devices)
        if new is not None:
            self.apply_settings(new)

    def apply_settings(self, new: AppSettings) -> None:
        old = self.settings
        if new.recursive != old.recursive and self.folder is not None:
            if not self._confirm_unsaved("showing a different set of photos"):
                self.recursive_action.blockSignals(True)
                self.recursive_action.setChecked(old.recursive)
                self.recursive_action.blockSignals(False)
                return
        self.settings = new
        self.settings_store.save(new)
        for action, value in (
            (self.recursive_action, new.recursive),
            (self.recaption_action, new.recaption),
        ):
            action.blockSignals(True)
            action.setChecked(value)
            action.blockSignals(False)
        if (new.weights, new.device) != (old.weights, old.device) and self.model_info is None:
            self._show_model_status()
        if new.recursive != old.recursive and self.folder is not None:
            self.open_folder(self.folder, confirm=False)

    def choose_export(self) -> None:
        if self.folder is None:
            self.statusBar().showMessage("Open a folder first.", 4000)
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
            self.statusBar().showMessage(
                f"Exported {count} caption{'s' if count != 1 else ''} to {request.out}{note}.",
                10000,
            )

        self.statusBar().showMessage(f"Exporting to {request.out}…")
        self.tasks.submit(run, on_done=done, on_error=self._failed("Export failed"))

    def show_about(self) -> None:
        path = self._weights() or SHIPPED_WEIGHTS
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

    # ================================================================ problems and status

    def _failed(self, title: str) -> Callable[[BaseException], None]:
        """An on_error handler: readable errors in a dialog, anything else to the crash handler."""

        def handler(error: BaseException) -> None:
            if isinstance(error, (PhotoScribeError, OSError, ValueError)):
                self.statusBar().clearMessage()
                self.prompts.show_error(self, title, str(error))
            else:
                sys.excepthook(type(error), error, error.__traceback__)

        return handler

    def _add_error(self, path: Path | None, message: str) -> None:
        self.errors.add(path, message)
        if not self.errors_dock.isVisible():
            self.errors_dock.show()

    @Slot(object, str)
    def _thumbnail_failed(self, path: Path, reason: str) -> None:
        self.photos.set_thumbnail_failed(path)

    def _schedule_counts(self, *_args: object) -> None:
        if not self._counts_timer.isActive():
            self._counts_timer.start()

    def _update_counts(self) -> None:
        total = self.photos.rowCount()
        if self.folder is None:
            self.counts_label.setText("")
            return
        captioned = sum(1 for p in self.photos.photos() if p.has_caption)
        unsaved = sum(1 for p in self.photos.photos() if p.unsaved)
        text = f"{total} photos, {captioned} captioned"
        if unsaved:
            text += f", {unsaved} unsaved"
        self.counts_label.setText(text)

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.folder.name} — PhotoScribe" if self.folder else "PhotoScribe")

    def _update_actions(self) -> None:
        has_folder = self.folder is not None
        busy = self.captioning.busy
        photo = self.current_photo()
        self.caption_selected_action.setEnabled(
            has_folder and not busy and self.grid.selectionModel().hasSelection()
        )
        self.caption_folder_action.setEnabled(
            has_folder and not busy and self.photos.rowCount() > 0
        )
        self.cancel_action.setEnabled(busy)
        self.export_action.setEnabled(has_folder)
        self.reload_action.setEnabled(has_folder)
        self.save_action.setEnabled(photo is not None and photo.unsaved)
        self.revert_action.setEnabled(photo is not None and photo.draft is not None)

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
        if not url.isLocalFile():
            return False
        path = Path(url.toLocalFile())
        if path.is_file():
            self._select_after_scan = path
            path = path.parent
        return path.is_dir() and self.open_folder(path)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._shut_down:
            event.accept()
            return
        if not self._confirm_unsaved("quitting"):
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
        if self._scan_cancel is not None:
            self._scan_cancel.set()
        self.captioning.shutdown()  # the step in progress finishes; nothing else starts
        self.thumbnails.shutdown()
        self.library.shutdown(wait=True, cancel_pending=True)
        self.tasks.shutdown(wait=True, cancel_pending=True)
        self.writer.shutdown()  # every queued write completes; each one is atomic
        log.info("PhotoScribe closed cleanly")

    def sizeHint(self) -> QSize:
        return DEFAULT_SIZE
