"""Fixtures for training tests: a tiny Flickr8k-style dataset and synthetic features."""

from __future__ import annotations

import json
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


@pytest.fixture
def tiny_coco(tmp_path: Path) -> Path:
    """COCO's caption layout: 6 photos (ids 1..6), one missing, one empty, one uncaptioned."""
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(1, 7):
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "source": "test"})
        if i != 4:  # photo 4 is listed but missing
            textured_image(80, 60, seed=i).save(root / "images" / f"{i:012d}.jpg")
        if i != 6:  # photo 6 has no caption
            annotations += [
                {"image_id": i, "caption": f"A photo number {i}, take {k}."}
                for k in range(5 if i < 3 else 2)
            ]
    (root / "images" / f"{5:012d}.jpg").write_bytes(b"")  # photo 5 is empty
    (root / "captions.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return root


@pytest.fixture
def tiny_web(tmp_path: Path) -> Path:
    """img2dataset's layout: a shard of letterboxed photos with .txt captions and .json sizes."""
    shard = tmp_path / "web" / "00000"
    shard.mkdir(parents=True)
    rows = [
        ("000", "a red car parked on a street", (640, 480)),
        ("001", "royalty free vector illustration of a car", (500, 500)),
        ("002", "a bowl of soup on a wooden table", (300, 600)),
        ("003", "", (300, 300)),
        ("004", "a dog on a sofa", None),  # no .json: used uncropped
    ]
    for key, caption, size in rows:
        textured_image(256, 256, seed=int(key)).save(shard / f"{key}.jpg")
        (shard / f"{key}.txt").write_text(caption)
        if size:
            meta = {
                "width": 256,
                "height": 256,
                "original_width": size[0],
                "original_height": size[1],
            }
            (shard / f"{key}.json").write_text(json.dumps(meta))
    (shard / "005.txt").write_text("a caption whose photo was never downloaded")
    return tmp_path / "web"
