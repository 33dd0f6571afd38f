"""Finding the photos in a folder, in a stable order."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from core.errors import FileMissingError

log = logging.getLogger(__name__)

RAW_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".iiq", ".k25",
        ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw",
        ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f",
    }
)  # fmt: skip
"""Camera RAW file extensions (lower case, with the dot)."""

IMAGE_EXTENSIONS: frozenset[str] = (
    frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif"})
    | RAW_EXTENSIONS
)
"""Every file extension PhotoScribe treats as a photo (lower case, with the dot)."""


def is_photo(path: Path) -> bool:
    """True when the file name has a photo extension (the contents are not looked at)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def find_photos(folder: Path, recursive: bool = False) -> Iterator[Path]:
    """Yield the photos in ``folder`` sorted by name, then those of each subfolder in turn.

    Hidden files and folders (names starting with ".", such as macOS "._IMG_1.jpg" companions
    and PhotoScribe's own temporary files) are skipped, and symbolic links to folders are not
    followed, so a link loop cannot hang the scan. A subfolder that cannot be read is logged
    and skipped; a missing ``folder`` raises FileMissingError.
    """
    if not folder.is_dir():
        raise FileMissingError(folder, "this folder does not exist; check the path.")
    yield from _walk(folder, recursive)


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as error:
        log.warning("Skipping folder %s: %s", folder, error.strerror or error)
        return
    subfolders: list[Path] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(Path(entry.path))
            elif entry.is_file() and is_photo(Path(entry.name)):
                yield Path(entry.path)
        except OSError as error:
            log.warning("Skipping %s: %s", entry.path, error.strerror or error)
    if recursive:
        for subfolder in subfolders:
            yield from _walk(subfolder, recursive)
