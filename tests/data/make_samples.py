"""Regenerate the small sample photos in tests/data from scikit-image's public-domain/CC0 images."""

# Run from the repository root with scikit-image installed (it is not a PhotoScribe dependency):
#     pip install scikit-image && python tests/data/make_samples.py
# The output is deterministic for a given Pillow/libjpeg/libwebp/exiv2 version.

from __future__ import annotations

import io
from pathlib import Path

import exiv2
import numpy as np
from PIL import Image, TiffImagePlugin
from skimage import data

HERE = Path(__file__).resolve().parent
LONG_SIDE = 256


def _resized(pixels: np.ndarray, long_side: int = LONG_SIDE) -> Image.Image:
    im = Image.fromarray(pixels).convert("RGB")
    im.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    return im


def _add_iptc_and_xmp(path: Path) -> None:
    """Give the EXIF sample IPTC (without a character-set marker) and XMP fields to preserve."""
    image = exiv2.ImageFactory.open(path.read_bytes())
    image.readMetadata()
    iptc = image.iptcData()
    iptc["Iptc.Application2.Keywords"] = "coffee"
    keyword = exiv2.Iptcdatum(exiv2.IptcKey("Iptc.Application2.Keywords"))
    keyword.setValue("cup")
    iptc.add(keyword)
    iptc["Iptc.Application2.City"] = "Seattle"
    iptc["Iptc.Application2.Byline"] = "Rachel Michetti"
    xmp = image.xmpData()
    xmp["Xmp.xmp.Rating"] = "4"
    xmp["Xmp.dc.subject"] = exiv2.XmpArrayValue(["coffee", "cup"], exiv2.TypeId.xmpBag)
    image.writeMetadata()
    with image.io().data() as buffer:
        path.write_bytes(bytes(buffer))


def make_exif_jpeg() -> Path:
    """coffee, stored rotated with EXIF Orientation 6 so viewers show it upright."""
    im = _resized(data.coffee())
    stored = im.transpose(Image.Transpose.ROTATE_90)  # Orientation 6 rotates it back clockwise
    exif = Image.Exif()
    exif[0x010F] = "PhotoScribe Test"  # Make
    exif[0x0110] = "Sample Camera 1"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    exif[0x0131] = "make_samples.py"  # Software
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 12:00:00"  # DateTimeOriginal
    path = HERE / "exif_iptc.jpg"
    stored.save(path, "JPEG", quality=80, exif=exif.tobytes(), optimize=True)
    _add_iptc_and_xmp(path)
    return path


def make_plain_jpeg() -> Path:
    path = HERE / "plain.jpg"
    _resized(data.chelsea()).save(path, "JPEG", quality=80, optimize=True)
    return path


def make_png() -> Path:
    # A 256-colour palette keeps a photo-sized PNG under the repository's 60 KB per file.
    im = _resized(data.astronaut()).quantize(colors=256, dither=Image.Dither.NONE)
    path = HERE / "astronaut.png"
    im.save(path, "PNG", optimize=True)
    return path


def make_webp() -> Path:
    path = HERE / "rocket.webp"
    _resized(data.rocket()).save(path, "WEBP", quality=75, method=6)
    return path


def make_tiff() -> Path:
    # Deflate-compressed strips, several of them, so tests can compare raw strip bytes.
    im = _resized(data.chelsea(), 160)
    path = HERE / "chelsea.tif"
    TiffImagePlugin.WRITE_LIBTIFF = True
    im.save(path, "TIFF", compression="tiff_adobe_deflate", tiffinfo={278: 16})
    return path


def main() -> None:
    for make in (make_exif_jpeg, make_plain_jpeg, make_png, make_webp, make_tiff):
        path = make()
        with Image.open(io.BytesIO(path.read_bytes())) as im:
            print(f"{path.name}: {im.format} {im.size} {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
