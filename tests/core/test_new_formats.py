"""AVIF (Pillow's own decoder) and JPEG XL (pillow-jxl-plugin): listed, decoded, captioned, saved."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image, features

from core.cli import main
from core.images import decode_picture, open_image
from core.library import find_photos
from tests.imagegen import textured_image

FORMATS = [("avif", "AVIF"), ("jxl", "JXL")]


def make(folder: Path, suffix: str, kind: str, size: tuple[int, int] = (200, 150)) -> Path:
    path = folder / f"photo.{suffix}"
    textured_image(*size, seed=4).save(path, kind, quality=80)
    return path


def test_the_decoders_are_there() -> None:
    assert features.check("avif"), "Pillow was built without AVIF"
    import core.images

    assert core.images.JXL_AVAILABLE, "pillow-jxl-plugin is not installed"
    assert Image.registered_extensions()[".jxl"] == "JXL"


@pytest.mark.parametrize(("suffix", "kind"), FORMATS)
def test_listed_and_decoded_here_and_in_a_reader(tmp_path: Path, suffix: str, kind: str) -> None:
    photo = make(tmp_path, suffix, kind)
    assert [p.name for p in find_photos(tmp_path)] == [photo.name]
    here = open_image(photo, None)
    assert here.mode == "RGB" and here.size == (200, 150)
    there = decode_picture(photo, (100, 100))
    assert there.size == (200, 150) and there.tobytes() == open_image(photo, (100, 100)).tobytes()


@pytest.mark.parametrize(("suffix", "kind"), FORMATS)
def test_captioned_to_an_xmp_sidecar_and_the_photo_left_alone(
    capsys, tiny_checkpoint: Path, tmp_path: Path, suffix: str, kind: str
) -> None:
    photo = make(tmp_path, suffix, kind)
    before = hashlib.sha256(photo.read_bytes()).hexdigest()
    code = main(["caption", str(photo), "--weights", str(tiny_checkpoint), "--write", "embed"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(f"{photo}\t")
    sidecar = tmp_path / f"photo.{suffix}.xmp"
    assert "dc:description" in sidecar.read_text()
    assert hashlib.sha256(photo.read_bytes()).hexdigest() == before
