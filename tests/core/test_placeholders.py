"""Camera junk is not a caption, in EXIF, XMP and IPTC alike (issue 27, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.engine import LibraryEngine, LibraryJob
from core.inference import Captioner
from core.storage import EmbeddedStore
from core.storage.placeholders import camera_tokens, is_placeholder
from tests.core.test_storage_support import exiftool_captions, exiv2_write, needs_exiftool, sample

# What cameras and their software wrote where the caption goes, as found in real camera JPEGs.
CAMERA_JUNK = [
    "OLYMPUS DIGITAL CAMERA",
    "OLYMPUS DIGITAL CAMERA         ",
    "KODAK Digital Still Camera",
    "SANYO DIGITAL CAMERA",
    "EPSON DSC picture",
    "Minolta DSC",
    "TRAVELER DIGITAL CAMERA",
    "KODAK Action Cam",
    "SAMSUNG",
    "<KENOX S730  / Samsung S730>",
    "DSC00019",
    "IMG_1234",
    "000015",
    "M2E1L0-0R336B386",
    "Dateiname : DSCN1767.JPG ...",
    "Dateiname : DSCN1767.JPG  Datum : 12.05.2004",
    "DCF 1.0",
    "null",
    "SONY DSC",
    "GE DIGITAL CAMERA",
    "DCIM\\100GOPRO\\GOPR0482.JPG",
    "img_0042.jpg",
    "P1010001",
    "   ",
    "---",
]
REAL_CAPTIONS = [
    "a dog on the beach",
    "Paris2019",
    "Mum",
    "Concord",
    "Still life with apples",
    "Our new Canon camera",
    "2nd birthday",
    "Photo of grandma",
    "Sunset over Lake Constance, 2019",
    "🐈‍⬛ 🐕 🎉",
]


@pytest.mark.parametrize("text", CAMERA_JUNK)
def test_camera_junk_describes_nothing(text: str) -> None:
    assert is_placeholder(text)


@pytest.mark.parametrize("text", REAL_CAPTIONS)
def test_real_captions_are_captions(text: str) -> None:
    assert not is_placeholder(text)


def test_the_cameras_own_make_and_model_describe_nothing() -> None:
    camera = camera_tokens("Rexcam Optics", "RX-9 Pro")
    assert is_placeholder("Rexcam RX-9 Pro", camera)
    assert is_placeholder("RX-9 Pro", camera)
    assert not is_placeholder("Rexcam RX-9 Pro", ())  # unknown maker: not without its tags
    assert not is_placeholder("my dog with the Rexcam", camera)


FIELDS = {
    "EXIF": "Exif_Image_ImageDescription",
    "XMP": "Xmp_dc_description",
    "IPTC": "Iptc_Application2_Caption",
}


@needs_exiftool
@pytest.mark.parametrize("where", FIELDS)
@pytest.mark.parametrize("junk", CAMERA_JUNK[:-1])
def test_junk_in_any_field_is_replaced_without_overwrite(tmp_path: Path, where, junk) -> None:
    """Regression: "SANYO DIGITAL CAMERA", "DSC00019", "DCF 1.0", ... counted as finished
    captions: the app showed a green tick and Caption Folder skipped the photo."""
    photo = sample(tmp_path, "exif_iptc.jpg")
    exiv2_write(photo, **{FIELDS[where]: junk})
    store = EmbeddedStore()
    assert store.read(photo) is None
    store.write(photo, "a cup of coffee on a saucer")  # no overwrite needed
    assert store.read(photo) == "a cup of coffee on a saucer"
    assert set(exiftool_captions(photo).values()) == {"a cup of coffee on a saucer"}


def test_the_cameras_make_and_model_as_description_is_not_a_caption(tmp_path: Path) -> None:
    photo = sample(tmp_path, "plain.jpg")
    exiv2_write(
        photo,
        Exif_Image_Make="Rexcam Optics",
        Exif_Image_Model="RX-9 Pro",
        Exif_Image_ImageDescription="Rexcam RX-9 Pro",
    )
    assert EmbeddedStore().read(photo) is None
    exiv2_write(photo, Exif_Image_ImageDescription="the Rexcam on a tripod")
    assert EmbeddedStore().read(photo) == "the Rexcam on a tripod"


def test_photos_with_camera_junk_are_captioned_by_default(tmp_path: Path, tiny_checkpoint) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    junk = sample(folder, "exif_iptc.jpg", "junk.jpg")
    exiv2_write(junk, Exif_Image_ImageDescription="SANYO DIGITAL CAMERA")
    captioned = sample(folder, "plain.jpg", "captioned.jpg")
    exiv2_write(captioned, Exif_Image_ImageDescription="my cat asleep")
    engine = LibraryEngine(Captioner(tiny_checkpoint, device="cpu"), tmp_path / "index.db")
    summary = engine.run(LibraryJob(roots=(folder,), store="embed", skip_captioned=True))
    assert summary.captioned == 1 and summary.skipped == 1 and summary.failed == 0
    new = EmbeddedStore().read(junk)
    assert new and new != "SANYO DIGITAL CAMERA"
    assert EmbeddedStore().read(captioned) == "my cat asleep"
