"""Seeded damaged copies of photos: flipped bytes, boundary values in header fields, truncations
and repeated blocks, the damage real files get from failing cards, disks and transfers."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

HEAD = 64 * 1024  # metadata and headers live at the start; so does most parsers' trouble
BOUNDARY_WORDS = (
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00",
)


def flipped(data: bytes, rng: random.Random, count: int) -> bytes:
    out = bytearray(data)
    for _ in range(count):
        i = rng.randrange(min(len(out), HEAD))
        out[i] ^= rng.randrange(1, 256)
    return bytes(out)


def boundary(data: bytes, rng: random.Random, count: int) -> bytes:
    """Header-sized fields (offsets, lengths, counts) set to 0, -1 and the signed extremes."""
    out = bytearray(data)
    top = min(len(out), 4096) - 4
    for _ in range(count):
        i = rng.randrange(0, max(top, 1)) & ~1  # TIFF and ISO-BMFF fields are 2- or 4-aligned
        word = rng.choice(BOUNDARY_WORDS)
        width = rng.choice((2, 4))
        out[i : i + width] = word[:width] if rng.random() < 0.5 else word[-width:]
    return bytes(out)


def truncated(data: bytes, fraction: float) -> bytes:
    return data[: max(1, int(len(data) * fraction))]


def repeated(data: bytes, rng: random.Random) -> bytes:
    """A block of the head written again further on, as a bad sector remapping does."""
    size = rng.choice((64, 512, 4096))
    limit = min(len(data), HEAD)
    if limit <= size * 2:
        return data + data[:size]
    start = rng.randrange(0, limit - size)
    at = rng.randrange(0, limit - size)
    return data[:at] + data[start : start + size] + data[at + size :]


def damaged_copies(photo: Path, seed: int) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of 15 damaged copies of ``photo``, the same for the same seed."""
    data = photo.read_bytes()
    rng = random.Random(f"{seed}:{photo.name}")
    stem, suffix = photo.stem, photo.suffix
    for i in range(4):
        yield f"{stem}_flip{i}{suffix}", flipped(data, rng, rng.choice((1, 4, 16)))
    for i in range(4):
        yield f"{stem}_field{i}{suffix}", boundary(data, rng, rng.choice((1, 2, 4)))
    for i, fraction in enumerate((0.02, 0.3, 0.7, 0.98)):
        yield f"{stem}_cut{i}{suffix}", truncated(data, fraction)
    for i in range(3):
        yield f"{stem}_repeat{i}{suffix}", repeated(data, rng)
