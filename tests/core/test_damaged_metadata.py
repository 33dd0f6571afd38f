"""A photo whose pixels decode always gets a caption when it can go beside it (issue 27, item 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.cli import main
from core.storage import make_store
from tests.core.test_camera_jpegs import CAMERAS, unsalvageable_xmp
from tests.core.test_storage_support import sample


def damaged_folder(tmp_path: Path) -> Path:
    """Camera JPEGs whose metadata exiv2 calls damaged (their pixels decode), and a good one."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("nikon_e3200_damaged_preview.jpg", "nikon_d70.jpg"):
        shutil.copyfile(CAMERAS / name, folder / name)
    unsalvageable_xmp(folder / "nikon_d300s_unreadable_xmp.jpg")  # XMP no toolkit decodes
    broken = sample(folder, "exif_iptc.jpg", "broken_exif.jpg")
    data = bytearray(broken.read_bytes())
    start = data.find(b"Exif\0\0") + 6
    data[start : start + 32] = b"\xff" * 32  # the TIFF header inside APP1: EXIF unreadable
    broken.write_bytes(bytes(data))
    return folder


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("store", ["xmp", "txt"])
def test_damaged_metadata_does_not_stop_captions_going_to_sidecars(
    capsys, tmp_path: Path, tiny_checkpoint: Path, store: str
) -> None:
    folder = damaged_folder(tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, out, err = run(
        capsys, "caption", str(folder), "--write", store, "--weights", str(tiny_checkpoint)
    )
    assert code == 0, err
    assert len(out.splitlines()) == 4 and "failed 0" in err
    for photo in folder.glob("*.jpg"):
        assert make_store(store).read(photo), photo.name
        assert photo.read_bytes() == before[photo.name]
    # Caption Folder with skip_captioned reads every store: the damaged ones do not block it.
    code, out, err = run(
        capsys, "caption", str(folder), "--write", store, "--skip-captioned",
        "--weights", str(tiny_checkpoint),
    )  # fmt: skip
    assert code == 0 and "failed 0" in err


def test_embedding_counts_what_went_inside_and_what_beside(
    capsys, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """Regression (issue 27, item 1): a refused embed left the caption only as a line on
    stderr; now it goes to an XMP sidecar and the summary counts it."""
    folder = damaged_folder(tmp_path)
    code, out, err = run(
        capsys, "caption", str(folder), "--write", "embed", "--weights", str(tiny_checkpoint)
    )
    assert code == 0, err
    assert "captioned 4" in err and "failed 0" in err
    assert "saved 2 inside the photos, 2 in XMP sidecars" in err
    for name in ("nikon_d300s_unreadable_xmp.jpg", "broken_exif.jpg"):
        assert make_store("xmp").read(folder / name)
    for name in ("nikon_e3200_damaged_preview.jpg", "nikon_d70.jpg"):
        assert make_store("embed").read(folder / name)
    # Run again: nothing is captioned twice, whichever store holds the caption.
    code, out, err = run(
        capsys, "caption", str(folder), "--write", "embed", "--weights", str(tiny_checkpoint)
    )
    assert code == 0 and "captioned 0" in err and "skipped 4" in err
