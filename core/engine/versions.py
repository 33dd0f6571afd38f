"""Names for the model and decoding settings that wrote a caption, recorded in the index."""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from core.datatypes import CaptionSettings

if TYPE_CHECKING:  # core.inference loads torch; the app imports the engine at start-up
    from core.inference import Captioner


def model_version(captioner: Captioner) -> str:
    """A short name for the model a captioner runs: file stem and a hash of the file."""
    checkpoint = getattr(captioner, "checkpoint", None)
    path = getattr(checkpoint, "path", None)
    if path is not None and Path(path).is_file():
        info = os.stat(path)
        return _file_version(str(path), info.st_size, info.st_mtime_ns)
    described = json.dumps(
        {
            "config": getattr(getattr(checkpoint, "config", None), "__dict__", {}),
            "provenance": getattr(checkpoint, "provenance", {}),
        },
        sort_keys=True,
        default=str,
    )
    return "in-memory-" + hashlib.sha256(described.encode()).hexdigest()[:12]


def caption_version(captioner: Captioner, settings: CaptionSettings) -> str:
    """The model and the decoding settings that shape its captions, e.g. "b0-1a2b3c beam=3".

    Recorded with every caption, so that --overwrite can tell captions this very setup wrote
    (kept: redoing them gives the same text) from all others (replaced).
    """
    text = f"{model_version(captioner)} beam={settings.beam_size}"
    if settings.length_penalty != 1.0:
        text += f" lp={settings.length_penalty:g}"
    if settings.max_tokens != CaptionSettings().max_tokens:
        text += f" max={settings.max_tokens}"
    return text


@lru_cache(maxsize=8)
def _file_version(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return f"{Path(path).stem}-{digest.hexdigest()[:12]}"
