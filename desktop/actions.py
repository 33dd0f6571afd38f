"""The app's commands (text, shortcut, icon, tip), declared in one place; menus and toolbar;
which commands can be used now."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, QSize, Qt, Slot
from PySide6.QtGui import QAction, QIcon, QKeySequence, QResizeEvent
from PySide6.QtWidgets import QMenuBar, QSizePolicy, QStyle, QToolBar, QWidget

from desktop.editor import Editor
from desktop.session import FolderSession
from desktop.settings import AppSettings

Key = QKeySequence.StandardKey
Icon = QStyle.StandardPixmap


@dataclass(frozen=True, kw_only=True)
class Commands:
    """Every QAction of the main window; the window connects them to what they do."""

    open: QAction
    samples: QAction
    reload: QAction
    export: QAction
    settings: QAction
    quit: QAction
    undo: QAction
    redo: QAction
    save: QAction
    save_next: QAction
    save_all: QAction
    revert: QAction
    next: QAction
    previous: QAction
    caption_selected: QAction
    caption_folder: QAction
    cancel: QAction
    recursive: QAction
    recaption: QAction
    uncaptioned: QAction
    least_sure: QAction
    find: QAction
    about: QAction


def create_commands(window: QWidget) -> Commands:
    style = window.style()

    def make(
        text: str,
        keys: tuple[Key | str, ...] = (),
        icon: Icon | None = None,
        tip: str = "",
        checkable: bool = False,
        short: str | None = None,  # the toolbar's label
    ) -> QAction:
        action = QAction(text, window)
        if icon is not None:
            action.setIcon(style.standardIcon(icon))
        if keys:
            action.setShortcuts([QKeySequence(k) for k in keys])
        if tip:
            shortcut = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip} ({shortcut})" if shortcut else tip)
            action.setStatusTip(tip)
        if short:
            action.setIconText(short)
        action.setCheckable(checkable)
        window.addAction(action)  # shortcuts work wherever the focus is in the window
        return action

    commands = Commands(
        open=make("&Open Folder…", (Key.Open,), Icon.SP_DirOpenIcon, "Open a photo folder",
                  short="Open"),
        samples=make("Open &Sample Photos", (), Icon.SP_DirHomeIcon,
                     "Open the sample photos that come with PhotoScribe"),
        reload=make("&Reload Folder", (Key.Refresh,), Icon.SP_BrowserReload,
                    "Read the folder and its captions again"),
        export=make("&Export Captions…", ("Ctrl+E",), Icon.SP_DialogSaveButton,
                    "Write this folder's captions to CSV, JSON, JSON Lines or metadata.jsonl"),
        settings=make("Se&ttings…", (Key.Preferences, "Ctrl+,"), Icon.SP_FileDialogDetailedView,
                      "Where captions go, device, beam and batch size"),
        quit=make("&Quit", (Key.Quit,), None, "Quit PhotoScribe"),
        undo=make("&Undo", (Key.Undo,), Icon.SP_ArrowBack, "Undo the last edit"),
        redo=make("&Redo", (Key.Redo, "Ctrl+Shift+Z"), Icon.SP_ArrowForward, "Redo"),
        save=make("&Save Caption", (Key.Save,), Icon.SP_DialogSaveButton,
                  "Save this photo's caption", short="Save"),
        save_next=make("Save and &Next", ("Ctrl+Return",), None,
                       "Save this caption and go to the next photo"),
        save_all=make("Save &All Captions", ("Ctrl+Shift+S",), None,
                      "Save every unsaved caption in this folder"),
        revert=make("Re&vert Caption", (), Icon.SP_DialogResetButton,
                    "Forget the unsaved changes to this caption"),
        next=make("Ne&xt Photo", ("Ctrl+Down", "Alt+Down"), Icon.SP_ArrowDown,
                  "Go to the next photo"),
        previous=make("&Previous Photo", ("Ctrl+Up", "Alt+Up"), Icon.SP_ArrowUp,
                      "Go to the previous photo"),
        caption_selected=make("Caption &Selected Photos", ("Ctrl+R",), Icon.SP_MediaPlay,
                              "Caption the selected photos", short="Caption Selected"),
        caption_folder=make("Caption &Folder", ("Ctrl+Shift+R",), Icon.SP_MediaSeekForward,
                            "Caption every photo in this folder", short="Caption Folder"),
        cancel=make("&Cancel Captioning", ("Esc",), Icon.SP_BrowserStop,
                    "Stop captioning; captions already saved stay", short="Cancel"),
        recursive=make("Include Sub&folders", (), Icon.SP_DirLinkIcon,
                       "Show and caption the photos in subfolders too", True, "Subfolders"),
        recaption=make("&Re-caption Photos That Have a Caption", (), None,
                       "Also caption photos that already have a caption (skipped otherwise)",
                       True),
        uncaptioned=make("Only &Uncaptioned Photos", ("Ctrl+U",), Icon.SP_FileDialogListView,
                         "Show only photos without a saved caption", True, "Uncaptioned"),
        least_sure=make("&Least Sure First", ("Ctrl+L",), None,
                        "Sort the photos by the model's confidence, captions to check first",
                        True),
        find=make("&Find in Captions", (Key.Find,), None, "Search the captions"),
        about=make("&About PhotoScribe", (), Icon.SP_MessageBoxInformation,
                   "Version, model card and licences"),
    )  # fmt: skip
    commands.export.setIcon(QIcon.fromTheme("document-export", commands.export.icon()))
    return commands


def build_menus(bar: QMenuBar, c: Commands, problems: QAction) -> None:
    file_menu = bar.addMenu("&File")
    _add(file_menu, c.open, c.samples, c.reload, None, c.export, None, c.settings, None, c.quit)
    edit_menu = bar.addMenu("&Edit")
    _add(edit_menu, c.undo, c.redo, None, c.save, c.save_next, c.save_all, c.revert, None)
    _add(edit_menu, c.next, c.previous)
    caption_menu = bar.addMenu("&Caption")
    _add(caption_menu, c.caption_selected, c.caption_folder, c.cancel, None)
    _add(caption_menu, c.recursive, c.recaption)
    view_menu = bar.addMenu("&View")
    _add(view_menu, c.uncaptioned, c.least_sure, c.find, None, problems)
    help_menu = bar.addMenu("&Help")
    _add(help_menu, c.about)


NARROW_BELOW = 1000  # a toolbar narrower than this shows icons only (names in the tooltips)


class MainToolbar(QToolBar):
    """The commands' names beside their icons when there is room; icons only on a narrow
    window, so that the search box keeps its room (at 800 pixels it was cut to "Sear...")."""

    def resizeEvent(self, event: QResizeEvent) -> None:
        style = (
            Qt.ToolButtonStyle.ToolButtonIconOnly
            if event.size().width() < NARROW_BELOW
            else Qt.ToolButtonStyle.ToolButtonTextBesideIcon
        )
        if style != self.toolButtonStyle():
            self.setToolButtonStyle(style)
        super().resizeEvent(event)


def build_toolbar(window: QWidget, c: Commands, search: QWidget) -> QToolBar:
    toolbar = MainToolbar("Main", window)
    toolbar.setObjectName("mainToolbar")
    toolbar.setIconSize(QSize(20, 20))
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.setMovable(False)
    _add(toolbar, c.open, None, c.caption_selected, c.caption_folder, c.cancel, None, c.save)
    _add(toolbar, None, c.uncaptioned, c.recursive)
    spacer = QWidget(toolbar)
    spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    toolbar.addWidget(spacer)
    toolbar.addWidget(search)
    return toolbar


def _add(target: QWidget, *actions: QAction | None) -> None:
    """Add actions in order; None is a separator."""
    for action in actions:
        if action is None:
            target.addSeparator()  # type: ignore[attr-defined]
        else:
            target.addAction(action)


def show_settings(c: Commands, settings: AppSettings) -> None:
    """Tick the menu's settings (Include Subfolders, Re-caption) as ``settings`` say, without
    sending their ``toggled`` again."""
    for action, value in ((c.recursive, settings.recursive), (c.recaption, settings.recaption)):
        action.blockSignals(True)
        action.setChecked(value)
        action.blockSignals(False)


class CommandStates(QObject):
    """Enables each command when it can do something, following the session, its batches and
    the editor (what is selected, what is unsaved)."""

    def __init__(
        self, commands: Commands, session: FolderSession, editor: Editor, parent: QObject
    ) -> None:
        super().__init__(parent)
        self.commands = commands
        self.session = session
        self.editor = editor
        batches = session.batches
        for signal in (
            editor.changed,
            session.opened,
            session.listed,
            session.photos.modelReset,
            batches.batch_started,
            batches.batch_cancelled,
            batches.batch_finished,
        ):
            signal.connect(self.update)
        commands.undo.setEnabled(False)
        commands.redo.setEnabled(False)
        editor.panel.editor.undoAvailable.connect(commands.undo.setEnabled)
        editor.panel.editor.redoAvailable.connect(commands.redo.setEnabled)
        self.update()

    @Slot()
    def update(self, *_args: object) -> None:
        c = self.commands
        has_folder = self.session.folder is not None
        busy = self.session.captioning.busy
        photo = self.editor.current_photo()
        has_selection = self.editor.grid.selectionModel().hasSelection()
        c.caption_selected.setEnabled(has_folder and not busy and has_selection)
        c.caption_folder.setEnabled(has_folder and not busy and self.session.photos.rowCount() > 0)
        c.cancel.setEnabled(busy)
        c.export.setEnabled(has_folder)
        c.reload.setEnabled(has_folder)
        c.save.setEnabled(photo is not None and photo.unsaved)
        c.revert.setEnabled(photo is not None and photo.draft is not None)
