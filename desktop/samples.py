"""The bundled sample photos, copied to a folder the user may write captions into."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from core.library import is_photo

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parent / "resources"
BUNDLED_SAMPLES = RESOURCES / "samples"
APP_ICON = RESOURCES / "photoscribe.svg"
SAMPLES_FOLDER_NAME = "Sample photos"


def bundled_sample_photos() -> list[Path]:
    if not BUNDLED_SAMPLES.is_dir():
        return []
    return sorted(p for p in BUNDLED_SAMPLES.iterdir() if p.is_file() and is_photo(p))


def prepare_samples(data_dir: Path) -> Path:
    """Copy the sample photos into ``data_dir`` (once) and return that folder.

    The app writes captions next to photos, and the installed package may be read-only, so
    the samples are opened from a copy. Photos already there are left alone, so captions the
    user saved for them survive. Raises OSError when the folder cannot be written.
    """
    target = data_dir / SAMPLES_FOLDER_NAME
    target.mkdir(parents=True, exist_ok=True)
    for photo in bundled_sample_photos():
        destination = target / photo.name
        if not destination.exists():
            shutil.copy2(photo, destination)
    log.info("Sample photos are in %s", target)
    return target
