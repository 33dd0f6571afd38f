"""The main window: lays out the folder tree, grid and caption panel, its menus and its dialogs.

Each command goes straight to the object that does the work; this module only lays out,
wires and asks the user:
- session.FolderSession: the open folder's photos and every thread that works on them; its
  ``saver`` (desktop.saving.Saver) saves captions, its ``batches`` (desktop.batch.BatchRunner)
  captions them;
- editor.Editor: the panel follows the grid's photo; save, revert, next and previous;
- settings.Settings: the one live settings object; whatever depends on a setting follows it;
- status_bar.StatusLine: messages, batch progress, counts and the model's device;
- actions.CommandStates: which commands can be used now;
- folder_tree.FolderTree, search.SearchBar, status.ProblemsDock, grid.EmptyGridText.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import QRect, QSize, Qt, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QScreen,
)
from PySide6.QtWidgets import (
    QMainWindow,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

import core
from core.datatypes import default_weights_path
from core.errors import PhotoScribeError
from core.export import export_captions
from core.storage import all_stores
from desktop.actions import (
    CommandStates,
    build_menus,
    build_toolbar,
    create_commands,
    show_settings,
)
from desktop.captioning import JobSummary
from desktop.dialogs import ExportRequest, Prompts
from desktop.editor import Editor
from desktop.environment import AppEnvironment, chosen_weights
from desktop.folder_tree import FolderTree, PlacesList
from desktop.grid import EmptyGridText, PhotoGrid
from desktop.model_card import about_html, read_model_card
from desktop.panel import CaptionPanel
from desktop.photos import PhotoFilter
from desktop.review import ReviewFlow
from desktop.samples import APP_ICON, SAMPLES_FOLDER_NAME, prepare_samples
from desktop.saving import OriginalsGuard, Refusals
from desktop.search import SearchBar
from desktop.session import FolderSession
from desktop.settings import AppSettings, Settings, SettingsStore, WindowState
from desktop.status import ProblemsDock, plural
from desktop.status_bar import StatusLine
from desktop.tasks import TaskPool
from desktop.welcome import WelcomePage

log = logging.getLogger(__name__)

DEFAULT_SIZE = QSize(1280, 800)
FRAME_ALLOWANCE = QSize(16, 48)  # what a window manager's frame and title bar usually take


class PageStack(QStackedWidget):
    """A stack of pages as small as its current page allows.

    QStackedWidget's minimum is its largest page's, so the hidden welcome page's height added
    to the Problems panel's and pushed the window past an 800x600 screen's bottom edge.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.currentChanged.connect(self._follow_current)

    def addWidget(self, page: QWidget) -> int:  # noqa: N802 (Qt's name)
        index = super().addWidget(page)
        self._follow_current()
        return index

    def _follow_current(self, _index: int = 0) -> None:
        for i in range(self.count()):
            page = self.widget(i)
            policy = page.sizePolicy()
            policy.setVerticalPolicy(
                QSizePolicy.Policy.Preferred
                if page is self.currentWidget()
                else QSizePolicy.Policy.Ignored
            )
            page.setSizePolicy(policy)
        self.updateGeometry()


def fit_to_screen(wanted: QSize, free: QSize) -> QSize:
    """``wanted``, shrunk where the screen's free area (less a window frame) is smaller."""
    return QSize(
        min(wanted.width(), free.width() - FRAME_ALLOWANCE.width()),
        min(wanted.height(), free.height() - FRAME_ALLOWANCE.height()),
    )


def first_start_geometry(screen: QScreen | None) -> QRect:
    """DEFAULT_SIZE, or less where the screen is smaller, centred on the screen's free area
    (a 1280x800 screen minus its panels and the window frame: the status bar with the
    progress and Cancel must stay on screen)."""
    if screen is None:
        return QRect(0, 0, DEFAULT_SIZE.width(), DEFAULT_SIZE.height())
    free = screen.availableGeometry()
    size = fit_to_screen(DEFAULT_SIZE, free.size())
    return QRect(
        free.x() + (free.width() - size.width()) // 2,
        free.y() + (free.height() - size.height()) // 2,
        size.width(),
        size.height(),
    )


def export_task(folder: Path, request: ExportRequest, settings: AppSettings, index: Path) -> int:
    """On a worker thread: write ``folder``'s captions as ``request`` asks; how many."""
    return export_captions(
        folder,
        recursive=request.recursive,
        fmt=request.fmt,
        out=request.out,
        bom=request.bom,
        stores=all_stores(settings.xmp_name),
        index_path=index,
    )


def _on(action: QAction, slot: Callable[[], object]) -> None:
    action.triggered.connect(lambda _checked=False: slot())


class MainWindow(QMainWindow):
    """Lays out the widgets, connects the commands to their owners and asks the user through
    Prompts (every dialog is opened here)."""

    def __init__(self, env: AppEnvironment | None = None, prompts: Prompts | None = None) -> None:
        super().__init__()
        self.env = env or AppEnvironment()
        self.prompts = prompts or Prompts()
        self.settings_store = SettingsStore(self.env.settings_path)
        self.settings = Settings(self.settings_store, self)
        # Still set from the last session: it ended (crashed, was killed) with this folder open.
        self._crashed_in = self.settings_store.folder_open_at_exit
        self._shut_down = False

        self.tasks = TaskPool("tasks", 2, self)  # instant work: previews, export, about, probe
        # Asked once before the first write into photo files themselves.
        guard = OriginalsGuard(self.settings, partial(self.prompts.ask_write_into_photos, self))
        self.session = FolderSession(self.env, self.settings, guard, self.devicePixelRatioF(), self)
        self.photos = self.session.photos
        self.filter = PhotoFilter(self)
        self.filter.setSourceModel(self.photos)

        self._build_widgets()
        self.editor = Editor(
            self.grid, self.filter, self.panel, self.session.saver, self.tasks, self
        )
        self.commands = create_commands(self)
        self.problems_action = self.errors_dock.toggleViewAction()
        self.problems_action.setText("&Problems Panel")
        build_menus(self.menuBar(), self.commands, self.problems_action)
        # Issue 21: going through the marked photos (its own commands, menu and count).
        self.review = ReviewFlow(self, self.editor, self.filter, self.statusBar())
        self.review.add_menu(self.menuBar(), before=self.menuBar().actions()[-1])  # before Help
        self.toolbar = build_toolbar(self, self.commands, self.search_bar)
        self.addToolBar(self.toolbar)
        self.command_states = CommandStates(self.commands, self.session, self.editor, self)
        self._connect()
        self._restore_window_state()
        self.setAcceptDrops(True)
        self.setWindowIcon(QIcon(str(APP_ICON)))
        self._update_title()

    # ================================================================ construction

    def _build_widgets(self) -> None:
        samples = self.env.data_dir / SAMPLES_FOLDER_NAME
        self.places = PlacesList({samples: SAMPLES_FOLDER_NAME}, self)
        # The app's own folder (the samples' copy, its state) is not browsed in the tree.
        self.tree = FolderTree(Path.home(), self.env.data_dir, self)
        left = QWidget(self)
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(self.places)
        column.addWidget(self.tree, 1)
        self.grid = PhotoGrid(self)
        self.grid.setObjectName("photoGrid")
        self.grid.setModel(self.filter)
        self.welcome = WelcomePage(self)
        self.middle = PageStack(self)
        self.middle.addWidget(self.welcome)
        self.middle.addWidget(self.grid)

        self.panel = CaptionPanel(self.settings, self)
        self.panel.setObjectName("captionPanel")
        self.panel.editor.setAcceptDrops(False)  # a dropped folder opens it, not pastes its path

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("mainSplitter")
        for widget, stretch in ((left, 0), (self.middle, 1), (self.panel, 0)):
            self.splitter.addWidget(widget)
            self.splitter.setStretchFactor(self.splitter.count() - 1, stretch)
        self.splitter.setSizes([220, 680, 380])
        self.setCentralWidget(self.splitter)

        self.errors_dock = ProblemsDock(self)
        self.errors = self.errors_dock.panel
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.errors_dock)
        self.errors_dock.hide()

        self.status_line = StatusLine(
            self.statusBar(), self.session, self.settings, self.env, self.tasks, self
        )
        self.progress = self.status_line.progress
        self.counts_label = self.status_line.counts_label
        self.device_label = self.status_line.device_label

        self.search_bar = SearchBar(
            self.tasks, self.session.index_path, self.photos, self.filter, self
        )
        self.search = self.search_bar.box
        self.elsewhere = self.search_bar.elsewhere
        self.library_search = self.search_bar.library
        self.empty_text = EmptyGridText(
            self.grid,
            self.filter,
            listing=lambda: self.session.listing,
            query=lambda: self.search_bar.query,
            recursive=lambda: self.settings.current.recursive,
        )

    def _connect(self) -> None:
        c, e, s = self.commands, self.editor, self.session
        saver, batches = s.saver, s.batches
        for action, slot in (
            (c.open, self.choose_folder),
            (c.samples, self.open_samples),
            (c.reload, lambda: s.folder is not None and self.open_folder(s.folder)),
            (c.export, self.choose_export),
            (c.settings, self.edit_settings),
            (c.quit, self.close),
            (c.undo, self.panel.editor.undo),
            (c.redo, self.panel.editor.redo),
            (c.save, e.save_current),
            (c.save_next, e.save_and_next),
            (c.save_all, saver.save_all),
            (c.revert, e.revert_current),
            (c.next, e.next_photo),
            (c.previous, e.previous_photo),
            (c.caption_selected, lambda: batches.caption_photos(e.selected_paths())),
            (c.caption_folder, batches.caption_folder),
            (c.cancel, batches.cancel),
            (c.find, self.search_bar.focus),
            (c.about, self.show_about),
        ):
            _on(action, slot)
        show_settings(c, self.settings.current)
        self.settings.changed.connect(partial(show_settings, c))
        current = lambda: self.settings.current  # noqa: E731 - read when toggled
        c.recursive.toggled.connect(
            lambda on: self.apply_settings(current().with_changes(recursive=on))
        )
        c.recaption.toggled.connect(
            lambda on: self.apply_settings(current().with_changes(recaption=on))
        )
        c.uncaptioned.toggled.connect(self.filter.set_uncaptioned_only)
        c.uncaptioned.toggled.connect(self.empty_text.update)
        c.least_sure.toggled.connect(self.filter.set_least_sure_first)
        self.search.textChanged.connect(self.empty_text.update)
        self.panel.previous_button.setDefaultAction(c.previous)
        self.panel.next_button.setDefaultAction(c.next)
        self.panel.revert_button.setDefaultAction(c.revert)
        self.panel.save_button.setDefaultAction(c.save)
        e.message_posted.connect(self.status_line.show_message)
        self.welcome.open_button.clicked.connect(self.choose_folder)
        self.welcome.samples_button.clicked.connect(self.open_samples)
        self.tree.folder_requested.connect(self._folder_requested)
        self.places.place_requested.connect(lambda _samples: self.open_samples())
        self.search_bar.photo_requested.connect(self.open_photo)
        self.errors.photo_activated.connect(e.select_photo)

        s.opened.connect(self._folder_opened)
        s.opened.connect(self.empty_text.update)
        s.listed.connect(e.listed)
        s.listed.connect(self.empty_text.update)
        s.listed.connect(self.search_bar.search_now)  # this folder's matches, others from here
        s.failed.connect(self._session_failed)
        for source in (s, saver, batches):
            source.problem_found.connect(self.errors_dock.add)
        for solver in (saver, batches):
            solver.problem_solved.connect(self.errors_dock.remove)
        saver.refused.connect(self._saves_refused)
        batches.batch_finished.connect(self._batch_finished)
        batches.batch_finished.connect(self.search_bar.search_now)  # new captions are indexed

    def _restore_window_state(self) -> None:
        state = self.settings_store.load_window_state()
        if state.geometry is None or not self.restoreGeometry(state.geometry):
            self.setGeometry(first_start_geometry(self.screen() or QGuiApplication.primaryScreen()))
        self.errors_dock.sized = state.state is not None
        if state.state is not None:
            self.restoreState(state.state)
        self.errors_dock.hide()  # nothing to show yet: it opens with the first problem
        if state.splitter is not None:
            self.splitter.restoreState(state.splitter)

    def sizeHint(self) -> QSize:
        return DEFAULT_SIZE

    # ================================================================ start-up

    def start(self, folder: str | Path | None) -> None:
        """Open ``folder``, else the last folder, else show the welcome page with the samples.

        After a session that ended uncleanly with a folder open, the last folder is not opened
        again (it may be what stopped PhotoScribe): the window says so instead.
        """
        crashed_in, self._crashed_in = self._crashed_in, None
        if folder is not None:
            path = Path(folder).expanduser()
            if path.is_file():
                self.editor.select_when_listed = path
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

    # ================================================================ folders

    def choose_folder(self) -> None:
        start = self.session.folder or self.settings_store.last_folder
        folder = self.prompts.choose_folder(self, start)
        if folder is not None:
            self.open_folder(folder)

    def open_samples(self) -> None:
        self.status_line.show_message("Copying the sample photos…", 0)
        self.tasks.submit(
            prepare_samples,
            self.env.data_dir,
            on_done=self.open_folder,
            on_error=partial(self._show_failure, "Cannot open the sample photos"),
        )

    def open_folder(self, folder: Path, confirm: bool = True) -> bool:
        """Show ``folder``'s photos; False when the user chose to stay (unsaved changes)."""
        if confirm and not self._confirm_unsaved("opening another folder"):
            return False
        self.session.open(folder, self.settings.current.recursive)
        return True

    def _folder_opened(self, folder: Path) -> None:
        self.panel.show_photo(None)
        self.errors.clear()  # the Problems panel shows the folder on screen
        self.search_bar.folder = folder
        self.settings_store.folder_open_at_exit = folder  # cleared again at a clean quit
        self.settings_store.last_folder = folder
        self.middle.setCurrentWidget(self.grid)
        self._update_title()
        self.tree.show_folder(folder)
        self.places.show_folder(folder)

    def open_photo(self, path: Path) -> None:
        """Show ``path``: select it here, or open its folder with it selected."""
        if self.photos.photo(path) is not None:
            self.editor.select_photo(path)
            return
        self.editor.select_when_listed = path
        if not self.open_folder(path.parent):
            self.editor.select_when_listed = None

    @Slot(object)
    def _folder_requested(self, path: Path) -> None:
        folder = self.session.folder
        if path != folder and not self.open_folder(path) and folder is not None:
            self.tree.show_folder(folder)  # stayed: the tree goes back to the open folder

    # ================================================================ questions

    def _confirm_unsaved(self, doing: str) -> bool:
        unsaved = self.photos.unsaved()
        if not unsaved:
            return True
        choice = self.prompts.ask_unsaved(self, len(unsaved), doing)
        if choice == "cancel":
            return False
        if choice == "save":
            # Those that fail again stay in the library index (the writer keeps them).
            self.session.saver.save_all()
        else:
            self.session.saver.discard_unsaved([photo.path for photo in unsaved])
        return True

    @Slot(object)
    def _saves_refused(self, refusals: Refusals) -> None:
        """One summary for a whole Save All or batch whose saves failed, never a box each."""
        if self._shut_down:
            return
        choice = self.prompts.show_refusals(self, refusals)
        if choice == "sidecars" and refusals.embedded:
            self.session.saver.save_to_sidecars(refusals.embedded)

    @Slot(object)
    def _batch_finished(self, summary: JobSummary) -> None:
        if summary.no_model:
            self.prompts.show_error(
                self,
                "No caption model installed",
                "PhotoScribe cannot caption photos yet because no caption model is installed. "
                "Choose a model file in Settings (Ctrl+,), or see the README on training one."
                f"\n\n{summary.error}",
            )
        elif summary.error:
            self.prompts.show_error(self, "Captioning could not start", summary.error)

    def _session_failed(self, title: str, text: str) -> None:
        if not self._shut_down:
            self.prompts.show_error(self, title, text)

    def _show_failure(self, title: str, error: BaseException) -> None:
        """An on_error handler: readable errors in a dialog, anything else to the crash handler."""
        if isinstance(error, (PhotoScribeError, OSError, ValueError)):
            self.statusBar().clearMessage()
            self.prompts.show_error(self, title, str(error))
        else:
            sys.excepthook(type(error), error, error.__traceback__)

    # ================================================================ settings, export, about

    def edit_settings(self) -> None:
        new = self.prompts.edit_settings(self, self.settings.current, self.status_line.devices)
        if new is not None:
            self.apply_settings(new)

    def apply_settings(self, new: AppSettings) -> None:
        """Make ``new`` the settings, asking first when they would hide unsaved captions."""
        old = self.settings.current
        folder = self.session.folder
        relist = new.recursive != old.recursive and folder is not None
        if relist and not self._confirm_unsaved("showing a different set of photos"):
            new = new.with_changes(recursive=old.recursive)
            relist = False
            show_settings(self.commands, old)  # the menu's tick goes back
        self.settings.update(new)
        if relist and folder is not None:
            self.open_folder(folder, confirm=False)

    def choose_export(self) -> None:
        folder = self.session.folder
        if folder is None:
            self.status_line.show_message("Open a folder first.", 4000)
            return
        request = self.prompts.choose_export(self, folder, self.settings.current.recursive)
        if request is None:
            return
        unsaved = len(self.photos.unsaved())
        note = f" ({unsaved} unsaved captions were not included)" if unsaved else ""
        self.status_line.show_message(f"Exporting to {request.out}…", 0)
        self.tasks.submit(
            export_task,
            folder,
            request,
            self.settings.current,
            self.session.index_path,
            on_done=lambda count: self.status_line.show_message(
                f"Exported {plural(count, 'caption')} to {request.out}{note}.", 10000
            ),
            on_error=partial(self._show_failure, "Export failed"),
        )

    def show_about(self) -> None:
        path = chosen_weights(self.env, self.settings.current) or default_weights_path()
        status = self.status_line
        device = status.model_info.device_name if status.model_info else None
        if device is None and status.devices:
            available = ", ".join(d.upper() for d in status.devices)
            device = f"not loaded yet (available: {available})"
        self.tasks.submit(
            read_model_card,
            path,
            on_done=lambda card: self.prompts.show_about(
                self, about_html(core.__version__, card, device)
            ),
        )

    def _update_title(self) -> None:
        folder = self.session.folder
        self.setWindowTitle(f"{folder.name} — PhotoScribe" if folder else "PhotoScribe")

    # ================================================================ drag and drop, quitting

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        """Open a dropped folder, or the folder of a dropped photo with that photo selected."""
        for url in event.mimeData().urls():
            if not url.isLocalFile():
                continue
            path = Path(url.toLocalFile())
            if path.is_file():
                self.editor.select_when_listed = path
                path = path.parent
            if path.is_dir() and self.open_folder(path):
                event.acceptProposedAction()
                return

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
        self.settings_store.save_window_state(
            WindowState(self.saveGeometry(), self.saveState(), self.splitter.saveState())
        )
        self.session.shutdown()
        self.tasks.shutdown(wait=True, cancel_pending=True)
        self.tree.shutdown()
        self.settings_store.folder_open_at_exit = None
        log.info("PhotoScribe closed cleanly")
