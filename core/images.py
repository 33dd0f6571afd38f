"""Opening photos: every common format, HEIC and RAW, EXIF orientation, 8-bit RGB, model-sized."""

from __future__ import annotations

import functools
import importlib.util
import io
import logging
import mmap
import struct
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import exiv2
from PIL import Image, ImageOps, UnidentifiedImageError

from core.datatypes import IMAGE_SIZE
from core.errors import ImageError
from core.isolation import reader_pool
from core.library import RAW_EXTENSIONS
from core.reader_tasks import TASKS
from core.sniff import describe_non_image, read_head
from core.storage.metadata import exiv2_calls, exiv2_reason

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

try:  # HEIC/HEIF support is optional at import time so a broken pi-heif never blocks JPEGs
    import pi_heif

    pi_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - pi-heif is a declared dependency
    HEIF_AVAILABLE = False

try:  # JPEG XL through pillow-jxl-plugin; without it .jxl photos are reported as unreadable
    import pillow_jxl  # noqa: F401 - registers the format with Pillow

    JXL_AVAILABLE = True
except ImportError:  # pragma: no cover - pillow-jxl-plugin is a declared dependency
    JXL_AVAILABLE = False

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Larger than any camera makes, small enough that a crafted file cannot exhaust memory.
MAX_PIXELS = 250_000_000
# The brands of ISO-BMFF files that libheif decodes as HEIF (as pi-heif's own opener checks).
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1"}
# A preview smaller than this on its short side is a placeholder, not a picture to caption.
MIN_PREVIEW_SIDE = 96
# What a stored image needs to become upright, per EXIF orientation (EXIF 2.3, 4.6.4).
_UPRIGHT = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def _to_rgb8(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Here, not at the top: numpy is a third of a reader process's start (core.isolation).
        import numpy as np

        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if img.mode == "F":
            top = max(float(arr.max(initial=1.0)), 1.0)
        arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        img.mode == "P" and "transparency" in img.info
    ):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def covers(size: tuple[int, int], draft_size: tuple[int, int]) -> bool:
    """Whether an image of ``size`` is big enough to stand in for the photo at ``draft_size``."""
    return min(size) >= min(draft_size)


def open_image(
    path: str | Path, draft_size: tuple[int, int] | None = (IMAGE_SIZE, IMAGE_SIZE)
) -> Image.Image:
    """Decode a photo as upright 8-bit RGB; raises ImageError naming the file on any problem.

    ``draft_size`` is the least the caller needs: JPEGs then decode at a reduced scale, HEIC
    photos from their embedded thumbnail and RAW files from their smallest embedded preview
    whose short side is at least that big (the largest preview when none is). None decodes
    the full image (RAW files still from their largest preview: their sensor data is not read).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read the file ({exc.strerror})") from exc
    if size == 0:
        raise ImageError(path, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if path.suffix.lower() in RAW_EXTENSIONS:
                return open_raw_preview(path, draft_size)
            if draft_size is not None and HEIF_AVAILABLE and _is_heif(path):
                thumbnail = heif_thumbnail(path, draft_size)
                if thumbnail is not None:
                    return thumbnail
            return _open_with_pillow(path, draft_size)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            path, "the image is too large to decode safely (decompression bomb)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(path, describe_non_image(read_head(path))) from exc
    except PermissionError as exc:
        raise ImageError(path, "permission denied; check the file's permissions") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        detail = " ".join(str(exc).split())  # libheif ends its messages with a newline
        raise ImageError(path, f"the image is damaged or truncated ({detail})") from exc


def _open_with_pillow(path: Path, draft_size: tuple[int, int] | None) -> Image.Image:
    with Image.open(path) as img:
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise ImageError(path, f"the image is too large to decode safely ({w}x{h} pixels)")
        if draft_size is not None and img.format == "JPEG":
            img.draft("RGB", draft_size)
        img.seek(0)  # first frame of GIFs and other animations
        img.load()
        img = ImageOps.exif_transpose(img)
        return _to_rgb8(img)


# ---------------------------------------------------------------- HEIC: the embedded thumbnail
#
# libheif lists a HEIC's thumbnails (pi-heif reports their sizes) but pi-heif cannot decode
# one. A thumbnail is an ordinary coded image item that a 'thmb' reference ties to the primary
# image, so a copy of the file whose 'pitm' (primary item) box names the thumbnail, with that
# reference renamed so libheif no longer files it under the old primary, decodes the thumbnail
# alone, with its own rotation and mirroring. Both edits overwrite bytes in place: no offset in
# the file moves. An iPhone's 12 MP HEIC is 48 tiles (about 350 ms to decode on one core); its
# 320x240 thumbnail takes a few milliseconds.


def _is_heif(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, start of body, end) of each ISO-BMFF box in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"the {kind!r} box at byte {pos} runs past its container")
        yield kind, pos + header, pos + size
        pos += size


@dataclass(frozen=True)
class _HeifItems:
    primary: int
    pitm_at: int  # where the primary's item ID is stored
    pitm_wide: bool  # a 32-bit item ID (pitm version 1) rather than 16-bit
    thumbnails: tuple[tuple[int, int], ...]  # (item ID, offset of its 'thmb' reference type)


def _heif_items(data: bytes) -> _HeifItems | None:
    """The primary item and the thumbnails that reference it alone, or None if there are none."""
    meta = next(((b, e) for k, b, e in _boxes(data, 0, len(data)) if k == b"meta"), None)
    if meta is None:
        return None
    primary = pitm_at = None
    pitm_wide = False
    refs: list[tuple[int, int, tuple[int, ...]]] = []
    for kind, body, end in _boxes(data, meta[0] + 4, meta[1]):  # meta is a full box: skip v+flags
        if kind == b"pitm":
            pitm_wide = data[body] >= 1
            pitm_at = body + 4
            (primary,) = struct.unpack_from(">I" if pitm_wide else ">H", data, pitm_at)
        elif kind == b"iref":
            fmt, width = (">I", 4) if data[body] >= 1 else (">H", 2)
            for ref_kind, ref_body, ref_end in _boxes(data, body + 4, end):
                if ref_kind != b"thmb":
                    continue
                (source,) = struct.unpack_from(fmt, data, ref_body)
                (count,) = struct.unpack_from(">H", data, ref_body + width)
                if ref_body + width + 2 + count * width > ref_end:
                    raise ValueError("a thumbnail reference runs past its box")
                targets = struct.unpack_from(f">{count}{fmt[1]}", data, ref_body + width + 2)
                refs.append((source, ref_body - 4, targets))
    if primary is None or pitm_at is None:
        return None
    thumbnails = tuple(
        (source, at)
        for source, at, targets in refs
        if targets == (primary,) and (pitm_wide or source < 0x10000)
    )
    return _HeifItems(primary, pitm_at, pitm_wide, thumbnails) if thumbnails else None


def _heif_promote(data: bytes, items: _HeifItems, thumbnail: int, ref_at: int) -> bytes:
    """A copy of ``data`` whose primary image is the thumbnail item ``thumbnail``."""
    copy = bytearray(data)
    struct.pack_into(">I" if items.pitm_wide else ">H", copy, items.pitm_at, thumbnail)
    copy[ref_at : ref_at + 4] = b"xthm"  # a reference type libheif does not know, so ignores
    return bytes(copy)


def same_shape(thumbnail: tuple[int, int], main: tuple[int, int]) -> bool:
    """Whether ``thumbnail`` has ``main``'s aspect ratio, to within a pixel of rounding."""
    (w, h), (main_w, main_h) = thumbnail, main
    return abs(w * main_h - h * main_w) <= max(main_w, main_h)


def heif_thumbnail(path: Path, draft_size: tuple[int, int]) -> Image.Image | None:
    """The smallest embedded thumbnail that covers ``draft_size`` and has the main image's shape.

    None when the photo has no such thumbnail (or its container cannot be read this way): the
    caller then decodes the full image. Shape is the aspect ratio after rotation (``same_shape``).
    """
    data = path.read_bytes()
    try:
        items = _heif_items(data)
        if items is None:
            return None
        main_w, main_h = pi_heif.open_heif(data).size  # after the primary's rotation, mirroring
    except (ValueError, IndexError, struct.error, OSError, RuntimeError, EOFError) as exc:
        # The full decode that follows reports a damaged file in the user's terms.
        log.debug("%s: no thumbnail read (%s)", path, exc)
        return None
    best: tuple[int, pi_heif.HeifImage] | None = None
    for item, ref_at in items.thumbnails:
        try:
            heif = pi_heif.open_heif(_heif_promote(data, items, item, ref_at))
        except (OSError, ValueError, RuntimeError, EOFError) as exc:
            log.debug("%s: thumbnail item %d not readable (%s)", path, item, exc)
            continue
        image = heif[heif.primary_index]
        w, h = image.size
        if (
            image.info.get("primary")
            and same_shape((w, h), (main_w, main_h))
            and covers((w, h), draft_size)
        ):
            if best is None or w * h < best[0]:
                best = (w * h, image)
    if best is None:
        return None
    try:
        thumbnail = best[1].to_pillow()
    except (OSError, ValueError, RuntimeError, EOFError) as exc:
        log.debug("%s: thumbnail not decodable, decoding in full (%s)", path, exc)
        return None
    log.debug("%s: captioned from its %dx%d thumbnail", path, *thumbnail.size)
    return _to_rgb8(thumbnail)


# ---------------------------------------------------------------- RAW: the embedded previews


@dataclass(frozen=True)
class RawPreview:
    """One preview image stored in a RAW file, as exiv2 lists it."""

    width: int
    height: int
    mime_type: str
    data: bytes


def raw_previews(path: Path) -> tuple[int, list[RawPreview]]:
    """A RAW file's EXIF orientation (1 when it has none) and its embedded previews.

    Reads only the metadata and the previews (through a memory map, so the sensor data is
    never loaded). Raises ImageError when exiv2 cannot read the file.
    """
    problem = None
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        with exiv2_calls() as messages:
            try:
                orientation, previews = _read_previews(data)
            except exiv2.Exiv2Error as exc:
                # Raised once the map is closed: until the error is gone, its traceback keeps
                # exiv2's view of the map alive, and closing the map would fail (BufferError).
                problem = exiv2_reason(exc)
        for message in messages:  # RAW files commonly carry odd maker tags: noise, not news
            log.debug("%s: exiv2: %s", path, message.getMessage())
    if problem is not None:
        raise ImageError(path, f"this RAW file cannot be read ({problem})")
    return orientation, previews


def _read_previews(data: mmap.mmap) -> tuple[int, list[RawPreview]]:
    # Every exiv2 object that views the map is gone when this returns, so the map can close.
    image = exiv2.ImageFactory.open(data)
    image.readMetadata()
    exif = image.exifData()
    datum = exiv2.orientation(exif)  # Exif.Image.Orientation or the maker's own tag
    orientation = 1
    if datum != exif.end():
        orientation = int(datum.toInt64())
    manager = exiv2.PreviewManager(image)
    previews = [
        RawPreview(p.width_, p.height_, p.mimeType_, bytes(manager.getPreviewImage(p).data()))
        for p in manager.getPreviewProperties()
    ]
    return orientation if orientation in range(1, 9) else 1, previews


def preview_order(previews: Sequence[RawPreview], draft_size: tuple[int, int] | None) -> list[int]:
    """Indices of ``previews`` in the order to try them.

    With a ``draft_size``: the previews that cover it, smallest first (fastest to decode), then
    the others, largest first. Without one: largest first. Placeholders (short side under
    MIN_PREVIEW_SIDE) are left out; previews whose size exiv2 does not know come last.
    """
    area = [p.width * p.height for p in previews]
    usable = [
        i for i, p in enumerate(previews) if not 0 < min(p.width, p.height) < MIN_PREVIEW_SIDE
    ]
    by_size = sorted(usable, key=lambda i: area[i])
    if draft_size is None:
        return by_size[::-1]
    big = [i for i in by_size if covers((previews[i].width, previews[i].height), draft_size)]
    return big + [i for i in by_size[::-1] if i not in big]


def open_raw_preview(path: Path, draft_size: tuple[int, int] | None) -> Image.Image:
    """A RAW photo, upright, from the embedded preview that ``preview_order`` picks first.

    The preview is turned by the RAW file's orientation (not by any tag inside the preview,
    which cameras do not keep in step with it). Raises ImageError naming the file when no
    preview can be decoded.
    """
    orientation, previews = raw_previews(path)
    problems = []
    for i in preview_order(previews, draft_size):
        preview = previews[i]
        try:
            with Image.open(io.BytesIO(preview.data)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ValueError(f"{img.width}x{img.height} pixels is too many")
                if draft_size is not None and img.format == "JPEG":
                    img.draft("RGB", draft_size)
                img.load()
                upright = img
                for step in _UPRIGHT.get(orientation, ()):
                    upright = upright.transpose(step)
                log.debug("%s: captioned from its %dx%d preview", path, img.width, img.height)
                return _to_rgb8(upright)
        except UnidentifiedImageError:
            # Pillow's own message names the in-memory buffer ("<_io.BytesIO object at 0x...>").
            problems.append(
                f"the {preview.width}x{preview.height} {preview.mime_type} preview: "
                "its data is not an image"
            )
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            detail = " ".join(str(exc).split())
            problems.append(
                f"the {preview.width}x{preview.height} {preview.mime_type} preview is damaged: "
                f"{detail}"
            )
    tiny = [
        f"{p.width}x{p.height}" for p in previews if 0 < min(p.width, p.height) < MIN_PREVIEW_SIDE
    ]
    if tiny:
        problems.append(f"too small to caption: {', '.join(tiny)}")
    detail = f" ({'; '.join(problems)})" if problems else ""
    raise ImageError(
        path,
        "this RAW file has no embedded preview image that PhotoScribe can decode"
        f"{detail}. PhotoScribe captions RAW files from the preview the camera stores in them; "
        "export a JPEG from your RAW software and caption that instead.",
    )


# ---------------------------------------------------------------- JPEG decoding on the GPU
#
# On CUDA a decode worker only reads a JPEG's bytes and header; the GPU decodes the whole batch
# at once (nvJPEG through torchvision) and turns and squashes it there, so the photos reach the
# encoder without another trip through the CPU. Anything nvJPEG might not take (other formats,
# CMYK, a file with data after its end marker such as a motion photo) is decoded on the CPU as
# everywhere else.


@dataclass(frozen=True)
class EncodedJpeg:
    """A JPEG's bytes, read and checked by a decode worker, to be decoded on the device."""

    path: Path
    data: bytes
    orientation: int  # EXIF orientation, applied after decoding


def read_for_device(path: str | Path, device: torch.device | str) -> torch.Tensor | EncodedJpeg:
    """What a decode worker hands on for one photo: see ``stack_on_device``.

    On CUDA with torchvision installed, a complete RGB or greyscale JPEG comes back undecoded;
    every other photo, and every photo for other devices, as the (3, 224, 224) uint8 tensor
    ``load_for_model`` gives, decoded in a reader process (``core.isolation``: a crash there
    costs only this photo). Raises ImageError as ``load_for_model`` does, and ReaderCrashedError.
    """
    import torch  # here, not at the top: keeps torch out of the app's start-up path

    if torch.device(device).type == "cuda" and has_nvjpeg():
        encoded = gpu_decodable_jpeg(Path(path))  # Python code only: the header, the EXIF
        if encoded is not None:
            return encoded
    return isolated_load_for_model(path)


@functools.cache
def has_nvjpeg() -> bool:
    """Whether torchvision, which decodes JPEGs on the GPU, is installed: it comes with the CUDA
    build (the "cuda" extra); without it a CUDA device gets photos decoded on the CPU."""
    return importlib.util.find_spec("torchvision") is not None


def gpu_decodable_jpeg(path: Path) -> EncodedJpeg | None:
    """The file's bytes if it is a JPEG that nvJPEG decodes as Pillow would, else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None  # load_for_model reports it
    if not data.startswith(b"\xff\xd8\xff") or not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None  # not a JPEG, or truncated, or with an appended video or image
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "JPEG" or img.mode not in ("RGB", "L"):
                return None
            if img.width * img.height > MAX_PIXELS:
                return None
            orientation = img.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return None
    return EncodedJpeg(path, data, orientation if orientation in range(1, 9) else 1)


def stack_on_device(
    items: Sequence[torch.Tensor | EncodedJpeg], device: torch.device | str
) -> tuple[torch.Tensor, list[tuple[int, ImageError]]]:
    """A batch on ``device`` from what ``read_for_device`` gave, and the items that failed.

    Returns the (N, 3, 224, 224) uint8 batch of the items that decoded, in order, and
    (index in ``items``, error) for each one that did not (left out of the batch). The JPEGs
    are decoded on the device in one call; one nvJPEG rejects is decoded on the CPU instead.
    """
    import torch  # here, not at the top: keeps torch out of the app's start-up path

    device = torch.device(device)
    jpegs = [i for i, item in enumerate(items) if isinstance(item, EncodedJpeg)]
    if not jpegs:  # the CPU's case: the workers decoded everything
        decoded_ahead = [item for item in items if not isinstance(item, EncodedJpeg)]
        if decoded_ahead:
            return torch.stack(decoded_ahead).to(device, non_blocking=True), []
        return torch.empty(0, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8, device=device), []

    # torchvision 0.29 deprecates its image codecs in favour of TorchCodec, which is not a
    # dependency; the warning would come with every batch.
    warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning, "torchvision")
    from torchvision.io import ImageReadMode, decode_jpeg

    out: list[torch.Tensor | None] = [None] * len(items)
    failed: list[tuple[int, ImageError]] = []
    for i, item in enumerate(items):
        if not isinstance(item, EncodedJpeg):
            out[i] = item.to(device, non_blocking=True)
    encoded = [torch.frombuffer(bytearray(items[i].data), dtype=torch.uint8) for i in jpegs]
    try:
        decoded: list[torch.Tensor | None] = list(
            decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
        )
    except RuntimeError:  # one bad file fails the whole call: find it
        decoded = []
        for data in encoded:
            try:
                decoded.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                decoded.append(None)
    full: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
    for i, image in zip(jpegs, decoded, strict=True):
        item = items[i]
        assert isinstance(item, EncodedJpeg)
        if image is None:
            log.debug("%s: not decodable on %s, decoding on the CPU", item.path, device)
            try:
                out[i] = isolated_load_for_model(item.path).to(device)
            except ImageError as exc:
                failed.append((i, exc))
            continue
        image = upright_tensor(image, item.orientation)  # (3, H, W)
        full.setdefault(tuple(image.shape), []).append((i, image))
    for group in full.values():  # one resize per picture size: a camera's photos share one
        batch = torch.stack([image for _, image in group]).float()  # (G, 3, H, W)
        small = torch.nn.functional.interpolate(
            batch, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bicubic", antialias=True
        )
        small = small.round_().clamp_(0, 255).to(torch.uint8)  # (G, 3, 224, 224)
        for (i, _), image in zip(group, small, strict=True):
            out[i] = image
    kept = [image for image in out if image is not None]
    if not kept:
        return torch.empty(0, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8, device=device), failed
    return torch.stack(kept), sorted(failed, key=lambda f: f[0])


def upright_tensor(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """A decoded (C, H, W) image turned upright by its EXIF orientation, as exif_transpose does."""
    import torch  # here, not at the top: keeps torch out of the app's start-up path

    if orientation in (2, 3):
        image = image.flip(-1)
    if orientation in (3, 4):
        image = image.flip(-2)
    if orientation == 5:
        image = image.transpose(-1, -2)
    elif orientation == 6:
        image = torch.rot90(image, -1, (-2, -1))  # a quarter turn clockwise
    elif orientation == 7:
        image = image.transpose(-1, -2).flip(-1).flip(-2)
    elif orientation == 8:
        image = torch.rot90(image, 1, (-2, -1))  # a quarter turn anticlockwise
    return image.contiguous()


# ---------------------------------------------------------------- model input (CPU)


def model_pixels(img: Image.Image) -> bytes:
    """RGB image -> the (224, 224, 3) uint8 pixels of the whole frame (squashed, never cropped)."""
    if img.size != (IMAGE_SIZE, IMAGE_SIZE):
        img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    return img.tobytes()


def pixels_to_tensor(pixels: bytes) -> torch.Tensor:
    """``model_pixels``' bytes -> the (3, 224, 224) uint8 tensor the model takes."""
    import torch  # here, not at the top: keeps torch out of the app's start-up path

    flat = torch.frombuffer(bytearray(pixels), dtype=torch.uint8)  # a writable copy it owns
    return flat.view(IMAGE_SIZE, IMAGE_SIZE, 3).permute(2, 0, 1)  # (3, H, W)


def to_model_input(img: Image.Image) -> torch.Tensor:
    """RGB image -> (3, 224, 224) uint8 tensor of the whole frame (squashed, never cropped)."""
    return pixels_to_tensor(model_pixels(img))


def load_for_model(path: str | Path) -> torch.Tensor:
    """File -> (3, 224, 224) uint8 tensor, ready for normalize_batch, decoded in this process
    (training and benchmarks; the app and the command line use ``isolated_load_for_model``)."""
    return to_model_input(open_image(path))


def isolated_load_for_model(path: str | Path) -> torch.Tensor:
    """``load_for_model`` with the decoding in a reader process (``core.isolation``)."""
    return pixels_to_tensor(decode_model_input(Path(path)))


# ------------------------------------------------------------------ decoding in a reader process
# The tasks a reader runs (core.reader_tasks; core.reader_worker imports this module to serve
# them) and the calls that send them there.


def _picture_task(
    path: Path, draft_size: tuple[int, int] | None
) -> tuple[str, tuple[int, int], bytes]:
    """``open_image`` as (mode, size, pixels): an upright 8-bit RGB image."""
    image = open_image(path, draft_size)
    return image.mode, image.size, image.tobytes()


def _model_input_task(path: Path) -> bytes:
    """The model's (224, 224, 3) uint8 input (``model_pixels``)."""
    return model_pixels(open_image(path))


TASKS.update(picture=_picture_task, model_input=_model_input_task)


def decode_picture(path: Path, draft_size: tuple[int, int] | None) -> Image.Image:
    """``open_image``, in a reader process: a crash there costs only this photo."""
    mode, size, pixels = reader_pool().call("picture", path, draft_size)
    return Image.frombytes(mode, size, pixels)


def decode_model_input(path: Path) -> bytes:
    """The model's (224, 224, 3) uint8 input of a photo (``model_pixels``), in a reader."""
    return reader_pool().call("model_input", path)


def normalize_batch(images: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> ImageNet-normalised float tensor (float32 unless ``dtype``)."""
    import torch  # here, not at the top: keeps torch out of the app's start-up path

    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255
    return ((images.float() - mean) / std).to(dtype or torch.float32)
