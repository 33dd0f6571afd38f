"""What a library run is asked to do, what it reports on the way, and how it ended."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.datatypes import Candidate, CaptionSettings
from core.library import ScanProblem
from core.storage import FileIdentity, StoreKind, XmpName


@dataclass(frozen=True, kw_only=True)
class LibraryJob:
    """What to caption and where to keep the captions; a plain value, safe to pass to a thread.

    ``store`` None captions and reports only: nothing is saved and the index is not used, since
    it must never be the only copy of a caption.
    """

    roots: tuple[Path, ...]  # folders (and single photos) to caption
    recursive: bool = True  # include subfolders
    store: StoreKind | None = "xmp"  # where captions are saved: "txt", "xmp", "embed" or None
    xmp_name: XmpName = "photo.jpg.xmp"  # XMP sidecar naming (also for embed's fallback)
    overwrite: bool = False  # replace captions the current model did not write
    skip_captioned: bool = False  # also skip photos with a caption in any other store
    # Caption photos that have a caption too. Without ``overwrite`` the stored caption stays
    # and the new one is reported as a suggestion (PhotoCaptioned with store None).
    recaption: bool = False
    settings: CaptionSettings = field(default_factory=CaptionSettings)
    # Keep only captions the model is at least this sure of (a confidence in [0, 1]); the
    # others are neither saved nor reported as captioned, but as PhotoForReview. None: keep all.
    min_confidence: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", tuple(Path(r) for r in self.roots))
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("the minimum confidence must be between 0 and 1")


@dataclass(frozen=True, kw_only=True)
class PhotoCaptioned:
    """A photo was captioned in this run and, when the job has a store, saved and indexed.

    ``store`` None: not saved, a suggestion (the job saves nothing, or it re-captions without
    overwriting and the photo has a caption that stays).
    """

    path: Path
    caption: str
    score: float | None
    candidates: tuple[Candidate, ...]
    store: StoreKind | None  # the store now holding the caption; None when the job saves nothing
    saved_to: Path | None  # the sidecar written, or the photo itself for "embed"
    message: str = ""  # a note from the store, e.g. a fallback to an XMP sidecar
    identity: FileIdentity | None = None  # the photo after the write, for the next save's check
    confidence: float | None = None  # in [0, 1]: how sure the model is (core.confidence)
    # Saved with overwrite: every other store that held a caption of the photo holds this one now
    stores_agree: bool = False


SkipReason = Literal["done", "has_caption"]


@dataclass(frozen=True)
class PhotoSkipped:
    """A photo not captioned: done in an earlier run, or it already had a caption."""

    path: Path
    reason: SkipReason
    caption: str | None = None
    store: StoreKind | None = None
    confidence: float | None = None  # the model's confidence in ``caption``, when the index knows


@dataclass(frozen=True)
class PhotoForReview:
    """A photo captioned with less confidence than the job's ``min_confidence``: the caption
    was not saved (nor recorded in the index), so a person can look at it; the next run of the
    same job captions the photo again."""

    path: Path
    caption: str
    confidence: float | None  # None: the model gave none, which counts as too low
    min_confidence: float


@dataclass(frozen=True)
class PhotoFailed:
    """A photo that could not be captioned or saved; ``reason`` names the file."""

    path: Path
    reason: str
    caption: str | None = None  # the caption when it was made but could not be saved
    problem: str | None = None  # a failed save's kind (core.errors class name), for summaries


@dataclass(frozen=True, kw_only=True)
class RunProgress:
    """Counts so far; ``total`` is None until the background count of the photos has finished."""

    done: int  # captioned + skipped + failed + left for review
    total: int | None
    captioned: int
    skipped: int
    failed: int
    elapsed: float  # seconds since the run started
    rate: float  # photos captioned per second
    in_flight: int = 0  # photos at the model or being saved: not in ``done`` yet


@dataclass(frozen=True)
class IndexReplaced:
    """The index file was damaged; it was moved aside and a new one started."""

    path: Path
    moved_to: Path
    reason: str


EngineEvent = (
    PhotoCaptioned
    | PhotoSkipped
    | PhotoFailed
    | PhotoForReview
    | ScanProblem
    | RunProgress
    | IndexReplaced
)
EventHandler = Callable[[EngineEvent], None]


def ignore(event: EngineEvent) -> None:
    """The EventHandler that does nothing."""


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """The outcome of one run."""

    captioned: int
    skipped: int
    failed: int
    failures: tuple[PhotoFailed, ...]
    problems: tuple[ScanProblem, ...]  # folders that could not be opened
    seconds: float
    cancelled: bool
    store: StoreKind | None
    index_path: Path | None
    model: str
    for_review: int = 0  # captioned below the job's min_confidence, so not kept (PhotoForReview)
    # Saving into the photos ("embed"): captions that went to an XMP sidecar instead (HEIC,
    # RAW, and photos it was not safe to write inside).
    in_sidecars: int = 0

    @property
    def images_per_second(self) -> float:
        return self.captioned / self.seconds if self.seconds > 0 else 0.0

    def saved_where(self) -> str:
        """ "saved 240 inside the photos, 8 in sidecars" when captions went into the photos and
        some could not; empty otherwise."""
        if self.store != "embed" or not self.in_sidecars:
            return ""
        return saved_where(self.captioned - self.in_sidecars, self.in_sidecars)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings, undecodable bytes escaped)."""
        return {
            "captioned": self.captioned,
            "left_for_review": self.for_review,
            "skipped": self.skipped,
            "failed": self.failed,
            "failures": [{"path": _text(f.path), "reason": f.reason} for f in self.failures],
            "folders_not_scanned": [
                {"path": _text(p.path), "reason": p.reason} for p in self.problems
            ],
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 3),
            "cancelled": self.cancelled,
            "store": self.store,
            "index": _text(self.index_path) if self.index_path else None,
            "model": self.model,
            "saved_in_sidecars": self.in_sidecars,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"


def saved_where(inside: int, beside: int) -> str:
    """How many captions went inside the photos and how many into XMP sidecars."""
    return f"saved {inside} inside the photos, {beside} in XMP sidecars"


def _text(path: Path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")
