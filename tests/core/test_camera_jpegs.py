"""Captions go inside real camera JPEGs with maker notes, or beside them (issue 27, item 1).

Every file of tests/data/cameras is embedded into, read back by exiftool (the independent
reader), with its image data, its previews and every other tag exiftool reads unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import exiv2
import pytest

import core.storage.embedded as embedded_module
from core.errors import CaptionExistsError
from core.storage import EmbeddedStore, FileIdentity, make_store
from core.storage.exif_in_place import with_description
from core.storage.jpeg_xmp import outside_xmp_and_iptc, segments, with_xmp_packet, without_xmp
from tests.core.test_storage_support import (
    DATA,
    EXIFTOOL,
    exiftool_all,
    exiftool_captions,
    exiftool_json,
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
# exiv2 reports damage it would not write back: only the XMP and IPTC segments are written.
KEEPING_LAYOUT = ["nikon_e3200_damaged_preview.jpg", "pentax_kx_truncated_exif.jpg"]
# Each with a test of its own below.
SPECIAL = [
    "nikon_d300s_damaged_xmp.jpg",  # XMP that cannot be decoded as it is
    "nikon_d70_damaged_exif_iptc_caption.jpg",  # damaged EXIF, someone's caption in IPTC
    "nikon_e5700_damaged_iptc.jpg",  # IPTC with a damaged character-set marker
    "nikon_d1x_photoshop_reagan.jpg",  # Photoshop: caption everywhere, IPTCDigest, exiv2 drops a tag
]
# Tags that say where something lies in the file (they change when the metadata grows).
LAYOUT = {"IFD1:ThumbnailOffset", "PreviewIFD:PreviewImageStart"}
CAPTION_TAGS = {
    "XMP-dc:Description",
    "IFD0:ImageDescription",
    "IPTC:Caption-Abstract",
    "IPTC:CodedCharacterSet",
    "XMP-x:XMPToolkit",
    "Photoshop:IPTCDigest",
}


def test_the_test_set_is_complete_and_small() -> None:
    files = sorted(p.name for p in CAMERAS.glob("*.jpg"))
    assert files == sorted(REWRITTEN + KEEPING_LAYOUT + SPECIAL)
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
@pytest.mark.parametrize("name", REWRITTEN + KEEPING_LAYOUT)
def test_caption_goes_inside_with_nothing_else_changed(tmp_path: Path, name: str) -> None:
    photo = copy(tmp_path, name)
    original = photo.read_bytes()
    tags, shown = exiftool_all(photo), previews(photo)

    result = make_store("embed").write(photo, CAPTION, expected=FileIdentity.of(photo))

    assert (result.store, result.path, result.written) == ("embed", photo, True)
    assert EmbeddedStore().read(photo) == CAPTION
    captions = exiftool_captions(photo)
    assert captions["Description"] == CAPTION
    if "IPTC:Caption-Abstract" in tags:
        assert captions["Caption-Abstract"] == CAPTION
    assert jpeg_scan(photo.read_bytes()) == jpeg_scan(original), "compressed image data"
    assert previews(photo) == shown, "maker-note previews, compared by content"
    assert others(exiftool_all(photo)) == others(tags)
    assert not list(tmp_path.glob("*.xmp")) and temp_files(tmp_path) == []
    if name in KEEPING_LAYOUT:
        written = photo.read_bytes()
        assert outside_xmp_and_iptc(written) == outside_xmp_and_iptc(original), "EXIF as it was"
    else:
        assert captions["ImageDescription"] == CAPTION


@needs_exiftool
def test_undecodable_xmp_is_written_again_without_the_copies_of_exif_tags_it_cannot_parse(
    tmp_path: Path,
) -> None:
    """Issue 27, item 1: DxO's XMP holds <exif:TIFF/EPStandardID> (not an XML name) and the
    thumbnail's exif:XResolution beside the image's, so no XMP toolkit decodes it (exiftool
    will not write it either). Those are copies of EXIF tags the photo keeps in EXIF: the
    packet is written again without them, and the caption goes inside."""
    photo = copy(tmp_path, "nikon_d300s_damaged_xmp.jpg")
    original = photo.read_bytes()
    tags = exiftool_all(photo)

    result = EmbeddedStore().write(photo, CAPTION)

    assert (result.store, result.written) == ("embed", True)
    assert "exif:TIFF/EPStandardID" in result.message and "EXIF" in result.message
    assert exiftool_captions(photo)["Description"] == CAPTION
    assert EmbeddedStore().read(photo) == CAPTION
    assert jpeg_scan(photo.read_bytes()) == jpeg_scan(original)
    after = exiftool_all(photo)
    not_xmp = {k: v for k, v in others(tags).items() if not k.startswith("XMP-")}
    assert {k: v for k, v in others(after).items() if not k.startswith("XMP-")} == not_xmp
    assert after["IFD0:TIFF-EPStandardID"] == tags["IFD0:TIFF-EPStandardID"], "kept in EXIF"
    dropped = {"XMP-exif:Tiff", "XMP-exif:XResolution", "XMP-exif:YResolution"}
    dropped |= {"XMP-exif:ResolutionUnit"}
    for key in others(tags):  # every other XMP property is still there
        if key.startswith("XMP-") and key not in dropped:
            assert key in after, key


@needs_exiftool
def test_undecodable_xmp_that_is_not_a_copy_of_exif_is_not_replaced_the_caption_goes_beside(
    tmp_path: Path,
) -> None:
    """The salvage is kept only when what it leaves out is in EXIF: here the property no
    reader can parse is not, so writing inside would lose it; an XMP sidecar gets the caption."""
    photo = unsalvageable_xmp(tmp_path / "dxo.jpg")
    original = photo.read_bytes()

    result = make_store("embed").write(photo, CAPTION, expected=FileIdentity.of(photo))

    assert photo.read_bytes() == original, "the photo is not touched"
    assert result.store == "xmp" and result.path == tmp_path / "dxo.jpg.xmp"
    assert "XMP sidecar" in result.message and "could not write inside" in result.message
    assert make_store("xmp").read(photo) == CAPTION
    assert exiftool_captions(result.path)["Description"] == CAPTION


def unsalvageable_xmp(path: Path) -> Path:
    """The Nikon D300S photo with its unparsable XMP element renamed to one EXIF lacks: no
    salvage keeps everything, so nothing may be written inside (a copy at ``path``)."""
    data = (CAMERAS / "nikon_d300s_damaged_xmp.jpg").read_bytes()
    # Same length: the segment keeps its size.
    path.write_bytes(data.replace(b"exif:TIFF/EPStandardID", b"exif:Owner/PetNames123"))
    return path


@needs_exiftool
def test_someones_caption_in_iptc_beside_damaged_exif(tmp_path: Path) -> None:
    """exiv2 calls this Nikon D70's EXIF damaged, and digiKam put a caption in IPTC. It is
    kept unless --overwrite; with it, the caption replaces it in IPTC and goes into XMP, and
    EXIF stays byte for byte as it was (only the XMP and Photoshop segments are written)."""
    photo = copy(tmp_path, "nikon_d70_damaged_exif_iptc_caption.jpg")
    original = photo.read_bytes()
    theirs = "Die Insel Stromboli mit dem Vulkan Stromboli, 1000m hoch"
    assert EmbeddedStore().read(photo) == theirs
    with pytest.raises(CaptionExistsError):
        EmbeddedStore().write(photo, CAPTION)
    assert photo.read_bytes() == original
    tags = exiftool_all(photo)

    result = EmbeddedStore().write(photo, CAPTION, overwrite=True)

    assert (result.store, result.written) == ("embed", True)
    captions = exiftool_captions(photo)
    assert captions == {"Description": CAPTION, "Caption-Abstract": CAPTION}
    assert outside_xmp_and_iptc(photo.read_bytes()) == outside_xmp_and_iptc(original)
    assert others(exiftool_all(photo)) == others(tags)


@needs_exiftool
def test_iptc_under_a_damaged_character_set_marker(tmp_path: Path) -> None:
    """This Nikon E5700's IPTC starts with a damaged character-set marker (exiftool stops
    reading there; exiv2 reads on). Its text is plain ASCII, which reads the same in UTF-8,
    so the caption goes in with UTF-8 declared and every other IPTC field as exiv2 read it."""
    photo = copy(tmp_path, "nikon_e5700_damaged_iptc.jpg")
    original = photo.read_bytes()
    before = exiv2_iptc(photo)

    result = EmbeddedStore().write(photo, CAPTION, overwrite=True)

    assert (result.store, result.written) == ("embed", True)
    captions = exiftool_captions(photo)
    assert set(captions.values()) == {CAPTION} and len(captions) == 3
    assert jpeg_scan(photo.read_bytes()) == jpeg_scan(original)
    after = exiv2_iptc(photo)
    assert after.pop("Iptc.Envelope.CharacterSet") == ["\x1b%G"]
    assert after.pop("Iptc.Application2.Caption") == [CAPTION]
    del before["Iptc.Envelope.CharacterSet"], before["Iptc.Application2.Caption"]
    assert after == before


def exiv2_iptc(photo: Path) -> dict[str, list[str]]:
    image = exiv2.ImageFactory.open(photo.read_bytes())
    image.readMetadata()
    found: dict[str, list[str]] = {}
    for datum in image.iptcData():
        found.setdefault(datum.key(), []).append(datum.toString())
    return found


@needs_exiftool
def test_photoshop_jpeg_whose_exif_exiv2_would_change_gets_the_caption_in_place(
    tmp_path: Path,
) -> None:
    """Photoshop Elements saved this photo with its caption in EXIF, IPTC and XMP and an
    IPTCDigest; exiv2's rewrite would drop Exif.Image.PhotometricInterpretation. With
    --overwrite the new caption replaces the old one where it lies in EXIF (same length of
    file there, every other EXIF byte as it was), in IPTC and XMP, and the digest stays
    current (it was)."""
    photo = copy(tmp_path, "nikon_d1x_photoshop_reagan.jpg")
    original = photo.read_bytes()
    tags = exiftool_all(photo)
    assert (
        tags["Photoshop:IPTCDigest"]
        == exiftool_json(photo, "-CurrentIPTCDigest")["CurrentIPTCDigest"]
    )
    with pytest.raises(CaptionExistsError):
        EmbeddedStore().write(photo, CAPTION)

    result = EmbeddedStore().write(photo, CAPTION, overwrite=True)

    assert (result.store, result.written, result.message) == ("embed", True, "")
    captions = exiftool_captions(photo)
    assert set(captions.values()) == {CAPTION} and len(captions) == 3
    written = photo.read_bytes()
    expected_exif, fits = with_description(original, CAPTION)
    assert fits and outside_xmp_and_iptc(written) == outside_xmp_and_iptc(expected_exif)
    after = exiftool_all(photo)
    assert after["IFD0:PhotometricInterpretation"] == tags["IFD0:PhotometricInterpretation"]
    assert others(after) == others(tags)
    check = exiftool_json(photo, "-a", "-G1", "-Warning", "-CurrentIPTCDigest", "-IPTCDigest")
    assert "Warning" not in str(check), check
    assert check["Photoshop:IPTCDigest"] == check["File:CurrentIPTCDigest"]
    assert jpeg_scan(written) == jpeg_scan(original)


@needs_exiftool
def test_a_longer_caption_than_exif_has_room_for_empties_the_old_one_there(
    tmp_path: Path,
) -> None:
    photo = copy(tmp_path, "nikon_d1x_photoshop_reagan.jpg")
    longer = "A grey aircraft carrier at sea under a pale sky. " * 10

    result = EmbeddedStore().write(photo, longer, overwrite=True)

    assert result.store == "embed" and "EXIF was emptied" in result.message
    captions = exiftool_captions(photo)
    assert captions["Description"] == captions["Caption-Abstract"] == longer.strip()
    assert captions.get("ImageDescription", "") == ""
    assert EmbeddedStore().read(photo) == longer.strip()


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


def test_a_second_caption_replaces_the_first_in_xmp_and_iptc_alone(tmp_path: Path) -> None:
    photo = copy(tmp_path, "nikon_e3200_damaged_preview.jpg")
    EmbeddedStore().write(photo, "first caption")  # XMP and IPTC only: EXIF has none
    before = photo.read_bytes()
    result = EmbeddedStore().write(photo, "second caption", overwrite=True)
    assert result.store == "embed" and EmbeddedStore().read(photo) == "second caption"
    assert outside_xmp_and_iptc(photo.read_bytes()) == outside_xmp_and_iptc(before)


def test_a_failed_rewrite_leaves_the_photo_as_read_for_the_next_way(
    tmp_path: Path, monkeypatch, readers_in_process
) -> None:
    """Regression: exiv2's rewrite changed the image object the next way then read, so that
    way saw the new caption already in EXIF and left the old one there (Reagan: EXIF kept
    the Photoshop caption while XMP got the new one)."""
    photo = copy(tmp_path, "nikon_d1x_photoshop_reagan.jpg")
    EmbeddedStore().write(photo, CAPTION, overwrite=True)
    assert EmbeddedStore().read(photo) == CAPTION
    image = exiv2.ImageFactory.open(photo.read_bytes())
    image.readMetadata()
    assert image.exifData()["Exif.Image.ImageDescription"].toString().rstrip("\x00") == CAPTION


def test_xmp_segment_is_inserted_after_exif_and_replaced_in_place() -> None:
    data = (CAMERAS / "sony_dsc_w7.jpg").read_bytes()
    inserted = with_xmp_packet(data, b"<x/>")
    markers = [(s.marker, s.payload(inserted)[:4]) for s in segments(inserted)]
    exif = markers.index((0xE1, b"Exif"))
    assert markers[exif + 1] == (0xE1, b"http"), "right after JFIF and EXIF, where readers look"
    again = with_xmp_packet(inserted, b"<y/>")
    assert len(again) == len(inserted) and without_xmp(again) == data
