"""A file name that is not valid UTF-8 is shown as the file system has it, never blanked."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt

from desktop.panel import CaptionPanel
from desktop.photos import Photo, PhotoListModel

LATIN1 = Path("/photos") / os.fsdecode(b"caf\xe9 \xff.jpg")  # as os.listdir gives it


def test_the_grid_and_the_panel_show_the_names_bytes(qtbot) -> None:
    """Qt drops the lone surrogates of such a name ("caf .jpg"); each byte that is not UTF-8
    is shown as \\xNN instead (issue 22.13)."""
    model = PhotoListModel()
    model.set_photos([LATIN1])
    index = model.index_of(LATIN1)
    assert model.data(index, Qt.ItemDataRole.DisplayRole) == "caf\\xe9 \\xff.jpg"
    assert "/photos/caf\\xe9 \\xff.jpg" in model.data(index, Qt.ItemDataRole.ToolTipRole)
    panel = CaptionPanel()
    qtbot.addWidget(panel)
    panel.show_photo(Photo(path=LATIN1, caption="a cat", store="txt", loaded=True))
    assert panel.title.text() == "caf\\xe9 \\xff.jpg"
    assert panel.title.toolTip() == "/photos/caf\\xe9 \\xff.jpg"
