"""AVIF and JPEG XL photos are shown in the grid like any other."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop.thumbnails import load_thumbnail
from tests.core.test_new_formats import FORMATS, make
from tests.desktop.conftest import open_and_wait


@pytest.mark.parametrize(("suffix", "kind"), FORMATS)
def test_thumbnailed(tmp_path: Path, suffix: str, kind: str) -> None:
    image = load_thumbnail(make(tmp_path, suffix, kind, (400, 300)), None, edge=128)
    assert (image.width(), image.height()) == (128, 96)


def test_listed_and_shown_in_the_grid(qtbot, window, tmp_path: Path) -> None:
    photos = [make(tmp_path, suffix, kind) for suffix, kind in FORMATS]
    open_and_wait(qtbot, window, tmp_path)
    assert sorted(p.path for p in window.photos.photos()) == sorted(photos)
    for photo in photos:
        window.photos.thumbnail(photo)
    qtbot.waitUntil(lambda: all(window.photos.has_thumbnail(p) for p in photos), timeout=20_000)
