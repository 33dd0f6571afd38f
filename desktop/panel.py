"""The right-hand panel: a large preview, the caption editor, candidates, where it is stored."""

from __future__ import annotations

import html
import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QImage, QPixmap, QResizeEvent, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.datatypes import CHECK_BELOW
from core.storage import STORE_NAMES
from core.storage.files import display_name, display_path
from desktop.photos import (
    STORED_IN,
    Photo,
    Status,
    check_note,
    confidence_note,
)
from desktop.settings import AppSettings, Settings

log = logging.getLogger(__name__)

EDITOR_PLACEHOLDER = "No caption yet. Type one, or caption this photo (Ctrl+R)."


class PreviewLabel(QLabel):
    """Shows a QImage scaled to fit, rescaled when the panel is resized."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)  # a message as long as a decoder's fits the panel, not clipped
        self.setMargin(8)
        self.setMinimumSize(240, 120)  # 180 kept a window with the Problems panel off 800x600
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName("preview")

    def sizeHint(self) -> QSize:
        return QSize(420, 320)

    def set_image(self, image: QImage | None, message: str = "") -> None:
        self._image = image
        if image is None:
            self.setPixmap(QPixmap())
            self.setText(message)
        else:
            self.setText("")
            self._rescale()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._image is None or self._image.isNull():
            return
        area = self.contentsRect().size()
        ratio = self.devicePixelRatioF()
        scaled = self._image.scaled(
            area * ratio,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        pixmap = QPixmap.fromImage(scaled)
        pixmap.setDevicePixelRatio(ratio)
        self.setPixmap(pixmap)


def where_stored(photo: Photo) -> str:
    if photo.status is Status.UNKNOWN:
        return "Looking for a caption…"
    if photo.store is None:
        return "No caption stored yet."
    return f"Caption stored {STORED_IN.get(photo.store, photo.store)}."


class CaptionPanel(QWidget):
    """Shows one photo; the user edits its caption here. Changes leave as ``text_edited``.

    With ``settings``, its "check this" threshold follows them (``Settings.changed``).
    """

    text_edited = Signal(object, str)  # path, the editor's text (typed or a chosen candidate)
    keep_requested = Signal(object, str)  # path, caption: stores disagree, the user keeps this

    def __init__(self, settings: Settings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._path: Path | None = None
        self._photo: Photo | None = None  # as last shown, to show again when settings change
        self._programmatic = False
        self._review_below = CHECK_BELOW
        if settings is not None:
            self._review_below = settings.current.review_below
            settings.changed.connect(self._settings_changed)

        self.preview = PreviewLabel(self)
        self.preview.set_image(None, "Select a photo to see it here.")
        self.title = QLabel(self)
        self.title.setObjectName("photoTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() + 1)
        self.title.setFont(font)
        self.location = QLabel(self)
        self.location.setWordWrap(True)
        self.location.setObjectName("storedIn")
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setObjectName("photoStatus")
        # Stores of this photo that disagree, and links to keep one of the captions.
        self.conflict = QLabel(self)
        self.conflict.setWordWrap(True)
        self.conflict.setObjectName("storesDisagree")
        self.conflict.setTextFormat(Qt.TextFormat.RichText)
        self.conflict.linkActivated.connect(self._keep_link)
        self._kept_choices: tuple[str, ...] = ()  # the captions the links keep, by number

        self.editor = QPlainTextEdit(self)
        self.editor.setObjectName("captionEditor")
        self.editor.setTabChangesFocus(True)
        self.editor.setMaximumHeight(110)
        self.editor.setToolTip(
            "The caption. Ctrl+S saves it, Ctrl+Z undoes an edit, Ctrl+Down goes to the next photo."
        )
        self.editor.textChanged.connect(self._on_text_changed)

        self.candidates_label = QLabel("Suggestions (click one to use it):", self)
        self.candidates = QListWidget(self)
        self.candidates.setObjectName("candidates")
        self.candidates.setMaximumHeight(100)
        self.candidates.setWordWrap(True)
        self.candidates.setToolTip("Other captions the model considered, best first")
        self.candidates.itemActivated.connect(self._use_item)
        self.candidates.itemClicked.connect(self._use_item)

        self.previous_button = QToolButton(self)
        self.next_button = QToolButton(self)
        self.revert_button = QToolButton(self)
        self.save_button = QToolButton(self)
        for button in (self.previous_button, self.next_button):
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        for button in (self.revert_button, self.save_button):
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        buttons = QHBoxLayout()
        buttons.addWidget(self.previous_button)
        buttons.addWidget(self.next_button)
        buttons.addStretch(1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.title)
        layout.addWidget(self.location)
        layout.addWidget(self.conflict)
        layout.addWidget(self.editor)
        layout.addWidget(self.status)
        layout.addWidget(self.candidates_label)
        layout.addWidget(self.candidates)
        layout.addLayout(buttons)
        self.show_photo(None)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def review_below(self) -> float:
        """Captions the model is less sure of than this are marked "check this"."""
        return self._review_below

    def _settings_changed(self, settings: AppSettings) -> None:
        if settings.review_below != self._review_below:
            self._review_below = settings.review_below
            self.refresh(self._photo)

    def text(self) -> str:
        return self.editor.toPlainText()

    def show_photo(self, photo: Photo | None) -> None:
        """Show another photo (its undo history starts afresh)."""
        self._path = photo.path if photo is not None else None
        self.editor.setEnabled(photo is not None)
        self.editor.setPlaceholderText(EDITOR_PLACEHOLDER if photo is not None else "")
        self._set_editor_text(photo.text if photo is not None else "")
        if photo is None:
            self.preview.set_image(None, "Select a photo to see it here.")
        else:
            self.preview.set_image(None, "Loading…")
        self.refresh(photo)

    def refresh(self, photo: Photo | None) -> None:
        """The shown photo changed (a caption arrived, was saved or failed)."""
        if photo is None:
            self._photo = None
            self.title.setText("No photo selected")
            self.location.setText("")
            self._show_conflict(None)
            self.status.setText("")
            self._set_candidates(())
            return
        if photo.path != self._path:
            return
        self._photo = photo
        self.title.setText(display_name(photo.path))
        self.title.setToolTip(display_path(photo.path))
        self.location.setText(where_stored(photo))
        self._show_conflict(photo)
        if self.text() != photo.text and (not photo.typed or self.text() == (photo.caption or "")):
            # A caption arrived, was saved, or was kept after a failed save (also one typed
            # before a restart, which the index kept): nothing typed here to lose.
            self._set_editor_text(photo.text)
        status = photo.status
        if status is Status.ERROR and photo.error:
            self.status.setText(f"<span style='color:#d0342c'>{html.escape(photo.error)}</span>")
        elif status is Status.UNSAVED:
            self.status.setText("<span style='color:#b06d00'>Unsaved changes (Ctrl+S saves)</span>")
        elif status in (Status.WORKING, Status.SAVING):
            self.status.setText(f"{status.value.capitalize()}…")
        else:
            self.status.setText("")
        if note := check_note(photo, self._review_below):
            mark = f"<b style='color:#9a5b00'>{html.escape(note)}</b>"
        elif note := confidence_note(photo, self._review_below):
            mark = f"<span style='color:#555'>{html.escape(note)}</span>"
        else:
            mark = ""
        if mark:
            text = self.status.text()
            self.status.setText(f"{text}<br>{mark}" if text else mark)
        self._set_candidates(tuple((c.caption, c.score) for c in photo.candidates))

    def _show_conflict(self, photo: Photo | None) -> None:
        """Where stores of the photo disagree: what each holds, and a link to keep each."""
        if photo is None or not photo.others or photo.caption is None:
            self._kept_choices = ()
            self.conflict.hide()
            return
        self._kept_choices = (photo.caption, *(other.caption for other in photo.others))
        lines = ["<b style='color:#9a5b00'>The caption is not the same everywhere:</b>"]
        places = (photo.store, *(other.store for other in photo.others))
        for number, (text, store) in enumerate(zip(self._kept_choices, places, strict=True)):
            name = html.escape(STORE_NAMES.get(store, str(store)) if store else "?")
            shown = " (shown)" if number == 0 else ""
            lines.append(
                f"the {name}{shown}: “{html.escape(text)}” <a href='keep:{number}'>Keep this</a>"
            )
        self.conflict.setText("<br>".join(lines))
        self.conflict.setToolTip(
            "Another program (or an older PhotoScribe) changed one of them. The caption you "
            "keep is saved in the place chosen in Settings, and every other place holding a "
            "caption is brought to the same text."
        )
        self.conflict.show()

    @Slot(str)
    def _keep_link(self, link: str) -> None:
        number = int(link.removeprefix("keep:"))
        if self._path is not None and 0 <= number < len(self._kept_choices):
            self.keep_requested.emit(self._path, self._kept_choices[number])

    def set_preview(self, path: Path, image: QImage | None, message: str = "") -> None:
        if path == self._path:
            self.preview.set_image(image, message)

    def use_candidate(self, text: str) -> None:
        """Replace the caption with ``text`` as one edit, so Ctrl+Z brings the old one back."""
        cursor = self.editor.textCursor()
        cursor.beginEditBlock()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(text)
        cursor.endEditBlock()
        self.editor.setTextCursor(cursor)

    def _set_candidates(self, candidates: tuple[tuple[str, float], ...]) -> None:
        current = [
            self.candidates.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.candidates.count())
        ]
        visible = bool(candidates)
        self.candidates.setVisible(visible)
        self.candidates_label.setVisible(visible)
        if current == [text for text, _ in candidates]:
            return
        self.candidates.clear()
        for text, score in candidates:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, text)
            # A suggestion kept in the library index has no score (NaN): none is shown.
            note = f"\nScore {score:.2f} (closer to 0 is more confident)" if score == score else ""
            item.setToolTip(text + note)
            self.candidates.addItem(item)

    def _set_editor_text(self, text: str) -> None:
        self._programmatic = True
        try:
            self.editor.setPlainText(text)
            self.editor.moveCursor(QTextCursor.MoveOperation.End)
        finally:
            self._programmatic = False
        self._unmark_candidate()

    def _unmark_candidate(self) -> None:
        """A suggestion stays highlighted only while it is the editor's text."""
        item = self.candidates.currentItem()
        if item is not None and item.data(Qt.ItemDataRole.UserRole) != self.text():
            self.candidates.clearSelection()
            self.candidates.setCurrentRow(-1)

    @Slot()
    def _on_text_changed(self) -> None:
        self._unmark_candidate()
        if not self._programmatic and self._path is not None:
            self.text_edited.emit(self._path, self.text())

    @Slot(QListWidgetItem)
    def _use_item(self, item: QListWidgetItem) -> None:
        text = item.data(Qt.ItemDataRole.UserRole)
        if text and text != self.text():
            self.use_candidate(text)
