"""Fixtures for training tests: a tiny Flickr8k-style dataset and synthetic features."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imagegen import textured_image

CAPTIONS = [
    "A dog runs on the beach .",
    "A black dog is running on the left side of the sand .",
    "Two children play in the water .",
    "A man in a red T-shirt rides a bike .",
    "A woman sits on a bench in the park .",
    "A brown dog jumps over a log .",
]


@pytest.fixture
def tiny_flickr(tmp_path: Path) -> Path:
    """Flickr8k's layout with 8 generated photos: 5 train, 2 dev, 1 in no split, + the bad key."""
    root = tmp_path / "flickr8k"
    (root / "images").mkdir(parents=True)
    (root / "text").mkdir()
    names = [f"{1000 + i}_abc.jpg" for i in range(8)]
    for i, n in enumerate(names):
        textured_image(64, 64, seed=i).save(root / "images" / n)
    lines = []
    for i, n in enumerate(names):
        for j in range(5):
            lines.append(f"{n}#{j}\t{CAPTIONS[(i + j) % len(CAPTIONS)]}")
    lines += [f"2258277193_586949ec62.jpg.1#{j}\tpeople waiting for the subway" for j in range(5)]
    (root / "text" / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    (root / "text" / "Flickr_8k.trainImages.txt").write_text("\n".join(names[:5]) + "\n")
    (root / "text" / "Flickr_8k.devImages.txt").write_text("\n".join(names[5:7]) + "\n")
    return root
