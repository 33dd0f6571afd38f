"""The page the middle of the window shows before a folder is open."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from desktop.samples import APP_ICON


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
        self.text.setMaximumWidth(520)
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
        layout.addWidget(self.text, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(12)
        layout.addLayout(buttons)
        layout.addStretch(2)
