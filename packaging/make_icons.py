"""Renders the app icon (desktop/resources/photoscribe.svg) into packaging/icons/.

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/make_icons.py

Writes a copy of the SVG, PNGs at the sizes desktop environments look for (16 to 512 pixels),
a Windows .ico and a macOS .icns. The results are committed; run this again whenever the SVG
changes (tests/packaging/test_icons.py fails until then).
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QBuffer, QByteArray, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "desktop" / "resources" / "photoscribe.svg"
ICONS = ROOT / "packaging" / "icons"
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)  # hicolor theme sizes
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # what Windows shows, up to the .ico limit
ICNS_SIZE = 1024  # Pillow derives the smaller macOS sizes from it


def render(svg: bytes, size: int) -> Image.Image:
    """The SVG drawn at ``size`` x ``size`` pixels, antialiased, on a transparent background."""
    renderer = QSvgRenderer(QByteArray(svg))
    if not renderer.isValid():
        raise ValueError(f"{SOURCE} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    buffer = QByteArray()
    device = QBuffer(buffer)
    device.open(QBuffer.OpenModeFlag.WriteOnly)
    image.save(device, "PNG")
    device.close()
    return Image.open(io.BytesIO(bytes(buffer))).convert("RGBA")


def png_path(size: int) -> Path:
    return ICONS / f"photoscribe-{size}.png"


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - Qt needs it
    ICONS.mkdir(parents=True, exist_ok=True)
    svg = SOURCE.read_bytes()
    shutil.copyfile(SOURCE, ICONS / "photoscribe.svg")
    for size in PNG_SIZES:
        render(svg, size).save(png_path(size), optimize=True)
    largest = render(svg, 256)
    largest.save(
        ICONS / "photoscribe.ico",
        sizes=[(s, s) for s in ICO_SIZES],
        append_images=[render(svg, s) for s in ICO_SIZES if s != 256],
    )
    render(svg, ICNS_SIZE).save(ICONS / "photoscribe.icns")
    print(f"wrote {len(PNG_SIZES)} PNGs, photoscribe.ico and photoscribe.icns to {ICONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
