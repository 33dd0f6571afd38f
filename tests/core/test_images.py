"""Opening photos: formats, modes, EXIF orientation, reduced-scale JPEG decoding, bad files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import ImageError
from core.images import load_for_model, normalize_batch, open_image, to_model_input
from tests.conftest import DATA
from tests.imagegen import textured_image


@pytest.mark.parametrize(
    "fmt, ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif"), ("BMP", "bmp")]
)
def test_common_formats_open_as_rgb(tmp_path: Path, fmt: str, ext: str) -> None:
    path = tmp_path / f"p.{ext}"
    textured_image(120, 80).save(path, format=fmt)
    img = open_image(path)
    assert img.mode == "RGB" and img.size == (120, 80)


def test_gif_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    img = open_image(path)
    r, g, b = img.getpixel((20, 15))
    assert r > 200 and b < 50, "expected the first (red) frame"


def test_heic_opens() -> None:
    img = open_image(DATA / "astronaut.heic")
    assert img.mode == "RGB" and img.size == (128, 128)


@pytest.mark.parametrize(
    "make",
    [
        lambda: textured_image(40, 30).convert("P"),
        lambda: textured_image(40, 30).convert("L"),
        lambda: textured_image(40, 30).convert("1"),
        lambda: textured_image(40, 30).convert("CMYK"),
        lambda: Image.fromarray(np.full((30, 40), 40000, dtype=np.uint16)),
    ],
    ids=["palette", "grayscale", "bilevel", "cmyk", "16-bit"],
)
def test_modes_become_8bit_rgb(tmp_path: Path, make) -> None:
    img = make()
    path = tmp_path / ("p.tif" if img.mode == "CMYK" else "p.png")
    img.save(path)
    out = open_image(path)
    assert out.mode == "RGB" and out.size == (40, 30)


def test_16bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((10, 10), 32768, dtype=np.uint16)).save(path)
    value = open_image(path).getpixel((5, 5))[0]
    assert 120 <= value <= 135  # half of full scale, not 255


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_composited_on_white(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "t.png"
    Image.new(mode, (20, 20), (0, 0, 0, 0) if mode == "RGBA" else (0, 0)).save(path)
    assert open_image(path).getpixel((10, 10)) == (255, 255, 255)


def test_palette_transparency_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "t.gif"
    img = Image.new("P", (10, 10), 0)
    img.putpalette([0, 0, 0] * 256)
    img.save(path, transparency=0)
    assert open_image(path).getpixel((5, 5)) == (255, 255, 255)


def _reference() -> Image.Image:
    """60x40, four differently coloured quadrants: any rotation or mirror is visible."""
    arr = np.zeros((40, 60, 3), dtype=np.uint8)
    arr[:20, :30] = (255, 0, 0)
    arr[:20, 30:] = (0, 255, 0)
    arr[20:, :30] = (0, 0, 255)
    arr[20:, 30:] = (255, 255, 0)
    return Image.fromarray(arr)


# What a camera stores for each EXIF orientation, given the upright picture (EXIF 2.3, 4.6.4).
_STORED = {
    1: lambda im: im,
    2: lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    3: lambda im: im.transpose(Image.Transpose.ROTATE_180),
    4: lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    5: lambda im: im.transpose(Image.Transpose.TRANSPOSE),
    6: lambda im: im.transpose(Image.Transpose.ROTATE_90),
    7: lambda im: im.transpose(Image.Transpose.TRANSVERSE),
    8: lambda im: im.transpose(Image.Transpose.ROTATE_270),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(tmp_path: Path, orientation: int) -> None:
    ref = _reference()
    stored = _STORED[orientation](ref)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    out = open_image(path)
    assert out.size == ref.size
    got = np.asarray(out, dtype=np.int16)
    want = np.asarray(ref, dtype=np.int16)
    for ys, xs in ((slice(5, 15), slice(5, 25)), (slice(25, 35), slice(35, 55))):
        assert np.abs(got[ys, xs].mean((0, 1)) - want[ys, xs].mean((0, 1))).max() < 30


def test_large_jpeg_decoded_at_reduced_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    textured_image(4000, 3000).save(path, quality=85)
    img = open_image(path)
    assert img.size == (500, 375)  # 1/8 scale via draft mode, still >= 224 on both sides
    full = open_image(path, draft_size=None)
    assert full.size == (4000, 3000)


def test_model_input_squashes_whole_frame(tmp_path: Path) -> None:
    img = Image.new("RGB", (300, 100), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 30, 100))  # a blue strip at the far left must survive
    t = to_model_input(img)
    assert t.shape == (3, 224, 224) and t.dtype == torch.uint8
    assert t[2, 112, 5] > 200 and t[0, 112, 5] < 50


def test_normalize_batch_matches_imagenet_stats() -> None:
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    y = normalize_batch(x)
    torch.testing.assert_close(
        y[0, :, 0, 0], torch.tensor([2.2489, 2.4286, 2.6400]), atol=1e-3, rtol=0
    )


def test_load_for_model(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    textured_image(64, 48).save(path)
    assert load_for_model(path).shape == (3, 224, 224)


# ---------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found"):
        open_image(tmp_path / "gone.jpg")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty") as info:
        open_image(path)
    assert "empty.jpg" in str(info.value)


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list: milk, eggs")
    with pytest.raises(ImageError, match="not an image"):
        open_image(path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    textured_image(400, 300).save(good, quality=90)
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageError, match="damaged or truncated") as info:
        open_image(bad)
    assert "cut.jpg" in str(info.value)


def test_corrupt_png(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    textured_image(100, 100).save(good)
    data = bytearray(good.read_bytes())
    data[200:260] = b"\x00" * 60
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageError) as info:
        open_image(bad)
    assert "bad.png" in str(info.value)


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(40000, 40000))
    with pytest.raises(ImageError, match="too large") as info:
        open_image(path)
    assert "bomb.png" in str(info.value)
