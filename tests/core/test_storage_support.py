"""Helpers for the caption-storage tests: sample copies, exiftool, image-data extraction."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import exiv2
import pytest
from PIL import Image

from core.storage.files import TEMP_PREFIX

DATA = Path(__file__).resolve().parent.parent / "data"
EMBEDDABLE = ["exif_iptc.jpg", "plain.jpg", "astronaut.png", "rocket.webp", "chelsea.tif"]
# Everything at once that trips up metadata writers: quotes, markup, a line break, Japanese,
# an emoji outside the BMP, Hebrew (right to left) and Arabic.
TRICKY = 'A "cat" on a <mat> & a dog\'s bed, 猫が寝ている 🐱 — שלום עולם, مرحبا\nsecond line'
EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(
    EXIFTOOL is None, reason="exiftool is not installed (apt-get install libimage-exiftool-perl)"
)


def sample(tmp_path: Path, name: str, as_name: str | None = None) -> Path:
    """A private copy of a tests/data sample in tmp_path."""
    target = tmp_path / (as_name or name)
    shutil.copyfile(DATA / name, target)
    return target


def exiftool_json(path: Path, *tags: str) -> dict:
    """exiftool's view of a file (an independent reader), with -j and the given tags."""
    assert EXIFTOOL is not None
    result = subprocess.run(
        [EXIFTOOL, "-j", *tags, os.fsencode(path)],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout.decode("utf-8"))
    return record


def exiftool_captions(path: Path) -> dict[str, str]:
    record = exiftool_json(
        path, "-XMP-dc:Description", "-EXIF:ImageDescription", "-IPTC:Caption-Abstract"
    )
    return {key: str(value) for key, value in record.items() if key != "SourceFile"}


def exiftool_all(path: Path) -> dict:
    """Every tag exiftool reads (numeric values), without file-system and derived ones."""
    record = exiftool_json(path, "-a", "-G1", "-n", "-struct")
    skip_groups = ("System:", "File:", "ExifTool:", "Composite:")
    return {k: v for k, v in record.items() if k != "SourceFile" and not k.startswith(skip_groups)}


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))


# --- image data, extracted independently of core.storage.pixels ---------------------------


def jpeg_scan(data: bytes) -> bytes:
    """Everything from the first start-of-scan marker (the compressed pixels) to EOI."""
    pos = 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return data[pos:]


def png_image_chunks(data: bytes) -> list[bytes]:
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind in (b"IHDR", b"PLTE", b"IDAT"):
            chunks.append(data[pos : pos + 12 + length])
        pos += 12 + length
    return chunks


def webp_image_chunks(data: bytes) -> list[bytes]:
    chunks, pos = [], 12
    while pos < len(data):
        kind, length = struct.unpack("<4sI", data[pos : pos + 8])
        if kind in (b"VP8 ", b"VP8L", b"ALPH"):
            chunks.append(data[pos : pos + 8 + length])
        pos += 8 + length + (length & 1)
    return chunks


def tiff_strips_and_pixels(data: bytes) -> tuple[list[bytes], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        offsets, counts = image.tag_v2[273], image.tag_v2[279]
        return [data[o : o + c] for o, c in zip(offsets, counts, strict=True)], image.tobytes()


def image_data(path: Path) -> object:
    """The encoded image data of a sample, in a form that compares equal only if untouched."""
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        return jpeg_scan(data)
    if suffix == ".png":
        return png_image_chunks(data)
    if suffix == ".webp":
        return webp_image_chunks(data)
    if suffix in (".tif", ".tiff"):
        return tiff_strips_and_pixels(data)
    raise AssertionError(f"no image-data extractor for {path}")


def exiv2_write(path: Path, **fields: str) -> None:
    """Put metadata into a test photo with exiv2 directly (test set-up, not the code under
    test); keys as exiv2's with "_" for ".", e.g. Exif_Image_ImageDescription."""
    image = exiv2.ImageFactory.open(path.read_bytes())
    image.readMetadata()
    for key, value in fields.items():
        key = key.replace("_", ".")
        if key.startswith("Exif"):
            image.exifData()[key] = value
        elif key.startswith("Iptc"):
            image.iptcData()[key] = value
        else:
            image.xmpData()[key] = value
    image.writeMetadata()
    with image.io().data() as buffer:
        path.write_bytes(bytes(buffer))
