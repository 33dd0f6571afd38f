"""The main window: lays out the folder tree, grid and caption panel and wires them together.

Each concern lives in its own module; this one connects them and carries out the commands:
- folder_tree.FolderTree: the folders at the left;
- search.SearchBar: the search box and its matches in other folders;
- editor.Editor: the panel follows the grid's photo; save, revert, next and previous;
- status_bar.StatusLine: messages, batch progress, counts and the model's device;
- session.FolderSession: the open folder's photos and every thread that works on them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
)
from PySide6.QtWidgets import QDockWidget, QMainWindow, QSplitter, QStackedWidget

import core
from core.datatypes import default_weights_path
from core.errors import PhotoScribeError
from core.export import export_captions
from core.storage import all_stores
from desktop.actions import build_menus, build_toolbar, create_commands
from desktop.captioning import JobSummary, ModelInfo
from desktop.dialogs import ExportRequest, Prompts
from desktop.editor import Editor
from desktop.environment import AppEnvironment, Probe, chosen_weights, probe
from desktop.folder_tree import FolderTree
from desktop.grid import PhotoGrid, empty_grid_text
from desktop.model_card import about_html, read_model_card
from desktop.panel import CaptionPanel
from desktop.photos import PhotoFilter
from desktop.review import ReviewFlow
from desktop.samples import APP_ICON, prepare_samples
from desktop.saving import Refusals
from desktop.search import SearchBar
from desktop.session import FolderSession, plural
from desktop.settings import AppSettings, SettingsStore, WindowState
from desktop.status import ErrorsPanel
from desktop.status_bar import StatusLine, batch_report
from desktop.tasks import TaskPool
from desktop.welcome import WelcomePage

log = logging.getLogger(__name__)

DEFAULT_SIZE = QSize(1280, 800)
FRAME_ALLOWANCE = QSize(16, 48)  # what a window manager's frame and title bar usually take


def fit_to_screen(wanted: QSize, free: QSize) -> QSize:
    """``wanted``, shrunk where the screen's free area (less a window frame) is smaller."""
    return QSize(
        min(wanted.width(), free.width() - FRAME_ALLOWANCE.width()),
        min(wanted.height(), free.height() - FRAME_ALLOWANCE.height()),
    )


PROBLEMS_HEIGHT = 170  # the Problems panel's height when it first opens


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
        # Still set from the last session: it ended (crashed, was killed) with this folder open.
        self._crashed_in = self.settings_store.folder_open_at_exit
        self.devices: tuple[str, ...] | None = None  # found by the start-up probe
        self.shipped_model: bool | None = None
        self.model_info: ModelInfo | None = None
        self._select_after_scan: Path | None = None
        self._listing = False  # a folder is open, its photos not yet listed
        self._shut_down = False

        self.tasks = TaskPool("tasks", 2, self)  # instant work: previews, export, about, probe
        self.session = FolderSession(self.env, self.settings, self.devicePixelRatioF(), self)
        self.session.originals.ask = self._confirm_writing_into_photos
        self.photos = self.session.photos
        self.filter = PhotoFilter(self)
        self.filter.setSourceModel(self.photos)

        self._build_widgets()
        self.editor = Editor(self.grid, self.filter, self.panel, self.session, self.tasks, self)
        self.commands = create_commands(self)
        self.problems_action = self.errors_dock.toggleViewAction()
        self.problems_action.setText("&Problems Panel")
        build_menus(self.menuBar(), self.commands, self.problems_action)
        # Issue 21: going through the marked photos (its own commands, menu and count).
        self.review = ReviewFlow(self, self.editor, self.session, self.filter, self.statusBar())
        self.review.add_menu(self.menuBar(), before=self.menuBar().actions()[-1])  # before Help
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
        self.tree = FolderTree(Path.home(), self)
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

        self.status_line = StatusLine(self.statusBar(), self.photos, self)
        self.progress = self.status_line.progress
        self.counts_label = self.status_line.counts_label
        self.device_label = self.status_line.device_label

        self.search_bar = SearchBar(
            self.tasks, self.session.index_path, self.photos, self.filter, self
        )
        self.search = self.search_bar.box
        self.elsewhere = self.search_bar.elsewhere
        self.library_search = self.search_bar.library

    def _connect(self) -> None:
        c = self.commands
        e = self.editor
        for action, slot in (
            (c.open, self.choose_folder),
            (c.samples, self.open_samples),
            (c.reload, self.reload_folder),
            (c.export, self.choose_export),
            (c.settings, self.edit_settings),
            (c.quit, self.close),
            (c.undo, self.panel.editor.undo),
            (c.redo, self.panel.editor.redo),
            (c.save, e.save_current),
            (c.save_next, e.save_and_next),
            (c.save_all, e.save_all),
            (c.revert, e.revert_current),
            (c.next, e.next_photo),
            (c.previous, e.previous_photo),
            (c.caption_selected, self.caption_selected),
            (c.caption_folder, self.caption_folder),
            (c.cancel, self.cancel_batch),
            (c.find, self.search_bar.focus),
            (c.about, self.show_about),
        ):
            _on(action, slot)
        c.recursive.setChecked(self.settings.recursive)
        c.recaption.setChecked(self.settings.recaption)
        c.recursive.toggled.connect(self.set_recursive)
        c.recaption.toggled.connect(self.set_recaption)
        c.uncaptioned.toggled.connect(self.filter.set_uncaptioned_only)
        c.uncaptioned.toggled.connect(self._update_empty_text)
        c.least_sure.toggled.connect(self.filter.set_least_sure_first)
        self.search.textChanged.connect(self._update_empty_text)
        c.undo.setEnabled(False)
        c.redo.setEnabled(False)
        self.panel.editor.undoAvailable.connect(c.undo.setEnabled)
        self.panel.editor.redoAvailable.connect(c.redo.setEnabled)
        self.panel.previous_button.setDefaultAction(c.previous)
        self.panel.next_button.setDefaultAction(c.next)
        self.panel.revert_button.setDefaultAction(c.revert)
        self.panel.save_button.setDefaultAction(c.save)
        e.changed.connect(self._update_actions)
        e.message_posted.connect(self.status_line.show_message)
        self.welcome.open_button.clicked.connect(self.choose_folder)
        self.welcome.samples_button.clicked.connect(self.open_samples)
        self.tree.folder_requested.connect(self._folder_requested)
        self.search_bar.photo_requested.connect(self.open_photo)
        self.errors.photo_activated.connect(self.select_photo)
        self.progress.cancel_requested.connect(self.cancel_batch)
        for signal in (self.filter.rowsInserted, self.filter.rowsRemoved, self.filter.modelReset):
            signal.connect(self._update_empty_text)

        s = self.session
        s.listed.connect(self._listed)
        s.failed.connect(self._session_failed)
        s.refused.connect(self._saves_refused)
        s.problem_found.connect(self._add_problem)
        s.message_posted.connect(self.status_line.show_message)
        s.batch_started.connect(self._batch_started)
        s.photos_finished.connect(self.progress.advance)
        s.batch_total_changed.connect(self.progress.set_total)
        s.batch_finished.connect(self._batch_finished)
        s.model_load_started.connect(self.status_line.model_loading)
        s.model_loaded.connect(self._model_loaded)

    def _restore_window_state(self) -> None:
        state = self.settings_store.load_window_state()
        if state.geometry is None or not self.restoreGeometry(state.geometry):
            self._fit_first_start()
        self._dock_sizes_restored = state.state is not None
        if state.state is not None:
            self.restoreState(state.state)
        if state.splitter is not None:
            self.splitter.restoreState(state.splitter)

    def _fit_first_start(self) -> None:
        """DEFAULT_SIZE, or less where the screen is smaller, centred on the screen's free area
        (a 1280x800 screen minus its panels and the window frame: the status bar with the
        progress and Cancel must stay on screen)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(DEFAULT_SIZE)
            return
        free = screen.availableGeometry()
        size = fit_to_screen(DEFAULT_SIZE, free.size())
        self.resize(size)
        self.move(
            free.x() + (free.width() - size.width()) // 2,
            free.y() + (free.height() - size.height()) // 2,
        )

    def _save_window_state(self) -> None:
        self.settings_store.save_window_state(
            WindowState(self.saveGeometry(), self.saveState(), self.splitter.saveState())
        )

    def sizeHint(self) -> QSize:
        return DEFAULT_SIZE

    # ================================================================ start-up and the model

    def start(self, folder: str | Path | None) -> None:
        """Open ``folder``, else the last folder, else show the welcome page with the samples.

        After a session that ended uncleanly with a folder open, the last folder is not opened
        again (it may be what stopped PhotoScribe): the window says so instead.
        """
        crashed_in, self._crashed_in = self._crashed_in, None
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
        if crashed_in is not None:
            self._after_unclean_exit(crashed_in)
            return
        last = self.settings_store.last_folder
        if last is not None and last.is_dir():
            self.open_folder(last, confirm=False)
        else:
            self.middle.setCurrentWidget(self.welcome)

    def _after_unclean_exit(self, folder: Path) -> None:
        """The last session ended without closing while ``folder`` was open: say so, and do not
        open that folder again until the user chooses it (whatever stopped PhotoScribe may be in
        it, and reopening it at every start would stop it every time)."""
        log.warning("The last session ended uncleanly with %s open; not reopening it", folder)
        self.settings_store.folder_open_at_exit = None
        self.settings_store.last_folder = None
        self.middle.setCurrentWidget(self.welcome)
        where = f" The log file {self.env.log_file} may say why." if self.env.log_file else ""
        self.prompts.show_error(
            self,
            "PhotoScribe did not close properly",
            f"PhotoScribe stopped unexpectedly last time, while the folder {folder} was open. "
            "It was not opened again this time, in case something in it made PhotoScribe stop; "
            f"open it from the File menu when you want it.{where}",
        )

    def _probed(self, found: Probe) -> None:
        self.devices = found.devices
        self.shipped_model = found.shipped_model
        if self.model_info is None:
            self._show_model_status()

    def _probe_failed(self, error: BaseException) -> None:
        log.warning("Could not check the compute devices: %s", error)

    def _show_model_status(self) -> None:
        installed = chosen_weights(self.env, self.settings) is not None or self.shipped_model
        self.status_line.show_model_waiting(installed is not False, self.devices)

    @Slot(object)
    def _model_loaded(self, info: ModelInfo) -> None:
        self.model_info = info
        self.status_line.model_loaded(info)

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
        self.status_line.show_message("Copying the sample photos…", 0)
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
        self.errors.clear()  # the Problems panel shows the folder on screen
        # Before listing starts: a folder listed at once reports back within session.open.
        self.search_bar.folder = folder
        self.status_line.folder_open = True
        self._listing = True
        self._update_empty_text()
        self.settings_store.folder_open_at_exit = folder  # cleared again at a clean quit
        self.session.open(folder, self.settings.recursive)
        self.settings_store.last_folder = folder
        self.middle.setCurrentWidget(self.grid)
        self._update_title()
        self.tree.show_folder(folder)
        self._update_actions()
        return True

    def open_photo(self, path: Path) -> None:
        """Show ``path``: select it here, or open its folder with it selected."""
        if self.photos.photo(path) is not None:
            self.select_photo(path)
            return
        self._select_after_scan = path
        if not self.open_folder(path.parent):
            self._select_after_scan = None

    def _listed(self, folder: Path, count: int) -> None:
        self._listing = False
        self._update_empty_text()
        self.search_bar.search_now()  # the matches in this folder, and elsewhere from here
        wanted, self._select_after_scan = self._select_after_scan, None
        if wanted is not None and self.photos.photo(wanted) is not None:
            self.select_photo(wanted)
        elif count:
            self.editor.select_first()
        self._update_actions()

    @Slot(object)
    def _folder_requested(self, path: Path) -> None:
        if path != self.folder and not self.open_folder(path) and self.folder is not None:
            self.tree.show_folder(self.folder)  # stayed: the tree goes back to the open folder

    def set_recursive(self, enabled: bool) -> None:
        if enabled != self.settings.recursive:
            self.apply_settings(self.settings.with_changes(recursive=enabled))

    def set_recaption(self, enabled: bool) -> None:
        if enabled != self.settings.recaption:
            self.apply_settings(self.settings.with_changes(recaption=enabled))

    # ================================================================ photos

    def select_photo(self, path: Path) -> None:
        self.editor.select_photo(path)

    def selected_paths(self) -> list[Path]:
        return self.editor.selected_paths()

    def save_current(self) -> bool:
        return self.editor.save_current()

    def save_all(self) -> int:
        return self.editor.save_all()

    def _confirm_writing_into_photos(self) -> bool:
        """Asked once before the first write into photo files themselves."""
        if not self.settings.ask_before_writing_into_photos:
            return True
        answer = self.prompts.ask_write_into_photos(self)
        if answer == "always":
            self.apply_settings(self.settings.with_changes(ask_before_writing_into_photos=False))
        return answer != "no"

    def _confirm_unsaved(self, doing: str) -> bool:
        unsaved = self.photos.unsaved()
        if not unsaved:
            return True
        choice = self.prompts.ask_unsaved(self, len(unsaved), doing)
        if choice == "cancel":
            return False
        if choice == "save":
            # Those that fail again stay in the library index (the writer keeps them).
            self.session.save_all()
        else:
            self.session.discard_unsaved([photo.path for photo in unsaved])
        return True

    @Slot(object)
    def _saves_refused(self, refusals: Refusals) -> None:
        """One summary for a whole Save All or batch whose saves failed, never a box each."""
        if self._shut_down:
            return
        choice = self.prompts.show_refusals(self, refusals)
        if choice == "sidecars" and refusals.embedded:
            self.session.saver.save_to_sidecars(refusals.embedded)

    # ================================================================ captioning

    @property
    def batch_running(self) -> bool:
        return self.session.batch_running

    @Slot(int)
    def _batch_started(self, total: int) -> None:
        # The model loads once; later batches start captioning at once.
        self.progress.start(total, "Captioning…" if self.model_info is not None else "Starting…")

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
        self.search_bar.search_now()  # the new captions are in the index now
        if summary.no_model:
            self.status_line.show_no_model()
            self.prompts.show_error(
                self,
                "No caption model installed",
                "PhotoScribe cannot caption photos yet because no caption model is installed. "
                "Choose a model file in Settings (Ctrl+,), or see the README on training one."
                f"\n\n{summary.error}",
            )
        elif summary.error:
            self.prompts.show_error(self, "Captioning could not start", summary.error)
        else:
            self.status_line.show_message(batch_report(summary), 10000)

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
            self.status_line.show_message("Open a folder first.", 4000)
            return
        request = self.prompts.choose_export(self, self.folder, self.settings.recursive)
        if request is not None:
            self.export(request)

    def export(self, request: ExportRequest) -> None:
        folder = self.folder
        assert folder is not None, "export needs an open folder"
        unsaved = len(self.photos.unsaved())
        stores = all_stores(self.settings.xmp_name)
        index_path = self.session.index_path

        def run() -> int:
            return export_captions(
                folder,
                recursive=request.recursive,
                fmt=request.fmt,
                out=request.out,
                bom=request.bom,
                stores=stores,
                index_path=index_path,
            )

        def done(count: int) -> None:
            note = f" ({unsaved} unsaved captions were not included)" if unsaved else ""
            self.status_line.show_message(
                f"Exported {plural(count, 'caption')} to {request.out}{note}.", 10000
            )

        self.status_line.show_message(f"Exporting to {request.out}…", 0)
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

    # ================================================================ messages and commands

    def _failed(self, title: str) -> Callable[[BaseException], None]:
        """An on_error handler: readable errors in a dialog, anything else to the crash handler."""

        def handler(error: BaseException) -> None:
            if isinstance(error, (PhotoScribeError, OSError, ValueError)):
                self.statusBar().clearMessage()
                self.prompts.show_error(self, title, str(error))
            else:
                sys.excepthook(type(error), error, error.__traceback__)

        return handler

    def _session_failed(self, title: str, text: str) -> None:
        if self._shut_down:
            return
        if self._listing:  # the folder could not be listed
            self._listing = False
            self._update_empty_text()
        self.prompts.show_error(self, title, text)

    def _update_empty_text(self, *_args: object) -> None:
        self.grid.set_empty_text(
            empty_grid_text(
                listed=not self._listing,
                total=self.photos.rowCount(),
                uncaptioned_only=self.filter.uncaptioned_only,
                search=self.search_bar.query,
                recursive=self.settings.recursive,
            )
        )

    def _add_problem(self, path: Path | None, message: str) -> None:
        self.errors.add(path, message)
        if not self.errors_dock.isVisible():
            self.errors_dock.show()
            if not self._dock_sizes_restored:  # a few rows, not half the window
                QTimer.singleShot(0, self._size_problems_panel)  # once it is laid out
                self._dock_sizes_restored = True

    def _size_problems_panel(self) -> None:
        self.resizeDocks([self.errors_dock], [PROBLEMS_HEIGHT], Qt.Orientation.Vertical)

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.folder.name} — PhotoScribe" if self.folder else "PhotoScribe")

    def _update_actions(self) -> None:
        c = self.commands
        has_folder = self.folder is not None
        busy = self.session.captioning.busy
        photo = self.editor.current_photo()
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
        self.settings_store.folder_open_at_exit = None
        log.info("PhotoScribe closed cleanly")
