"""Reading Flickr8k in its original layout: the caption file, the split files and the photos."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from core.vocab import normalize_caption

log = logging.getLogger(__name__)

TOKEN_FILE = "text/Flickr8k.token.txt"
TRAIN_SPLIT = "text/Flickr_8k.trainImages.txt"
DEV_SPLIT = "text/Flickr_8k.devImages.txt"


def read_captions(token_file: str | Path) -> dict[str, list[str]]:
    """`IMAGE.jpg#N<TAB>caption` lines -> raw captions per image name, in file order.

    Keys that name no image (the release's `...jpg.1` quirk) are kept under their own name;
    they are dropped later because no photo of that name exists.
    """
    captions: dict[str, list[str]] = defaultdict(list)
    with open(token_file, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            key, sep, text = line.partition("\t")
            if not sep or "#" not in key:
                log.warning("%s:%d: not a caption line, skipped", token_file, lineno)
                continue
            name = key.rsplit("#", 1)[0]
            captions[name].append(text.strip())
    return dict(captions)


def read_split(split_file: str | Path) -> list[str]:
    with open(split_file, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


@dataclass(frozen=True)
class Example:
    name: str  # image file name
    path: Path
    captions: tuple[str, ...]  # raw references, as written by the annotators


@dataclass(frozen=True)
class Flickr8k:
    root: Path
    train: tuple[Example, ...]  # official train split plus photos in no split
    dev: tuple[Example, ...]

    @classmethod
    def load(cls, root: str | Path, include_unsplit: bool = True) -> Flickr8k:
        root = Path(root)
        captions = read_captions(root / TOKEN_FILE)
        images = root / "images"
        present = {p.name for p in images.iterdir() if p.suffix.lower() == ".jpg"}
        unknown = sorted(set(captions) - present)
        if unknown:
            log.info("caption keys naming no photo, ignored: %s", ", ".join(unknown[:5]))
        train_names = [n for n in read_split(root / TRAIN_SPLIT) if n in present]
        dev_names = [n for n in read_split(root / DEV_SPLIT) if n in present]
        if include_unsplit:
            in_split = set(train_names) | set(dev_names)
            train_names += sorted(n for n in present - in_split if n in captions)

        def examples(names: list[str]) -> tuple[Example, ...]:
            return tuple(
                Example(n, images / n, tuple(captions[n])) for n in names if captions.get(n)
            )

        return cls(root, examples(train_names), examples(dev_names))


_SWAP = {"left": "right", "right": "left"}


def flip_caption(text: str) -> str:
    """The caption of the mirrored photo: "left" and "right" swapped (normalised text)."""
    return " ".join(_SWAP.get(w, w) for w in normalize_caption(text).split())
