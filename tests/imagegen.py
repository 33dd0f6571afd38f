"""Generated test photos with photographic texture (no side effects on import, unlike conftest)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def textured_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Photographic-looking texture (smooth noise at several scales), not flat colour."""
    rng = np.random.default_rng(seed)
    out = np.zeros((height, width, 3), dtype=np.float32)
    for scale in (4, 16, 64):
        small = rng.random((max(height // scale, 2), max(width // scale, 2), 3)).astype(np.float32)
        up = Image.fromarray((small * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
        out += np.asarray(up, dtype=np.float32) / 3
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
