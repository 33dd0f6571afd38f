"""The page the middle of the window shows before a folder is open."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon, QResizeEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from desktop.samples import APP_ICON

TEXT_WIDTH = 520  # the welcome text's lines are at most this wide
MIN_TEXT_WIDTH = 200
SIDE_MARGIN = 24


class WelcomePage(QWidget):
    """A title, what PhotoScribe does, and the two ways to begin."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        icon = QLabel(self)
        icon.setPixmap(QIcon(str(APP_ICON)).pixmap(96, 96))
        icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel("<h2>Caption your photos, on your own computer</h2>", self)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title.setWordWrap(True)
        self.text = QLabel(
            "Open a folder of photos (or drop one on this window). PhotoScribe writes a short "
            "description of each photo that you can review, edit and save next to it, where "
            "Lightroom, darktable, digiKam and search tools find it.",
            self,
        )
        self.text.setObjectName("welcomeText")
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.open_button = QPushButton("Open a Folder…", self)
        self.samples_button = QPushButton("Try the Sample Photos", self)
        self.samples_button.setToolTip(
            "Eight public-domain and CC0 photos, copied to PhotoScribe's folder"
        )
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.samples_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(icon)
        layout.addWidget(title)
        layout.addWidget(self.text, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(12)
        layout.addLayout(buttons)
        layout.addStretch(2)
        # Set here, so that the text's width (fitted to the page) never widens the page. Its
        # height is left to the layout: a fixed minimum would count while the page is hidden.
        self.setMinimumWidth(MIN_TEXT_WIDTH + 2 * SIDE_MARGIN)
        self._fit_text()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_text()

    def _fit_text(self) -> None:
        # A word-wrapped label centred in a box layout is given the height it needs at some
        # other width and comes out clipped; a fixed size from its own width fits exactly.
        width = max(MIN_TEXT_WIDTH, min(TEXT_WIDTH, self.width() - 2 * SIDE_MARGIN))
        self.text.setFixedSize(width, self.text.heightForWidth(width))
