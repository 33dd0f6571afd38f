"""Regenerate the bundled sample photos from scikit-image's public-domain and CC0 pictures."""

# Run from the repository root with scikit-image installed (it is not a PhotoScribe dependency):
#     .venv/bin/pip install scikit-image && .venv/bin/python desktop/resources/samples/make_samples.py
# The output is deterministic for a given Pillow and libjpeg version.

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data

HERE = Path(__file__).resolve().parent
LONG_SIDE = 640  # big enough for the preview, small enough to ship
QUALITY = 85

SAMPLES = {
    "astronaut.jpg": data.astronaut,
    "chelsea.jpg": data.chelsea,
    "coffee.jpg": data.coffee,
    "hubble_deep_field.jpg": data.hubble_deep_field,
    "rocket.jpg": data.rocket,
}


def main() -> None:
    for name, load in SAMPLES.items():
        image = Image.fromarray(load()).convert("RGB")
        image.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)  # never enlarges
        out = HERE / name
        image.save(out, "JPEG", quality=QUALITY, optimize=True, progressive=True)
        print(f"{out.name}: {image.width}x{image.height}, {out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
