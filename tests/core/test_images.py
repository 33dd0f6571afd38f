"""Opening photos: formats, modes, EXIF orientation, reduced-scale JPEG decoding, HEIC
thumbnails, RAW previews, batched JPEG decoding on the device, bad files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.datatypes import DEFAULT_WEIGHTS, CaptionSettings
from core.errors import ImageError
from core.images import (
    EncodedJpeg,
    RawPreview,
    gpu_decodable_jpeg,
    heif_thumbnail,
    load_for_model,
    normalize_batch,
    open_image,
    preview_order,
    raw_previews,
    read_for_device,
    same_shape,
    stack_on_device,
    to_model_input,
)
from core.inference import Captioner
from tests.conftest import DATA, requires_torchvision
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
    with pytest.raises(ImageError, match=r"not an image \(it looks like text\)"):
        open_image(path)
    path.write_bytes(b"<!DOCTYPE html><html><body>a saved web page</body></html>")
    with pytest.raises(ImageError, match=r"not an image \(it looks like a web page\)"):
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


# ---------------------------------------------------------------- HEIC thumbnails (phone files)

# name, the embedded thumbnail's size (upright), the full image's size (upright)
PHONE_HEICS_WITH_THUMBNAIL = [
    ("iphonexr_thumbnail.heic", (240, 320), (3024, 4032)),  # stored sideways, turned by irot
    ("galaxy_s25_thumbnail.heic", (512, 236), (4000, 1848)),  # 236.5 would be exact: rounded
]


@pytest.mark.parametrize("name, thumb_size, full_size", PHONE_HEICS_WITH_THUMBNAIL)
def test_heic_with_thumbnail_is_captioned_from_it(name, thumb_size, full_size) -> None:
    img = open_image(DATA / name)  # the model's draft size, 224
    assert img.mode == "RGB" and img.size == thumb_size, "the thumbnail path was not taken"
    assert open_image(DATA / name, draft_size=None).size == full_size


def test_heic_thumbnail_smaller_than_needed_is_not_used() -> None:
    # The iPhone's thumbnail is 240 pixels on its short side: not enough for 256.
    assert heif_thumbnail(DATA / "iphonexr_thumbnail.heic", (256, 256)) is None
    assert open_image(DATA / "iphonexr_thumbnail.heic", (256, 256)).size == (3024, 4032)


def test_heic_without_thumbnail_decodes_in_full() -> None:
    path = DATA / "xiaomi_no_thumbnail.heic"
    assert heif_thumbnail(path, (224, 224)) is None
    img = open_image(path)
    assert img.mode == "RGB" and img.size == (2592, 1944)


@pytest.mark.parametrize(
    "thumb, main, same",
    [
        ((320, 240), (4032, 3024), True),
        ((240, 320), (3024, 4032), True),
        ((512, 236), (4000, 1848), True),  # within a pixel of rounding
        ((320, 180), (4032, 3024), False),  # a 16:9 crop of a 4:3 photo
        ((240, 320), (4032, 3024), False),  # turned differently from the main image
        ((512, 230), (4000, 1848), False),
    ],
)
def test_thumbnail_must_have_the_main_image_shape(thumb, main, same) -> None:
    assert same_shape(thumb, main) is same


def test_damaged_heic_container_falls_back_to_pillow_and_reports(tmp_path: Path) -> None:
    data = bytearray((DATA / "iphonexr_thumbnail.heic").read_bytes())
    meta_at = bytes(data).index(b"meta") - 4
    struct.pack_into(">I", data, meta_at, 0xFFFFFF)  # the meta box claims to run past the file
    path = tmp_path / "broken.heic"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as info:
        open_image(path)
    assert "broken.heic" in str(info.value)


def test_undecodable_thumbnail_falls_back_to_full_decode(monkeypatch) -> None:
    import pi_heif

    def broken(self):
        raise RuntimeError("Invalid input: Corrupted image data")

    monkeypatch.setattr(pi_heif.HeifImage, "to_pillow", broken)
    assert open_image(DATA / "galaxy_s25_thumbnail.heic").size == (4000, 1848)


needs_shipped_model = pytest.mark.skipif(
    not DEFAULT_WEIGHTS.is_file(), reason="the shipped caption model is not in this checkout"
)


def _nll(captioner: Captioner, memory: torch.Tensor, caption: str) -> float:
    """Mean negative log-likelihood per token of ``caption`` given one photo's memory."""
    ids = torch.tensor([captioner.vocab.encode(caption)])  # (1, T)
    with torch.inference_mode():
        logits = captioner.model.decode(ids[:, :-1], memory)  # (1, T-1, V)
        return F.cross_entropy(logits[0].float(), ids[0, 1:]).item()


@needs_shipped_model
def test_captions_from_thumbnail_and_full_image_agree() -> None:
    """The thumbnail shows the model the same photo: close pixels, close encodings, and each
    caption is nearly as likely on the other image as that image's own caption."""
    captioner = Captioner(device="cpu")
    settings = CaptionSettings(beam_size=3)
    seen = {}
    for name, _, _ in PHONE_HEICS_WITH_THUMBNAIL:
        thumb = to_model_input(open_image(DATA / name))
        full = to_model_input(open_image(DATA / name, draft_size=None))
        assert (thumb.float() - full.float()).abs().mean() < 8  # of 255
        batch = torch.stack([thumb, full])
        memory = captioner.encode(batch)  # (2, 49, C)
        (c_thumb, *_), (c_full, *_) = captioner.caption_tensors(batch, settings)
        seen[name] = memory
        m_thumb, m_full = memory[:1], memory[1:]
        on_thumb = _nll(captioner, m_thumb, c_full.caption) - _nll(
            captioner, m_thumb, c_thumb.caption
        )
        on_full = _nll(captioner, m_full, c_thumb.caption) - _nll(captioner, m_full, c_full.caption)
        assert on_thumb < 0.4 and on_full < 0.4, (name, c_thumb.caption, c_full.caption)
    (a, ma), (b, mb) = seen.items()
    same_a = F.cosine_similarity(ma[0].flatten(), ma[1].flatten(), dim=0)
    same_b = F.cosine_similarity(mb[0].flatten(), mb[1].flatten(), dim=0)
    across = F.cosine_similarity(ma[0].flatten(), mb[1].flatten(), dim=0)
    assert same_a > 0.85 and same_b > 0.85 and across < 0.6, (a, b, same_a, same_b, across)


# ---------------------------------------------------------------- RAW previews (real camera files)

# name, EXIF orientation, size at the model's draft size, size in full
RAWS = [
    ("canon_eos_r6.cr3", 1, (405, 270), (1620, 1080)),  # 1620x1080 preview, JPEG draft 1/4
    ("nikon_d70s.nef", 1, (425, 640), (425, 640)),  # 640x425 preview (160x106 is too small)
    ("sony_zv-e10.arw", 6, (120, 160), (120, 160)),  # only a 160x120 preview: the largest
    ("leica_m10.dng", 6, (120, 160), (120, 160)),  # its larger previews are cut off
    ("fujifilm_s5pro.raf", 1, (160, 120), (160, 120)),  # 8x8 placeholder skipped
]


@pytest.mark.parametrize("name, orientation, draft, full", RAWS)
def test_raw_captioned_from_embedded_preview(name, orientation, draft, full) -> None:
    found, previews = raw_previews(DATA / name)
    assert found == orientation and previews
    img = open_image(DATA / name)
    assert img.mode == "RGB" and img.size == draft
    assert open_image(DATA / name, draft_size=None).size == full


def test_raw_chooses_smallest_preview_that_covers_the_model_input() -> None:
    _, previews = raw_previews(DATA / "canon_eos_r6.cr3")
    sizes = [(p.width, p.height) for p in previews]
    assert sizes == [(160, 120), (1620, 1080)]
    assert preview_order(previews, (224, 224)) == [1, 0]  # 1620x1080 first, 160x120 if it fails


def _preview(w: int, h: int) -> RawPreview:
    return RawPreview(w, h, "image/jpeg", b"")


@pytest.mark.parametrize(
    "sizes, draft, order",
    [
        ([(160, 120), (1616, 1080), (6000, 4000)], (224, 224), [1, 2, 0]),  # smallest covering
        ([(6000, 4000), (160, 120), (1616, 1080)], (224, 224), [2, 0, 1]),
        ([(160, 120), (200, 150)], (224, 224), [1, 0]),  # none covers: largest first
        ([(160, 120), (8, 8)], (224, 224), [0]),  # a placeholder is never used
        ([(160, 120), (1616, 1080)], None, [1, 0]),  # full size wanted: largest first
        ([(0, 0), (1616, 1080)], (224, 224), [1, 0]),  # unknown size: last
    ],
)
def test_preview_order(sizes, draft, order) -> None:
    assert preview_order([_preview(w, h) for w, h in sizes], draft) == order


@pytest.mark.parametrize("name", ["sony_zv-e10.arw", "leica_m10.dng"])
def test_raw_preview_turned_by_the_raw_files_orientation(name: str) -> None:
    orientation, previews = raw_previews(DATA / name)
    assert orientation == 6  # stored sideways: a quarter turn clockwise shows it upright
    stored = Image.open(io.BytesIO(previews[0].data)).convert("RGB")
    assert stored.size == (160, 120)
    want = np.asarray(stored.transpose(Image.Transpose.ROTATE_270))
    assert np.array_equal(np.asarray(open_image(DATA / name)), want)


@pytest.mark.parametrize("name", ["canon_350d_no_preview.cr2", "iphone12pro_no_preview.dng"])
def test_raw_without_usable_preview_is_a_clear_error(name: str) -> None:
    with pytest.raises(ImageError, match="no embedded preview") as info:
        open_image(DATA / name)
    assert name in str(info.value)


def test_raw_preview_that_is_not_an_image_is_worded_for_a_person(monkeypatch, tmp_path) -> None:
    """Issue 22 (8): Pillow's "cannot identify image file <_io.BytesIO object at 0x...>" named a
    Python object, not the problem."""
    import core.images as images

    path = tmp_path / "garbled.nef"
    path.write_bytes(b"II*\0" + bytes(64))
    preview = RawPreview(1616, 1080, "image/jpeg", b"\xff\xd8\xff" + bytes(100))
    monkeypatch.setattr(images, "raw_previews", lambda _path: (1, [preview]))
    with pytest.raises(ImageError) as info:
        open_image(path)
    message = str(info.value)
    assert "garbled.nef" in message and "BytesIO" not in message and "0x" not in message
    assert "1616x1080 image/jpeg preview: its data is not an image" in message


def test_file_with_raw_extension_that_is_not_raw(tmp_path: Path) -> None:
    path = tmp_path / "holiday.nef"
    path.write_text("not a photo at all")
    with pytest.raises(ImageError, match="cannot be read") as info:
        open_image(path)
    assert "holiday.nef" in str(info.value)


def test_raw_file_exiv2_cannot_read_is_a_clear_error(tmp_path: Path) -> None:
    """A regression guard: exiv2's error kept the file's memory map open, so closing it raised
    BufferError ("cannot close exported pointers exist") instead of the readable error."""
    path = tmp_path / "cut.cr3"
    data = (DATA / "canon_eos_r6.cr3").read_bytes()
    path.write_bytes(data[: len(data) // 50])
    with pytest.raises(ImageError, match="this RAW file cannot be read") as info:
        open_image(path)
    assert "cut.cr3" in str(info.value)


def test_batch_with_raw_and_heic_goes_on_past_a_bad_raw(tmp_path: Path, tiny_checkpoint) -> None:
    captioner = Captioner(tiny_checkpoint, device="cpu")
    paths = [
        DATA / "canon_eos_r6.cr3",
        DATA / "canon_350d_no_preview.cr2",
        DATA / "iphonexr_thumbnail.heic",
        DATA / "nikon_d70s.nef",
    ]
    results = list(captioner.caption_paths(paths, CaptionSettings(beam_size=1, batch_size=2)))
    by_path = {r.path: r for r in results}
    assert set(by_path) == set(paths)
    bad = by_path[DATA / "canon_350d_no_preview.cr2"]
    assert not bad.ok and "canon_350d_no_preview.cr2" in bad.error
    assert all(by_path[p].ok for p in paths if p != bad.path)


# ---------------------------------------------------------------- JPEG decoding on the device
# Run here on the CPU (the same torchvision call, without nvJPEG); tests/benchmarks/gpu_check.py
# runs the suite with --device cuda where there is a GPU.


def test_read_for_device_decodes_on_the_worker_unless_cuda(photo_dir: Path) -> None:
    path = sorted(photo_dir.glob("*.jpg"))[0]
    got = read_for_device(path, "cpu")
    assert isinstance(got, torch.Tensor) and torch.equal(got, load_for_model(path))


@requires_torchvision
@pytest.mark.parametrize("orientation", range(1, 9))
def test_device_decode_matches_pillow_and_applies_orientation(tmp_path, orientation) -> None:
    ref = _reference().resize((300, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    _STORED[orientation](ref).save(path, exif=exif.tobytes(), quality=95)
    encoded = gpu_decodable_jpeg(path)
    assert isinstance(encoded, EncodedJpeg) and encoded.orientation == orientation
    batch, failed = stack_on_device([encoded, load_for_model(path)], "cpu")
    assert failed == [] and batch.shape == (2, 3, 224, 224) and batch.dtype == torch.uint8
    assert (batch[0].float() - batch[1].float()).abs().mean() < 3  # of 255


@requires_torchvision
def test_device_decode_of_a_large_photo_matches_the_reduced_cpu_decode(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"  # the CPU decodes it at 1/4 scale, the device in full
    textured_image(2000, 1500).save(path, quality=85)
    batch, _ = stack_on_device([gpu_decodable_jpeg(path)], "cpu")
    assert (batch[0].float() - load_for_model(path).float()).abs().mean() < 3


def test_only_plain_complete_jpegs_go_to_the_device(tmp_path: Path) -> None:
    img = textured_image(64, 48)
    img.save(tmp_path / "ok.jpg", quality=90)
    img.save(tmp_path / "p.png")
    img.convert("CMYK").save(tmp_path / "cmyk.jpg")
    whole = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "motion.jpg").write_bytes(whole + b"\0\0\0\x18ftypmp42" + b"\1" * 100)
    assert isinstance(gpu_decodable_jpeg(tmp_path / "ok.jpg"), EncodedJpeg)
    for name in ("p.png", "cmyk.jpg", "cut.jpg", "motion.jpg", "missing.jpg"):
        assert gpu_decodable_jpeg(tmp_path / name) is None, name


@requires_torchvision
def test_device_batch_leaves_out_what_no_decoder_can_read(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    textured_image(64, 48).save(good, quality=90)
    fake = EncodedJpeg(tmp_path / "gone.jpg", b"\xff\xd8\xff" + b"\x17" * 64 + b"\xff\xd9", 1)
    batch, failed = stack_on_device([fake, gpu_decodable_jpeg(good), load_for_model(good)], "cpu")
    assert batch.shape == (2, 3, 224, 224)
    assert [i for i, _ in failed] == [0] and "gone.jpg" in str(failed[0][1])


@requires_torchvision
def test_captioner_reports_a_batch_member_no_decoder_reads(
    tmp_path: Path, tiny_checkpoint, monkeypatch
) -> None:
    """The CUDA path of caption_paths, run on the CPU: JPEGs reach the batch as bytes."""
    import core.images

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.jpg")
        textured_image(64, 48, seed=i).save(paths[-1], quality=90)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\x17" * 64 + b"\xff\xd9")

    read: list[Path] = []

    def as_bytes(path, device):
        read.append(Path(path))
        data = Path(path).read_bytes()
        return EncodedJpeg(Path(path), data, 1)  # what read_for_device gives on CUDA

    monkeypatch.setattr(core.images, "read_for_device", as_bytes)
    captioner = Captioner(tiny_checkpoint, device="cpu")
    order = [paths[0], bad, paths[1], paths[2]]
    results = list(captioner.caption_paths(order, CaptionSettings(beam_size=1, batch_size=4)))
    assert {r.path for r in results} == set(order) and sorted(read) == sorted(order)
    errors = [r for r in results if not r.ok]
    assert [r.path for r in errors] == [bad] and "bad.jpg" in errors[0].error
    assert all(r.caption for r in results if r.ok)


def test_without_torchvision_cuda_gets_photos_decoded_on_the_cpu(
    photo_dir: Path, monkeypatch
) -> None:
    """A CUDA torch without the "cuda" extra (no torchvision, no nvJPEG) still captions: the
    worker decodes every photo, as for the CPU."""
    import core.images

    path = sorted(photo_dir.glob("*.jpg"))[0]
    monkeypatch.setattr(core.images, "has_nvjpeg", lambda: False)
    got = read_for_device(path, "cuda")
    assert isinstance(got, torch.Tensor) and torch.equal(got, load_for_model(path))
    monkeypatch.setattr(core.images, "has_nvjpeg", lambda: True)
    assert isinstance(read_for_device(path, "cuda"), EncodedJpeg)
