"""Finding the photos in folders: a streaming scan in a stable order that skips what is not ours."""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
    frozenset(
        {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".heic", ".heif"}
        | {".avif", ".jxl"}  # Pillow's own AVIF decoder; JPEG XL through pillow-jxl-plugin
    )
    | RAW_EXTENSIONS
)
"""Every file extension PhotoScribe treats as a photo (lower case, with the dot)."""

SKIPPED_FOLDER_NAMES: frozenset[str] = frozenset(
    {
        "@eadir",  # Synology thumbnails
        "@__thumb", "@recycle", "@recently-snapshot",  # QNAP
        "#recycle", "#snapshot",  # Synology recycle bin and snapshots
        "$recycle.bin", "recycler", "recycled", "system volume information",  # Windows
        "lost+found",  # ext file systems
        "__macosx",  # resource forks unpacked from zip files
    }
)  # fmt: skip
"""Folder names (compared in lower case) that hold system files, thumbnails or deleted files.

Every folder whose name starts with "." is skipped too: ``.git``, ``.thumbnails``,
``.Trash-1000``, ``.Trashes``, ``.Spotlight-V100``, ``.AppleDouble``, ``.cache`` and so on.
"""

SKIPPED_FOLDER_SUFFIXES: tuple[str, ...] = (
    ".lrdata",  # Lightroom previews: thousands of JPEG thumbnails
    ".photoslibrary", ".migratedphotolibrary", ".photolibrary", ".aplibrary",  # Apple Photos
)  # fmt: skip
"""Folder name endings of other programs' libraries, whose insides must not be written to."""

_WINDOWS_HIDDEN = getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 2) | getattr(
    stat, "FILE_ATTRIBUTE_SYSTEM", 4
)

ProblemKind = Literal["missing", "folder", "unreadable"]


@dataclass(frozen=True)
class FoundPhoto:
    """A photo the scan found, with its size and modification time when it was found."""

    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanProblem:
    """Something the scan could not use: a missing path, a folder it may not enter, or a photo
    it cannot read. ``reason`` is a sentence a user understands, naming the path."""

    path: Path
    kind: ProblemKind
    reason: str


def is_photo(path: Path) -> bool:
    """True when the file name has a photo extension (the contents are not looked at)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_skipped_folder(name: str) -> bool:
    """True for hidden folders and the system, thumbnail and trash folders listed above."""
    lower = name.lower()
    return (
        name.startswith(".")
        or lower in SKIPPED_FOLDER_NAMES
        or lower.endswith(SKIPPED_FOLDER_SUFFIXES)
    )


def find_photos(folder: Path, recursive: bool = False) -> Iterator[Path]:
    """Yield the photos in ``folder`` sorted by name, then those of each subfolder in turn.

    Follows the rules of scan_library (hidden and system folders skipped, each real folder
    visited once so link loops cannot hang the scan); problems are logged, not raised. A
    missing ``folder`` raises FileMissingError.
    """
    if not folder.is_dir():
        raise FileMissingError(folder, "this folder does not exist; check the path.")
    for item in scan_library([folder], recursive):
        if isinstance(item, FoundPhoto):
            yield item.path
        else:
            log.warning("%s", item.reason)


def scan_library(
    roots: Iterable[Path], recursive: bool = True, *, check_files: bool = True
) -> Iterator[FoundPhoto | ScanProblem]:
    """Stream the photos under ``roots`` in a stable order, with problems in between.

    Each root that is a folder yields its photos sorted by name, then (when ``recursive``)
    each subfolder's in turn, sorted by name; a root that is a file is yielded as it is, photo
    extension or not, because the user named it. Nothing is collected beyond one folder's
    listing, so the scan starts yielding at once and its memory does not grow with the library.

    Skipped without a word: hidden files and folders (names starting with "." and, on Windows
    and macOS, the hidden attribute), the folders of SKIPPED_FOLDER_NAMES and
    SKIPPED_FOLDER_SUFFIXES, and any real folder already visited (a symbolic link loop, or
    two links to one folder). Reported as ScanProblem: a missing root, a folder that may not be
    opened, and a photo that cannot be read (no permission, a dangling link, not a regular
    file). ``check_files`` False skips the per-photo stat (a quick count): sizes are then 0.
    """
    visited: set[tuple[int, int]] = set()
    for root in roots:
        root = Path(os.path.abspath(root))
        try:
            info = os.stat(root)
        except FileNotFoundError:
            yield ScanProblem(root, "missing", f"{root}: file not found")
            continue
        except OSError as error:
            yield ScanProblem(root, "unreadable", _unreadable(root, error))
            continue
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(root, info, recursive, visited, check_files)
        else:
            yield _check_photo(root, check_files=True)


def _walk(
    root: Path,
    root_info: os.stat_result,
    recursive: bool,
    visited: set[tuple[int, int]],
    check_files: bool,
) -> Iterator[FoundPhoto | ScanProblem]:
    # A stack of folders still to list: depth-first, each folder's files before its subfolders.
    stack: list[tuple[Path, os.stat_result | None]] = [(root, root_info)]
    while stack:
        folder, info = stack.pop()
        try:
            if info is None:
                info = os.stat(folder)
            key = (info.st_dev, info.st_ino)
            if key in visited:
                log.info("Not scanning %s again (a link to a folder already scanned)", folder)
                continue
            visited.add(key)
            photos, subfolders = _list(folder)
        except OSError as error:
            yield ScanProblem(folder, "folder", _no_entry(folder, error))
            continue
        for name in photos:
            yield _check_photo(folder / name, check_files)
        if recursive:
            stack.extend((folder / name, None) for name in reversed(subfolders))


def _list(folder: Path) -> tuple[list[str], list[str]]:
    """The photo names and the subfolder names in ``folder``, each sorted."""
    photos: list[str] = []
    subfolders: list[str] = []
    with os.scandir(folder) as scan:
        for entry in scan:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows links; the visited set stops loops
            except OSError:
                is_dir = False
            if is_dir:
                if is_skipped_folder(name) or _hidden_attribute(entry):
                    log.debug("Skipping folder %s", entry.path)
                else:
                    subfolders.append(name)
            elif os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                if not _hidden_attribute(entry):
                    photos.append(name)
    photos.sort()
    subfolders.sort()
    return photos, subfolders


def _hidden_attribute(entry: os.DirEntry[str]) -> bool:
    """The Windows hidden/system attribute or the macOS hidden flag (not the leading dot)."""
    try:
        if sys.platform == "win32":
            return bool(entry.stat(follow_symlinks=False).st_file_attributes & _WINDOWS_HIDDEN)
        if sys.platform == "darwin":
            return bool(entry.stat(follow_symlinks=False).st_flags & stat.UF_HIDDEN)
    except (OSError, AttributeError):
        return False
    return False


def _check_photo(path: Path, check_files: bool) -> FoundPhoto | ScanProblem:
    if not check_files:
        return FoundPhoto(path, 0, 0)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return ScanProblem(
                path, "unreadable", f"{path}: this is a link to a file that is not there."
            )
        return ScanProblem(path, "missing", f"{path}: file not found")
    except OSError as error:
        return ScanProblem(path, "unreadable", _unreadable(path, error))
    if not stat.S_ISREG(info.st_mode):
        return ScanProblem(path, "unreadable", f"{path}: this is not a regular file; skipped.")
    if not os.access(path, os.R_OK):
        return ScanProblem(
            path,
            "unreadable",
            f"{path}: PhotoScribe may not read this file (permission denied); skipped.",
        )
    return FoundPhoto(path, info.st_size, info.st_mtime_ns)


def _unreadable(path: Path, error: OSError) -> str:
    return f"{path}: cannot read the file ({error.strerror or error}); skipped."


def _no_entry(folder: Path, error: OSError) -> str:
    return (
        f"{folder}: PhotoScribe may not open this folder ({error.strerror or error}), so its "
        "photos were skipped; check its permissions."
    )
