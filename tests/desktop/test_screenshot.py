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

from core.datatypes import DEFAULT_WEIGHTS
from desktop.samples import RESOURCES, prepare_samples
from tests.desktop.conftest import wait_idle

HERE = Path(__file__).resolve().parent
SCREENSHOT = HERE / "screenshots" / "main_window.png"
README_SCREENSHOT = RESOURCES / "screenshot.png"


def test_screenshot_of_the_main_window_with_the_sample_photos(
    qtbot, make_window, env, tmp_path, monkeypatch
):
    """The shipped model captions the samples, so the picture shows what users really get.

    The photos sit in a folder a user would have (~/Pictures/Everyday of a fresh home), so the
    folder tree shows what it shows a user, not a test's temporary folder."""
    home = tmp_path / "home"
    folder = home / "Pictures" / "Everyday"
    folder.mkdir(parents=True)
    (home / "Documents").mkdir()
    (home / "Pictures" / "Holidays").mkdir()
    samples = sorted(prepare_samples(env.data_dir).glob("*.jpg"))
    for photo in samples:
        shutil.copy2(photo, folder / photo.name)
    n = len(samples)
    monkeypatch.setenv("HOME", str(home))
    window = make_window(weights=DEFAULT_WEIGHTS)
    window.resize(QSize(1280, 800))
    window.open_folder(folder)
    qtbot.waitUntil(
        lambda: window.photos.rowCount() == n and all(p.loaded for p in window.photos.photos()),
        timeout=20_000,
    )
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window, timeout=120_000)
    assert all(p.caption for p in window.photos.photos())
    window.editor.select_photo(folder / "taxis.jpg")
    qtbot.waitUntil(
        lambda: (
            all(window.photos.has_thumbnail(p.path) for p in window.photos.photos())
            and window.panel.preview.pixmap() is not None
            and not window.panel.preview.pixmap().isNull()
        ),
        timeout=20_000,
    )
    # The counts in the status bar settle last.
    counts = f"{n} photos, {n} captioned"
    qtbot.waitUntil(lambda: window.counts_label.text() == counts, timeout=20_000)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert window.grab().save(str(SCREENSHOT), "PNG")
    image = QImage(str(SCREENSHOT))
    assert image.width() >= 1280 and image.height() >= 800
    assert window.counts_label.text() == counts
    if os.environ.get("PHOTOSCRIBE_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(SCREENSHOT, README_SCREENSHOT)
