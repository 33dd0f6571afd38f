"""Reading the training sets in their own layouts: Flickr8k's token file, COCO's captions.json and
img2dataset's folders (`<key>.jpg` + `<key>.txt` + `<key>.json`)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

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


Source = Literal["flickr8k", "coco", "cc3m"]
SOURCES: tuple[Source, ...] = get_args(Source)


@dataclass(frozen=True)
class Example:
    name: str  # unique key: the file name for Flickr8k, "coco/<id>.jpg", "cc3m/<shard>/<key>.jpg"
    path: Path
    captions: tuple[str, ...]  # raw references, as written by the annotators
    source: Source = "flickr8k"
    # (left, top, right, bottom) of the picture inside the stored file, in the file's pixels;
    # None when the picture fills the file (img2dataset's letterbox bars are cropped away)
    crop: tuple[int, int, int, int] | None = None


@dataclass
class Skipped:
    """What a reader left out, counted by reason (reported, never a crash hours into a run)."""

    counts: Counter = field(default_factory=Counter)

    def add(self, reason: str, what: str) -> None:
        if not self.counts[reason]:
            log.warning("skipped %s: %s (further ones only counted)", what, reason)
        self.counts[reason] += 1


def _usable(path: Path, skipped: Skipped) -> bool:
    """The photo exists and is not empty; damaged contents are caught when features are made."""
    try:
        size = path.stat().st_size
    except OSError:
        skipped.add("photo missing", str(path))
        return False
    if size == 0:
        skipped.add("photo empty", str(path))
        return False
    return True


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


# --------------------------------------------------------------------------- COCO

COCO_DEV_SIZE = 500


def coco_dev_rule(ids_with_five: Iterable[int], size: int = COCO_DEV_SIZE) -> list[int]:
    """The everyday dev split: the `size` photos with five captions whose sha1("coco:<id>") is
    smallest. A fixed rule, so the split does not depend on file order or on a random seed."""
    key = lambda i: hashlib.sha1(f"coco:{i}".encode()).hexdigest()  # noqa: E731
    return sorted(sorted(set(ids_with_five), key=key)[:size])


def read_id_list(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()]


@dataclass(frozen=True)
class CocoCaptions:
    root: Path
    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    skipped: Skipped

    @classmethod
    def load(cls, root: str | Path, dev_ids: Iterable[int]) -> CocoCaptions:
        """`captions.json` ({"images": [{id, file_name}], "annotations": [{image_id, caption}]})
        and `images/`; photos whose id is in dev_ids form the dev split and are never trained on."""
        root = Path(root)
        meta = json.loads((root / "captions.json").read_text(encoding="utf-8"))
        caps: dict[int, list[str]] = defaultdict(list)
        for a in meta["annotations"]:
            text = " ".join(str(a.get("caption", "")).split())
            if text:
                caps[int(a["image_id"])].append(text)
        dev_set = set(dev_ids)
        skipped = Skipped()
        train, dev = [], []
        for im in meta["images"]:
            i = int(im["id"])
            path = root / "images" / im["file_name"]
            if not caps.get(i):
                skipped.add("no caption", str(path))
                continue
            if not _usable(path, skipped):
                continue
            e = Example(f"coco/{i}.jpg", path, tuple(caps[i]), "coco")
            (dev if i in dev_set else train).append(e)
        missing = dev_set - {int(e.name[5:-4]) for e in dev}
        if missing:
            log.warning("%d dev photos listed but not found under %s", len(missing), root)
        return cls(root, tuple(train), tuple(sorted(dev, key=lambda e: e.name)), skipped)


# --------------------------------------------------------------------------- img2dataset (CC3M)

# Captions naming something that is not a photograph: drawings, graphics, text, renders.
# Conceptual Captions says so in the caption ("royalty free vector illustration", "logo", ...).
NOT_A_PHOTO = frozenset(
    """illustration illustrations vector vectors cartoon cartoons logo logos icon icons sticker
    stickers clipart drawing drawings drawn sketch sketches painting paintings painted poster
    posters text words word quote quotes saying says lettering typography font pattern patterns
    seamless silhouette silhouettes 3d render rendering design designs abstract watercolor canvas
    map maps symbol symbols template banner infographic diagram graphic graphics emblem badge
    character characters comic animation animated anime doodle artwork cover label screenshot
    concept isolated mockup collage card cards print prints""".split()
)
_WORDS = re.compile(r"[a-z0-9]+")


def not_a_photo(caption: str) -> bool:
    """True when the caption says the picture is an illustration, graphic, text or render."""
    return not NOT_A_PHOTO.isdisjoint(_WORDS.findall(caption.lower()))


def letterbox_crop(
    size: tuple[int, int], original: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """Where an original of `original` (w, h) lies after img2dataset shrank it to fit `size` and
    centred it on a border: (left, top, right, bottom), or None when it fills the frame."""
    W, H = size
    ow, oh = original
    if ow <= 0 or oh <= 0:
        return None
    scale = min(W / ow, H / oh)
    w, h = max(1, round(ow * scale)), max(1, round(oh * scale))
    left, top = (W - w) // 2, (H - h) // 2
    if (w, h) == (W, H):
        return None
    return (left, top, left + w, top + h)


@dataclass(frozen=True)
class WebCaptions:
    root: Path
    train: tuple[Example, ...]
    skipped: Skipped

    @classmethod
    def load(cls, root: str | Path, keep_non_photos: bool = False) -> WebCaptions:
        """img2dataset's output: shard folders of `<key>.jpg`, `<key>.txt`, `<key>.json`."""
        root = Path(root)
        skipped = Skipped()
        train = []
        for txt in sorted(root.glob("*/*.txt")):
            path = txt.with_suffix(".jpg")
            caption = " ".join(txt.read_text(encoding="utf-8", errors="replace").split())
            if not caption:
                skipped.add("no caption", str(txt))
                continue
            if not keep_non_photos and not_a_photo(caption):
                skipped.add("not a photo (illustration, graphic or text)", str(path))
                continue
            if not _usable(path, skipped):
                continue
            crop = None
            try:
                meta = json.loads(txt.with_suffix(".json").read_text(encoding="utf-8"))
                crop = letterbox_crop(
                    (int(meta["width"]), int(meta["height"])),
                    (int(meta["original_width"]), int(meta["original_height"])),
                )
            except (OSError, ValueError, KeyError, TypeError):
                skipped.add("no usable .json (letterbox not cropped)", str(txt))
            name = f"cc3m/{txt.parent.name}/{path.name}"
            train.append(Example(name, path, (caption,), "cc3m", crop))
        return cls(root, tuple(train), skipped)


# --------------------------------------------------------------------------- all sets together

COCO_DEV_FILE = Path(__file__).resolve().parent / "splits" / "coco_dev_ids.txt"


@dataclass(frozen=True)
class Corpus:
    """Every training photo, and the dev splits by name ("flickr8k", "coco")."""

    train: tuple[Example, ...]
    dev: dict[str, tuple[Example, ...]]

    @classmethod
    def load(
        cls,
        flickr8k: Path,
        coco: Path | None = None,
        web: Path | None = None,
        coco_dev_file: Path = COCO_DEV_FILE,
    ) -> Corpus:
        f = Flickr8k.load(flickr8k)
        train, dev = list(f.train), {"flickr8k": f.dev}
        if coco is not None:
            c = CocoCaptions.load(coco, read_id_list(coco_dev_file))
            train += c.train
            dev["coco"] = c.dev
            _report("COCO", len(c.train), c.skipped)
        if web is not None:
            w = WebCaptions.load(web)
            train += w.train
            _report("web photos", len(w.train), w.skipped)
        return cls(tuple(train), dev)

    def without(self, names: set[str]) -> Corpus:
        """The corpus less the named photos (ones found damaged)."""
        return Corpus(
            tuple(e for e in self.train if e.name not in names),
            {k: tuple(e for e in v if e.name not in names) for k, v in self.dev.items()},
        )

    @property
    def all_examples(self) -> list[Example]:
        return list(self.train) + [e for split in self.dev.values() for e in split]


def _report(label: str, kept: int, skipped: Skipped) -> None:
    log.info(
        "%s: %d photos kept; skipped: %s",
        label,
        kept,
        ", ".join(f"{n} {r}" for r, n in skipped.counts.most_common()) or "none",
    )


_SWAP = {"left": "right", "right": "left"}


def flip_caption(text: str) -> str:
    """The caption of the mirrored photo: "left" and "right" swapped (normalised text)."""
    return " ".join(_SWAP.get(w, w) for w in normalize_caption(text).split())
