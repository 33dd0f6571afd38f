"""Captions go inside real camera JPEGs with maker notes, or beside them (issue 27, item 1).

Every file of tests/data/cameras is embedded into, read back by exiftool (the independent
reader), with its image data, its previews and every other tag exiftool reads unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import core.storage.embedded as embedded_module
from core.storage import EmbeddedStore, FileIdentity, make_store
from core.storage.jpeg_xmp import segments, with_xmp_packet, without_xmp
from tests.core.test_storage_support import (
    DATA,
    EXIFTOOL,
    exiftool_all,
    exiftool_captions,
    jpeg_scan,
    needs_exiftool,
    temp_files,
)

CAMERAS = DATA / "cameras"
CAPTION = "A red kite over the field, 猫 🐱"
# exiv2 writes the whole metadata again: every field the same, previews moved, not changed.
REWRITTEN = [
    "canon_eos_20d.jpg",
    "canon_powershot_s40.jpg",
    "fujifilm_s2pro.jpg",
    "nikon_d70.jpg",  # Exif.Nikon3.Preview 1430 -> 1414: the preview moves, unchanged
    "nikon_e950.jpg",
    "olympus_c8080wz.jpg",
    "panasonic_dmc_fz5.jpg",
    "sony_dsc_w7.jpg",
]
# exiv2 reports damage it would not write back: only the XMP segment is written.
XMP_ONLY = ["nikon_e3200_damaged_preview.jpg", "pentax_kx_truncated_exif.jpg"]
# The XMP inside cannot be decoded, so it cannot be replaced without loss: an XMP sidecar.
BESIDE = ["nikon_d300s_damaged_xmp.jpg"]
# Tags that say where something lies in the file (they change when the metadata grows).
LAYOUT = {"IFD1:ThumbnailOffset", "PreviewIFD:PreviewImageStart"}
CAPTION_TAGS = {
    "XMP-dc:Description",
    "IFD0:ImageDescription",
    "IPTC:Caption-Abstract",
    "IPTC:CodedCharacterSet",
    "XMP-x:XMPToolkit",
}


def test_the_test_set_is_complete_and_small() -> None:
    files = sorted(p.name for p in CAMERAS.glob("*.jpg"))
    assert files == sorted(REWRITTEN + XMP_ONLY + BESIDE)
    assert all((CAMERAS / name).stat().st_size < 60_000 for name in files)
    makers = {name.split("_")[0] for name in files}
    assert {"nikon", "canon", "sony", "olympus", "panasonic", "fujifilm"} <= makers


def copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copyfile(CAMERAS / name, target)
    return target


def previews(photo: Path) -> dict[str, bytes]:
    """The preview images exiftool finds, by tag."""
    found = {}
    for tag in ("ThumbnailImage", "PreviewImage", "JpgFromRaw", "OtherImage"):
        assert EXIFTOOL is not None
        data = subprocess.run(
            [EXIFTOOL, "-b", f"-{tag}", str(photo)], capture_output=True, check=True
        ).stdout
        if data:
            found[tag] = data
    return found


def others(tags: dict) -> dict:
    return {k: v for k, v in tags.items() if k not in CAPTION_TAGS | LAYOUT}


@needs_exiftool
@pytest.mark.parametrize("name", REWRITTEN + XMP_ONLY)
def test_caption_goes_inside_with_nothing_else_changed(tmp_path: Path, name: str) -> None:
    photo = copy(tmp_path, name)
    original = photo.read_bytes()
    tags, shown = exiftool_all(photo), previews(photo)

    result = make_store("embed").write(photo, CAPTION, expected=FileIdentity.of(photo))

    assert (result.store, result.path, result.written) == ("embed", photo, True)
    assert EmbeddedStore().read(photo) == CAPTION
    captions = exiftool_captions(photo)
    assert captions["Description"] == CAPTION
    assert jpeg_scan(photo.read_bytes()) == jpeg_scan(original), "compressed image data"
    assert previews(photo) == shown, "maker-note previews, compared by content"
    assert others(exiftool_all(photo)) == others(tags)
    assert not list(tmp_path.glob("*.xmp")) and temp_files(tmp_path) == []
    if name in XMP_ONLY:
        assert without_xmp(photo.read_bytes()) == without_xmp(original), "only XMP written"
    else:
        assert captions["ImageDescription"] == CAPTION


@needs_exiftool
@pytest.mark.parametrize("name", BESIDE)
def test_a_photo_not_safe_to_write_gets_an_xmp_sidecar(tmp_path: Path, name: str) -> None:
    photo = copy(tmp_path, name)
    original = photo.read_bytes()

    result = make_store("embed").write(photo, CAPTION, expected=FileIdentity.of(photo))

    assert photo.read_bytes() == original, "the photo is not touched"
    assert result.store == "xmp" and result.path == tmp_path / f"{name}.xmp"
    assert "XMP sidecar" in result.message and "could not write inside" in result.message
    assert make_store("xmp").read(photo) == CAPTION
    assert exiftool_captions(result.path)["Description"] == CAPTION


def test_a_preview_that_would_change_is_caught_and_only_xmp_is_written(
    tmp_path: Path, monkeypatch, readers_in_process
) -> None:
    """Regression (issue 27, item 1): the check compared maker-note offsets, so a moved
    preview counted as damage; now previews are compared by what they hold, and a change of
    one makes the write fall back to the XMP segment alone."""
    photo = copy(tmp_path, "nikon_d70.jpg")
    original = photo.read_bytes()
    real = embedded_module.preview_digests
    calls = []

    def changed_after_rewrite(image):
        calls.append(1)
        digests = real(image)
        return digests if len(calls) == 1 else [d[::-1] for d in digests]

    monkeypatch.setattr(embedded_module, "preview_digests", changed_after_rewrite)
    EmbeddedStore().write(photo, CAPTION)
    assert len(calls) == 2
    assert without_xmp(photo.read_bytes()) == without_xmp(original)
    assert EmbeddedStore().read(photo) == CAPTION


def test_only_xmp_is_not_used_when_exif_holds_another_caption(tmp_path: Path) -> None:
    """Writing only XMP would leave EXIF's older caption, which readers take first: the
    caption goes to the sidecar instead, and nothing inside the photo changes."""
    photo = copy(tmp_path, "nikon_e3200_damaged_preview.jpg")
    EmbeddedStore().write(photo, "first caption")  # XMP only: EXIF has none
    before = photo.read_bytes()
    result = EmbeddedStore().write(photo, "second caption", overwrite=True)
    assert result.store == "embed" and EmbeddedStore().read(photo) == "second caption"
    assert without_xmp(photo.read_bytes()) == without_xmp(before)


def test_xmp_segment_is_inserted_after_exif_and_replaced_in_place() -> None:
    data = (CAMERAS / "sony_dsc_w7.jpg").read_bytes()
    inserted = with_xmp_packet(data, b"<x/>")
    markers = [(s.marker, s.payload(inserted)[:4]) for s in segments(inserted)]
    exif = markers.index((0xE1, b"Exif"))
    assert markers[exif + 1] == (0xE1, b"http"), "right after JFIF and EXIF, where readers look"
    again = with_xmp_packet(inserted, b"<y/>")
    assert len(again) == len(inserted) and without_xmp(again) == data
