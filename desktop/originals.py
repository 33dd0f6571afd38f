"""The question asked once before captions are first written into the photo files themselves."""

from __future__ import annotations

from typing import Literal

from PySide6.QtWidgets import QCheckBox, QMessageBox, QWidget

WriteIntoPhotosChoice = Literal["yes", "always", "no"]


def ask_write_into_photos(parent: QWidget | None) -> WriteIntoPhotosChoice:
    """Say what changes (the photos' metadata, never their pixels) and what the alternative
    is (sidecar files); "always" when the user ticked "Don't ask again"."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Write captions into your photos?")
    box.setText("PhotoScribe is about to write captions into the photo files themselves.")
    box.setInformativeText(
        "Only each photo's metadata changes (its description, in EXIF, XMP and IPTC); the "
        "pixels are never touched, and every write is checked. The files' sizes and "
        "modification times change, which backup and sync tools will notice.\n\n"
        "To leave your photos exactly as they are, save captions in sidecar files instead "
        "(Settings ▸ Save captions as: XMP sidecar or text sidecar)."
    )
    dont_ask = QCheckBox("Don't ask again", box)
    box.setCheckBox(dont_ask)
    write = box.addButton("Write into Photos", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(write)
    box.exec()
    if box.clickedButton() is not write:
        return "no"
    return "always" if dont_ask.isChecked() else "yes"
