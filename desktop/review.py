"""Reviewing the marked photos one by one from the keyboard, and the count of those left."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMenu, QMenuBar, QStatusBar, QWidget

from desktop.editor import Editor
from desktop.photos import PHOTO_ROLE, Photo, PhotoFilter, PhotoListModel
from desktop.status import plural

log = logging.getLogger(__name__)

COUNT_DELAY_MS = 150  # recounting waits this long, so rows changing quickly are counted once
SUGGESTION_KEYS = 3  # Alt+1 .. Alt+3 pick the panel's suggestions


class ReviewFlow(QObject):
    """ "Review Marked Photos": goes through the photos marked "Check this" in the grid's order.

    Next/previous marked (F8, Shift+F8), accept the caption as it is (Ctrl+Shift+Return: saved
    as the user's, never marked again, then on to the next marked photo), edit it (F2: the
    caption editor takes the keys; saving an edited caption also makes it the user's), or pick
    one of the model's suggestions (Alt+1 to Alt+3). While any caption is marked, the status bar
    says how many are left, with a link that starts the review.
    """

    remaining_changed = Signal(int)

    def __init__(
        self,
        window: QWidget,
        editor: Editor,
        photo_filter: PhotoFilter,
        status_bar: QStatusBar,
    ) -> None:
        super().__init__(window)
        self.editor = editor
        self.saver = editor.saver
        self.photos: PhotoListModel = editor.photos
        self.filter = photo_filter
        self.panel = editor.panel

        def make(text: str, keys: tuple[str, ...], tip: str) -> QAction:
            action = QAction(text, window)
            action.setShortcuts([QKeySequence(k) for k in keys])
            shortcut = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip} ({shortcut})")
            action.setStatusTip(tip)
            window.addAction(action)  # the keys work wherever the focus is in the window
            return action

        self.start_action = make(
            "&Review Marked Photos", ("F7",), 'Go through the photos marked "Check this"'
        )
        self.next_action = make("&Next Marked Photo", ("F8",), "Go to the next marked photo")
        self.previous_action = make(
            "&Previous Marked Photo", ("Shift+F8",), "Go to the previous marked photo"
        )
        self.accept_action = make(
            "&Accept Caption",
            ("Ctrl+Shift+Return", "Ctrl+Shift+Enter"),
            "Keep this caption as it is (it becomes yours) and go to the next marked photo",
        )
        self.edit_action = make("&Edit Caption", ("F2",), "Type in the caption editor")
        self.pick_actions = [
            make(
                f"Use Suggestion &{n}",
                (f"Alt+{n}",),
                f"Use the model's suggestion {n} (the panel's list) as the caption",
            )
            for n in range(1, SUGGESTION_KEYS + 1)
        ]
        self.start_action.triggered.connect(lambda _checked=False: self.start())
        self.next_action.triggered.connect(lambda _checked=False: self.step(1))
        self.previous_action.triggered.connect(lambda _checked=False: self.step(-1))
        self.accept_action.triggered.connect(lambda _checked=False: self.accept())
        self.edit_action.triggered.connect(lambda _checked=False: self.edit())
        for n, action in enumerate(self.pick_actions):
            action.triggered.connect(lambda _checked=False, i=n: self.pick(i))

        self.count_label = QLabel(status_bar)
        self.count_label.setObjectName("reviewCount")
        self.count_label.setToolTip(
            'Photos whose caption the model marked "Check this" (F7 goes through them)'
        )
        self.count_label.setTextFormat(Qt.TextFormat.RichText)
        self.count_label.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.count_label.linkActivated.connect(lambda _link: self.start())
        self.count_label.hide()
        status_bar.addPermanentWidget(self.count_label)
        self.remaining = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(COUNT_DELAY_MS)
        self._timer.timeout.connect(self.recount)
        self.photos.dataChanged.connect(lambda *_: self._timer.start())
        self.photos.modelReset.connect(self._timer.start)
        self.photos.rowsInserted.connect(lambda *_: self._timer.start())
        self.photos.rowsRemoved.connect(lambda *_: self._timer.start())
        self.recount()

    def add_menu(self, bar: QMenuBar, before: QAction | None = None) -> QMenu:
        """A Review menu with the flow's commands (before ``before``, e.g. the Help menu's)."""
        menu = QMenu("&Review", bar)
        if before is None:
            bar.addMenu(menu)
        else:
            bar.insertMenu(before, menu)
        menu.addAction(self.start_action)
        menu.addSeparator()
        menu.addAction(self.next_action)
        menu.addAction(self.previous_action)
        menu.addSeparator()
        menu.addAction(self.accept_action)
        menu.addAction(self.edit_action)
        for action in self.pick_actions:
            menu.addAction(action)
        return menu

    # ---------------------------------------------------------------- which photos

    def is_marked(self, photo: Photo) -> bool:
        return photo.needs_check(self.photos.review_below)

    def marked_in_order(self) -> list[Path]:
        """The marked photos the grid shows, in the grid's order."""
        rows = (self.filter.index(r, 0).data(PHOTO_ROLE) for r in range(self.filter.rowCount()))
        return [p.path for p in rows if p is not None and self.is_marked(p)]

    @Slot()
    def recount(self) -> None:
        n = sum(1 for p in self.photos.photos() if self.is_marked(p))
        if n:
            self.count_label.setText(
                f"⚑ {plural(n, 'marked caption')} to review · <a href='review'>Review</a>"
            )
        self.count_label.setVisible(n > 0)
        for action in (self.next_action, self.previous_action):
            action.setEnabled(n > 0)
        if n != self.remaining:
            self.remaining = n
            self.remaining_changed.emit(n)

    # ---------------------------------------------------------------- moving

    def start(self) -> bool:
        """Show the first marked photo (in the grid's order); False when none is marked."""
        marked = self.marked_in_order()
        if not marked:
            self.editor.message_posted.emit("No caption is marked for review.", 4000)
            return False
        self.editor.select_photo(marked[0])
        # Short enough for an 800-pixel window beside the count of marked captions (which
        # says how many): QStatusBar cuts a message off at the permanent widgets.
        self.editor.message_posted.emit(
            "Review: Ctrl+Shift+Enter accepts, F2 edits, Alt+1-3 picks a suggestion, F8 next.",
            10000,
        )
        return True

    def step(self, delta: int) -> bool:
        """Go to the next (1) or previous (-1) marked photo after the current one, wrapping
        around; False when none is marked."""
        marked = self.marked_in_order()
        if not marked:
            self.editor.message_posted.emit("No caption is left to review.", 4000)
            return False
        order = [
            self.filter.index(r, 0).data(PHOTO_ROLE).path for r in range(self.filter.rowCount())
        ]
        rank = {path: i for i, path in enumerate(order)}
        here = self.panel.path
        position = rank.get(here, -1) if here is not None else -1
        if delta > 0:
            after = [p for p in marked if rank[p] > position]
            target = after[0] if after else marked[0]
        else:
            before = [p for p in marked if rank[p] < position] if position >= 0 else []
            target = before[-1] if before else marked[-1]
        self.editor.select_photo(target)
        return True

    # ---------------------------------------------------------------- deciding

    def accept(self) -> bool:
        """Save the shown caption as the user's (it is never marked again) and go on to the
        next marked photo."""
        photo = self.editor.current_photo()
        text = self.panel.text().strip()
        if photo is None or not text:
            self.editor.message_posted.emit("No caption to accept.", 3000)
            return False
        # The user's from now on: saved without the model's confidence (core records it as
        # reviewed), so no mark comes back, also after a restart.
        mine = replace(photo, draft=text, typed=True)
        self.photos.put(mine)
        self.filter.hold(photo.path)  # a least-sure-first grid keeps it in place meanwhile
        self.saver.save(mine, text)
        self.recount()
        if self.remaining:
            self.step(1)
        else:
            self.editor.message_posted.emit("Every marked caption is reviewed.", 5000)
        return True

    def edit(self) -> None:
        """Put the keyboard in the caption editor (what is typed there is the user's)."""
        self.panel.editor.setFocus()
        self.panel.editor.selectAll()

    def pick(self, i: int) -> bool:
        """Use the panel's suggestion number i (from 0) as the caption (the user's choice)."""
        if i >= self.panel.candidates.count() or self.panel.path is None:
            self.editor.message_posted.emit(f"There is no suggestion {i + 1} here.", 3000)
            return False
        item = self.panel.candidates.item(i)
        self.panel.candidates.setCurrentItem(item)
        self.panel.use_candidate(item.data(Qt.ItemDataRole.UserRole))
        return True
