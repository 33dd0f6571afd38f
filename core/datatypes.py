"""Plain values shared by the captioner, the engine and the app; free of torch, cheap to import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from core.vocab import MAX_TOKENS

IMAGE_SIZE = 224  # the whole frame is squashed to IMAGE_SIZE x IMAGE_SIZE, as in training

StoreKind = Literal["txt", "xmp", "embed"]
"""Where a caption is kept: a text sidecar, an XMP sidecar, or the photo's own metadata."""
STORE_KINDS: tuple[StoreKind, ...] = get_args(StoreKind)

XmpName = Literal["photo.jpg.xmp", "photo.xmp"]
"""XMP sidecar naming: darktable and digiKam ("photo.jpg.xmp") or Lightroom ("photo.xmp")."""
XMP_NAMES: tuple[XmpName, ...] = get_args(XmpName)

ExportFormat = Literal["csv", "json", "jsonl", "hf"]
"""Formats captions are exported in (core.export); "hf" is Hugging Face's metadata.jsonl."""
EXPORT_FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]
DEVICE_CHOICES: tuple[DeviceChoice, ...] = get_args(DeviceChoice)
"""The devices a user may ask for; "auto" picks CUDA, then MPS, then the CPU."""

Precision = Literal["fp32", "auto", "bf16"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
"""The image encoder's arithmetic. "fp32", the default, gives the same captions on every
computer; "auto" takes the fastest reduced precision the device has (fp16 on CUDA, bf16 on CPUs
with AVX512-BF16 or AMX), whose rounding differs between kinds of CPU; "bf16" asks for bf16."""
PRECISION_ENV = "PHOTOSCRIBE_PRECISION"
"""Environment variable that sets the default precision (tests, CI and benchmarks use it)."""


def default_precision() -> Precision:
    """The precision used where none is chosen: $PHOTOSCRIBE_PRECISION, else "fp32"."""
    value = os.environ.get(PRECISION_ENV, "").strip().lower()
    if not value:
        return "fp32"
    if value not in PRECISIONS:
        raise ValueError(
            f"{PRECISION_ENV}={value!r} is not a precision; choose one of {', '.join(PRECISIONS)}"
        )
    return value  # type: ignore[return-value]  # checked against PRECISIONS above


CHECK_BELOW = 0.65
"""The default confidence below which a caption is marked "Check this" (the app's Settings can
change it; `photoscribe caption --format jsonl` prints "check" by it). Chosen with the shipped
model's calibration (`python -m training.review fit`, training/reports/review_mark.json) as the
highest that marks at most 30% of the photos of either dev split; the model file records it
(provenance "confidence" "check_below")."""

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "photoscribe-b0.safetensors"
"""The model that ships with PhotoScribe (absent from a source checkout until one is trained)."""


def default_weights_path() -> Path:
    """Where the shipped model is looked for (read at call time, so tests can point it away)."""
    return DEFAULT_WEIGHTS


@dataclass(frozen=True)
class CaptionSettings:
    beam_size: int = 3  # 1 = greedy
    # Photos per step. Beam search gets much cheaper per photo in large batches (29 -> 18 ms of
    # CPU per photo from 8 to 32 on a 2-core Xeon); the encoder runs in chunks of ENCODER_BATCH.
    batch_size: int = 32
    max_tokens: int = MAX_TOKENS  # incl. <start> and <end>
    length_penalty: float = 1.0  # final score = log-prob / length ** length_penalty
    n_candidates: int = 3  # alternative captions returned per photo (at most beam_size)

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError("beam size must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")


@dataclass(frozen=True, kw_only=True)
class Candidate:
    caption: str
    score: float  # length-normalised log-probability (0 is certain)
    min_token_logp: float = 0.0  # log-probability of the caption's least likely word
    # Mean log-probability per word of the same caption for a blank image: high for a generic
    # caption the model would give whatever it saw (one of the confidence's signals).
    blank_score: float = 0.0
    # The highest entropy (nats) of the model's next-word distribution along the caption: where
    # it hesitated most between many words (one of the confidence's signals).
    max_entropy: float = 0.0
    # The share of the image encoder's 1280 channels that stay off (mean activation below 0) over
    # the whole photo, the same for all of its candidates: a busy scene lights up many channels,
    # and its caption is more often wrong (one of the confidence's signals).
    inactive_channels: float = 0.0
    # CIDEr-D agreement of the caption with the captions of the nearest training photos, and
    # their mean cosine similarity to the photo (core.consensus; 0 when the model has no
    # datastore): a caption unlike what similar photos say is more often wrong.
    consensus: float = 0.0
    neighbour_similarity: float = 0.0
    # Cosine of the caption and the photo in the image-text matcher's space (core.matcher; 0 when
    # the model has no matcher): a caption that does not fit the photo is more often wrong.
    match: float = 0.0


@dataclass(frozen=True, kw_only=True)
class CaptionResult:
    """One photo's outcome: a caption with alternatives, or an error message naming the file."""

    path: Path
    caption: str | None = None
    score: float | None = None
    candidates: tuple[Candidate, ...] = ()
    error: str | None = None
    confidence: float | None = None  # in [0, 1]: how sure the model is (core.confidence)

    @property
    def ok(self) -> bool:
        return self.error is None
