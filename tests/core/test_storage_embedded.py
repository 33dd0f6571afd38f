"""Embedded captions: read back by exiftool, pixels and other metadata untouched, refusals safe."""

from __future__ import annotations

import os
import stat
import struct
import subprocess
from pathlib import Path

import exiv2
import pytest

from core.errors import (
    CaptionExistsError,
    FileChangedError,
    FileMissingError,
    InvalidCaptionError,
    ReadOnlyError,
    StorageError,
    UnsupportedFormatError,
)
from core.storage import EmbeddedStore, FileIdentity, make_store
from core.storage.metadata import IPTC_MAX_BYTES
from tests.core.test_storage_support import (
    DATA,
    EMBEDDABLE,
    EXIFTOOL,
    TRICKY,
    exiftool_all,
    exiftool_captions,
    exiv2_write,
    image_data,
    needs_exiftool,
    sample,
    temp_files,
)

CAPTION_TAGS = {
    "XMP-dc:Description",
    "IFD0:ImageDescription",
    "IPTC:Caption-Abstract",
    "IPTC:CodedCharacterSet",
    "XMP-x:XMPToolkit",
    "RIFF:WebP_Flags",  # the VP8X header a WebP needs once it carries metadata
    "IFD0:StripOffsets",  # TIFF strips may move; their bytes are compared by image_data()
}


@pytest.fixture(autouse=True)
def no_temp_files_left(tmp_path: Path):
    yield
    assert temp_files(tmp_path) == []


# --- round trips ---------------------------------------------------------------------------


@needs_exiftool
@pytest.mark.parametrize("name", EMBEDDABLE)
def test_round_trip_read_by_exiftool_with_pixels_and_other_metadata_unchanged(
    tmp_path: Path, name: str
) -> None:
    photo = sample(tmp_path, name)
    pixels = image_data(photo)
    tags_before = exiftool_all(photo)

    result = make_store("embed").write(photo, TRICKY, expected=FileIdentity.of(photo))

    assert (result.photo, result.store, result.path, result.written) == (
        photo,
        "embed",
        photo,
        True,
    )
    assert result.photo_identity == FileIdentity.of(photo)
    assert EmbeddedStore().read(photo) == TRICKY
    expected = {"Description": TRICKY, "ImageDescription": TRICKY}
    if name == "exif_iptc.jpg":  # the only sample that already carries IPTC
        expected["Caption-Abstract"] = TRICKY
    assert exiftool_captions(photo) == expected
    assert image_data(photo) == pixels
    tags_after = exiftool_all(photo)
    unchanged_before = {k: v for k, v in tags_before.items() if k not in CAPTION_TAGS}
    unchanged_after = {k: v for k, v in tags_after.items() if k not in CAPTION_TAGS}
    assert unchanged_after == unchanged_before


@needs_exiftool
def test_exif_iptc_sample_keeps_orientation_camera_keywords_rating_and_declares_utf8(
    tmp_path: Path,
) -> None:
    photo = sample(tmp_path, "exif_iptc.jpg")
    make_store("embed").write(photo, "Ein Café in Zürich 咖啡")
    tags = exiftool_all(photo)
    assert tags["IFD0:Orientation"] == 6
    assert tags["IFD0:Model"] == "Sample Camera 1"
    assert tags["IFD0:Make"] == "PhotoScribe Test"
    assert tags["ExifIFD:DateTimeOriginal"] == "2024:05:01 12:00:00"
    assert tags["IPTC:Keywords"] == ["coffee", "cup"]
    assert tags["IPTC:City"] == "Seattle"
    assert tags["IPTC:By-line"] == "Rachel Michetti"
    assert tags["IPTC:CodedCharacterSet"] == "\x1b%G"
    assert tags["XMP-xmp:Rating"] == 4
    assert tags["XMP-dc:Subject"] == ["coffee", "cup"]
    assert tags["IPTC:Caption-Abstract"] == "Ein Café in Zürich 咖啡"


@needs_exiftool
def test_latin1_iptc_is_converted_to_utf8_so_nothing_turns_into_mojibake(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    subprocess.run(
        [EXIFTOOL, "-q", "-overwrite_original", "-charset", "iptc=Latin"]
        + ["-IPTC:By-line=Jürgen Müller", "-IPTC:City=Köln", str(photo)],
        check=True,
    )
    result = make_store("embed").write(photo, "Der Dom in Köln")
    assert "UTF-8" in result.message
    tags = exiftool_all(photo)
    assert tags["IPTC:CodedCharacterSet"] == "\x1b%G"
    assert tags["IPTC:By-line"] == "Jürgen Müller"
    assert tags["IPTC:City"] == "Köln"
    assert tags["IPTC:Caption-Abstract"] == "Der Dom in Köln"


def test_mwg_read_order_exif_then_xmp_then_iptc(tmp_path: Path) -> None:
    photo = sample(tmp_path, "exif_iptc.jpg")
    store = EmbeddedStore()
    exiv2_write(photo, Iptc_Application2_Caption="from iptc")
    assert store.read(photo) == "from iptc"
    exiv2_write(photo, Xmp_dc_description="from xmp")
    assert store.read(photo) == "from xmp"
    exiv2_write(photo, Exif_Image_ImageDescription="from exif")
    assert store.read(photo) == "from exif"


def test_camera_placeholder_description_is_not_a_caption(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    exiv2_write(photo, Exif_Image_ImageDescription="OLYMPUS DIGITAL CAMERA         ")
    store = EmbeddedStore()
    assert store.read(photo) is None
    store.write(photo, "a grey cat")  # not an existing caption, so no overwrite needed
    assert store.read(photo) == "a grey cat"


# --- overwrite policy and identity ------------------------------------------------------------


def test_existing_caption_is_kept_unless_overwrite(tmp_path: Path) -> None:
    photo = sample(tmp_path, "exif_iptc.jpg")
    store = EmbeddedStore()
    store.write(photo, "first")
    before = photo.read_bytes()
    with pytest.raises(CaptionExistsError) as caught:
        store.write(photo, "second")
    assert caught.value.path == photo
    assert photo.read_bytes() == before
    store.write(photo, "second", overwrite=True)
    assert store.read(photo) == "second"


def test_same_caption_again_writes_nothing(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    store = EmbeddedStore()
    store.write(photo, "a cat")
    identity = FileIdentity.of(photo)
    result = store.write(photo, "a cat")
    assert result.written is False
    assert FileIdentity.of(photo) == identity


def test_photo_changed_since_it_was_read_is_not_written(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    identity = FileIdentity.of(photo)
    os.utime(photo, ns=(identity.mtime_ns + 5_000_000_000, identity.mtime_ns + 5_000_000_000))
    before = photo.read_bytes()
    with pytest.raises(FileChangedError):
        make_store("embed").write(photo, "a cat", expected=identity)
    assert photo.read_bytes() == before


def test_photo_changed_during_the_write_is_not_replaced(tmp_path: Path, monkeypatch) -> None:
    photo = sample(tmp_path, "plain.jpg")
    store = EmbeddedStore()
    real_embed = EmbeddedStore._embed

    def embed_while_another_program_saves(self, path, data, *args):
        result = real_embed(self, path, data, *args)
        photo.write_bytes(data + b"edited elsewhere")
        return result

    monkeypatch.setattr(EmbeddedStore, "_embed", embed_while_another_program_saves)
    with pytest.raises(FileChangedError):
        store.write(photo, "a cat")
    assert photo.read_bytes().endswith(b"edited elsewhere")


def test_chained_writes_use_the_returned_identity(tmp_path: Path) -> None:
    photo = sample(tmp_path, "rocket.webp")
    store = EmbeddedStore()
    first = store.write(photo, "a rocket", expected=FileIdentity.of(photo))
    second = store.write(photo, "a launch", expected=first.photo_identity, overwrite=True)
    assert second.written and store.read(photo) == "a launch"


# --- atomicity ------------------------------------------------------------------------------


def test_permissions_are_kept(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    photo.chmod(0o640)
    make_store("embed").write(photo, "a cat")
    assert stat.S_IMODE(photo.stat().st_mode) == 0o640


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_full_disk_leaves_the_photo_byte_identical(tmp_path: Path, monkeypatch, failing) -> None:
    import core.storage.files as files

    photo = sample(tmp_path, "exif_iptc.jpg")
    before = photo.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, failing, no_space)
    with pytest.raises(StorageError) as caught:
        make_store("embed").write(photo, "a cup of coffee")
    assert caught.value.path == photo
    assert "disk is full" in caught.value.problem
    assert photo.read_bytes() == before


def test_write_goes_through_a_symlink_and_keeps_it(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    link = tmp_path / "link.jpg"
    link.symlink_to(photo)
    make_store("embed").write(link, "a cat")
    assert link.is_symlink()
    assert EmbeddedStore().read(photo) == "a cat"


# --- fallback to a sidecar -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "as_name", "xmp_name", "sidecar"),
    [
        ("astronaut.heic", "astronaut.heic", "photo.jpg.xmp", "astronaut.heic.xmp"),
        ("astronaut.heic", "astronaut.heic", "photo.xmp", "astronaut.xmp"),
        ("plain.jpg", "IMG_0001.CR2", "photo.jpg.xmp", "IMG_0001.CR2.xmp"),
    ],
)
def test_heic_and_raw_fall_back_to_an_xmp_sidecar(
    tmp_path: Path, name: str, as_name: str, xmp_name, sidecar: str
) -> None:
    photo = sample(tmp_path, name, as_name)
    before = photo.read_bytes()
    store = make_store("embed", xmp_name)
    result = store.write(photo, TRICKY)
    assert result.store == "xmp"
    assert result.path == tmp_path / sidecar
    assert "sidecar" in result.message and sidecar in result.message
    assert photo.read_bytes() == before
    assert store.read(photo) == TRICKY
    if EXIFTOOL:
        assert exiftool_captions(result.path) == {"Description": TRICKY}


def test_fallback_respects_a_caption_already_inside_the_raw(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg", "IMG_0002.NEF")
    exiv2_write(photo, Exif_Image_ImageDescription="from the camera app")
    store = make_store("embed")
    with pytest.raises(CaptionExistsError):
        store.write(photo, "a cat")
    assert not (tmp_path / "IMG_0002.NEF.xmp").exists()


# --- bad input -------------------------------------------------------------------------------


def test_read_only_photo_is_left_alone(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    before = photo.read_bytes()
    photo.chmod(0o444)
    with pytest.raises(ReadOnlyError) as caught:
        make_store("embed").write(photo, "a cat")
    assert caught.value.path == photo
    assert "read-only" in caught.value.problem
    assert photo.read_bytes() == before
    assert stat.S_IMODE(photo.stat().st_mode) == 0o444


def test_read_only_folder_reports_it(tmp_path: Path, monkeypatch) -> None:
    import core.storage.files as files

    photo = sample(tmp_path, "plain.jpg")
    before = photo.read_bytes()

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # Root ignores folder permissions, so refuse the temporary file the way a real one would.
    monkeypatch.setattr(files.tempfile, "mkstemp", denied)
    with pytest.raises(ReadOnlyError) as caught:
        make_store("embed").write(photo, "a cat")
    assert caught.value.path == tmp_path
    assert photo.read_bytes() == before


def test_vanished_photo(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    identity = FileIdentity.of(photo)
    photo.unlink()
    with pytest.raises(FileMissingError):
        make_store("embed").write(photo, "a cat", expected=identity)
    with pytest.raises(FileMissingError):
        make_store("embed").read(photo)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("as_name", "content", "says"),
    [
        ("notes.jpg", b"this is not a photo at all\n", "not an image (it looks like text)"),
        ("empty.png", b"", "the file is empty (0 bytes)"),
        ("notes.txt", b"hello", "only stores captions for photos"),
        ("report.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "not an image (it looks like a PDF"),
        ("odd.jpg", bytes(range(256)), "not a photo format PhotoScribe can read metadata from"),
    ],
)
def test_unsupported_files_say_what_is_wrong(
    tmp_path: Path, as_name: str, content: bytes, says: str
) -> None:
    """A regression guard: an empty file and a text file were both "not a photo format
    PhotoScribe can read metadata from (or it is empty)"."""
    photo = tmp_path / as_name
    photo.write_bytes(content)
    with pytest.raises(UnsupportedFormatError) as caught:
        make_store("embed").write(photo, "a cat")
    assert caught.value.path == photo
    assert says in str(caught.value)
    assert photo.read_bytes() == content


def test_content_that_exiv2_cannot_write_is_refused(tmp_path: Path) -> None:
    photo = tmp_path / "really_a.jpg"
    photo.write_bytes((DATA / "astronaut.heic").read_bytes())
    with pytest.raises(UnsupportedFormatError):
        make_store("embed").write(photo, "a cat")


def test_damaged_exif_is_left_untouched_and_the_caption_goes_beside(tmp_path: Path) -> None:
    photo = sample(tmp_path, "exif_iptc.jpg")
    data = bytearray(photo.read_bytes())
    start = data.find(b"Exif\0\0") + 6
    data[start : start + 32] = b"\xff" * 32  # the TIFF header inside APP1
    photo.write_bytes(bytes(data))
    result = make_store("embed").write(photo, "a cat")  # issue 27: beside it, not lost
    assert result.store == "xmp" and "damaged" in result.message
    assert make_store("xmp").read(photo) == "a cat"
    assert photo.read_bytes() == bytes(data)


def test_damaged_xmp_is_not_replaced_and_the_caption_goes_beside(tmp_path: Path) -> None:
    photo = sample(tmp_path, "exif_iptc.jpg")
    data = bytearray(photo.read_bytes())
    start = data.find(b"<rdf:RDF")
    data[start : start + 8] = b"<<<<<<<<"
    photo.write_bytes(bytes(data))
    result = make_store("embed").write(photo, "a cat")
    assert result.store == "xmp" and "XMP sidecar" in result.message
    assert photo.read_bytes() == bytes(data)


@needs_exiftool
def test_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9-latin1.jpg")  # Latin-1 bytes: not valid UTF-8
    try:
        photo = sample(tmp_path, "plain.jpg", name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system only allows UTF-8 names")
    result = make_store("embed").write(photo, TRICKY)
    assert result.path == photo
    assert EmbeddedStore().read(photo) == TRICKY
    assert exiftool_captions(photo)["Description"] == TRICKY


@pytest.mark.parametrize(
    "caption",
    [
        "line one\nline two",
        'say "cheese" & <smile>',
        "🐈‍⬛ 🐕 🎉",
        "一只猫坐在垫子上",
        "חתול יושב על שטיח",
        "x" * 5000,
    ],
)
def test_hard_captions_round_trip(tmp_path: Path, caption: str) -> None:
    photo = sample(tmp_path, "plain.jpg")
    make_store("embed").write(photo, caption)
    assert EmbeddedStore().read(photo) == caption
    if EXIFTOOL:
        assert set(exiftool_captions(photo).values()) == {caption}


@pytest.mark.parametrize(
    ("caption", "says"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("bell\x07", "U+0007"),
        ("nul\x00inside", "U+0000"),
        ("x" * 5001, "5001 characters"),
    ],
)
def test_captions_that_cannot_be_stored(tmp_path: Path, caption: str, says: str) -> None:
    photo = sample(tmp_path, "plain.jpg")
    before = photo.read_bytes()
    with pytest.raises(InvalidCaptionError) as caught:
        make_store("embed").write(photo, caption)
    assert says in caught.value.problem
    assert photo.read_bytes() == before


def test_iptc_caption_limit_only_where_iptc_exists(tmp_path: Path) -> None:
    caption = "猫" * (IPTC_MAX_BYTES // 3 + 1)  # 2001 bytes in UTF-8
    with_iptc = sample(tmp_path, "exif_iptc.jpg")
    before = with_iptc.read_bytes()
    with pytest.raises(InvalidCaptionError) as caught:
        make_store("embed").write(with_iptc, caption)
    assert "IPTC" in caught.value.problem
    assert with_iptc.read_bytes() == before
    without_iptc = sample(tmp_path, "plain.jpg")
    make_store("embed").write(without_iptc, caption)
    assert EmbeddedStore().read(without_iptc) == caption


def test_windows_line_ends_are_stored_as_line_feeds(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    make_store("embed").write(photo, "one\r\ntwo\rthree")
    assert EmbeddedStore().read(photo) == "one\ntwo\nthree"


def _jpeg_with_unsorted_exif(path: Path) -> None:
    """plain.jpg plus an APP1 whose IFD0 lists Orientation before Make (out of tag order)."""
    make = b"Unsorted Cam\x00"
    entries = [
        struct.pack("<HHII", 0x0112, 3, 1, 6),  # Orientation = 6 (SHORT, in the value field)
        struct.pack("<HHII", 0x010F, 2, len(make), 8 + 2 + 2 * 12 + 4),  # Make, ASCII
    ]
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + b"".join(entries)
    tiff += struct.pack("<I", 0) + make
    app1 = b"Exif\x00\x00" + tiff
    data = (DATA / "plain.jpg").read_bytes()
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])


def test_exif_in_unusual_tag_order_is_not_mistaken_for_a_change(tmp_path: Path) -> None:
    # Regression: exiv2 sorts EXIF tags on writing, which the safety check took for a change
    # to other metadata and refused (seen on macOS screenshots).
    photo = tmp_path / "unsorted.jpg"
    _jpeg_with_unsorted_exif(photo)
    make_store("embed").write(photo, "a cat")
    assert EmbeddedStore().read(photo) == "a cat"
    image = exiv2.ImageFactory.open(photo.read_bytes())
    image.readMetadata()
    assert image.exifData()["Exif.Image.Make"].toString() == "Unsorted Cam"
    assert image.exifData()["Exif.Image.Orientation"].toInt64() == 6
