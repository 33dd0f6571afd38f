"""The app icon in the sizes and formats the desktops want, made from the app's own SVG."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.packaging.conftest import PACKAGING, ROOT

ICONS = PACKAGING / "icons"
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def test_the_icons_come_from_the_apps_svg() -> None:
    source = ROOT / "desktop" / "resources" / "photoscribe.svg"
    assert (ICONS / "photoscribe.svg").read_bytes() == source.read_bytes(), (
        "the app icon changed: run QT_QPA_PLATFORM=offscreen .venv/bin/python "
        "packaging/make_icons.py"
    )


@pytest.mark.parametrize("size", PNG_SIZES)
def test_png_sizes(size: int) -> None:
    with Image.open(ICONS / f"photoscribe-{size}.png") as image:
        assert image.format == "PNG" and image.size == (size, size) and image.mode == "RGBA"
        assert image.getpixel((0, 0))[3] == 0, "the corners are transparent"
        assert image.getpixel((size // 2, size // 2))[3] == 255


def test_windows_and_macos_icons() -> None:
    with Image.open(ICONS / "photoscribe.ico") as ico:
        assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(ico.info["sizes"])
    with Image.open(ICONS / "photoscribe.icns") as icns:
        assert icns.format == "ICNS" and icns.size[0] >= 512
