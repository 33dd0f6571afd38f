"""Opening photos: every common format, EXIF orientation, 8-bit RGB, squashed to the model's size."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.datatypes import IMAGE_SIZE
from core.errors import ImageError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

try:  # HEIC/HEIF support is optional at import time so a broken pi-heif never blocks JPEGs
    import pi_heif

    pi_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - pi-heif is a declared dependency
    HEIF_AVAILABLE = False

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Larger than any camera makes, small enough that a crafted file cannot exhaust memory.
MAX_PIXELS = 250_000_000


def _to_rgb8(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
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


def open_image(
    path: str | Path, draft_size: tuple[int, int] | None = (IMAGE_SIZE, IMAGE_SIZE)
) -> Image.Image:
    """Decode a photo as upright 8-bit RGB; raises ImageError naming the file on any problem.

    draft_size lets JPEGs decode at a reduced scale (at least that size) instead of in full.
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
            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageError(
                        path, f"the image is too large to decode safely ({w}x{h} pixels)"
                    )
                if draft_size is not None and img.format == "JPEG":
                    img.draft("RGB", draft_size)
                img.seek(0)  # first frame of GIFs and other animations
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb8(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            path, "the image is too large to decode safely (decompression bomb)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(path, "not an image, or an image format PhotoScribe cannot read") from exc
    except PermissionError as exc:
        raise ImageError(path, "permission denied; check the file's permissions") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(path, f"the image is damaged or truncated ({exc})") from exc


def to_model_input(img: Image.Image) -> torch.Tensor:
    """RGB image -> (3, 224, 224) uint8 tensor of the whole frame (squashed, never cropped)."""
    import torch  # here, not at the top: keeps torch out of the app's start-up path

    if img.size != (IMAGE_SIZE, IMAGE_SIZE):
        img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (3, H, W)


def load_for_model(path: str | Path) -> torch.Tensor:
    """File -> (3, 224, 224) uint8 tensor, ready for normalize_batch."""
    return to_model_input(open_image(path))


def normalize_batch(images: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> ImageNet-normalised float tensor (float32 unless ``dtype``)."""
    import torch  # here, not at the top: keeps torch out of the app's start-up path

    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255
    return ((images.float() - mean) / std).to(dtype or torch.float32)
