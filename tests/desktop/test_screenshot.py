"""Renders the main window with the sample photos to a PNG, so the look can be reviewed.

The PNG goes to tests/desktop/screenshots/main_window.png. With PHOTOSCRIBE_UPDATE_SCREENSHOT=1
it is also copied to desktop/resources/screenshot.png, the README's screenshot:

    PHOTOSCRIBE_UPDATE_SCREENSHOT=1 QT_QPA_PLATFORM=offscreen \\
        .venv/bin/pytest tests/desktop/test_screenshot.py
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtGui import QImage

from desktop.samples import RESOURCES, prepare_samples

HERE = Path(__file__).resolve().parent
SCREENSHOT = HERE / "screenshots" / "main_window.png"
README_SCREENSHOT = RESOURCES / "screenshot.png"

# Captions as a user would have reviewed and saved them; until the trained model ships, the
# tiny test model's captions are random words, which would not show what the app is for.
REVIEWED = {
    "astronaut.jpg": "an astronaut in an orange suit smiles in front of an american flag",
    "chelsea.jpg": "a ginger cat lies on the floor and looks up",
    "coffee.jpg": "a cup of coffee on a red saucer on a wooden table",
    "rocket.jpg": "a rocket stands on the launch pad at night",
}


def test_screenshot_of_the_main_window_with_the_sample_photos(qtbot, make_window, env):
    folder = prepare_samples(env.data_dir)
    for name, caption in REVIEWED.items():
        (folder / name).with_suffix(".txt").write_text(caption, encoding="utf-8")
    window = make_window()
    window.resize(QSize(1280, 800))
    window.open_samples()
    qtbot.waitUntil(
        lambda: window.photos.rowCount() == 5 and all(p.loaded for p in window.photos.photos()),
        timeout=20_000,
    )
    window.select_photo(folder / "astronaut.jpg")
    qtbot.waitUntil(
        lambda: (
            all(window.photos.has_thumbnail(p.path) for p in window.photos.photos())
            and window.panel.preview.pixmap() is not None
            and not window.panel.preview.pixmap().isNull()
        ),
        timeout=20_000,
    )
    qtbot.wait(300)  # let the counts in the status bar settle
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert window.grab().save(str(SCREENSHOT), "PNG")
    image = QImage(str(SCREENSHOT))
    assert image.width() >= 1280 and image.height() >= 800
    assert window.counts_label.text() == "5 photos, 4 captioned"
    if os.environ.get("PHOTOSCRIBE_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(SCREENSHOT, README_SCREENSHOT)
