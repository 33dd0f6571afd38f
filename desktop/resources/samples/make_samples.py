"""Regenerate the bundled sample photos from their freely licensed originals (README.md)."""

# Run from the repository root. scikit-image (not a PhotoScribe dependency) gives two of them;
# the other eight are the files named in README.md, downloaded into a folder given as ORIGINALS:
#     .venv/bin/pip install scikit-image
#     .venv/bin/python desktop/resources/samples/make_samples.py ORIGINALS
# The output is deterministic for a given Pillow and libjpeg version.

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
LONG_SIDE = 640  # big enough for the preview, small enough to ship
QUALITY = 85

SKIMAGE = {"astronaut.jpg": "astronaut", "chelsea.jpg": "chelsea"}  # skimage.data functions
# Sample name -> the original's file name in its repository (README.md gives repository and commit).
ORIGINALS = {
    "burger.jpg": "burger.jpg",
    "taxis.jpg": "taxis.jpg",
    "beach.jpg": "palm_tree.png",
    "teddy.jpg": "baby-bear.jpg",
    "friends.jpg": "Canon PowerShot A560.jpg",
    "bedroom.jpg": "mock-home-3.jpg",
}


def save(image: Image.Image, name: str) -> None:
    image = image.convert("RGB")
    image.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)  # never enlarges
    out = HERE / name
    image.save(out, "JPEG", quality=QUALITY, optimize=True, progressive=True)
    print(f"{out.name}: {image.width}x{image.height}, {out.stat().st_size // 1024} KB")


def main(originals: Path) -> None:
    from skimage import data

    for name, function in SKIMAGE.items():
        save(Image.fromarray(getattr(data, function)()), name)
    for name, original in ORIGINALS.items():
        with Image.open(originals / original) as image:
            save(image, name)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
