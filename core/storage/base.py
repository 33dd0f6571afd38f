"""The interface every caption store implements, its result types and caption checks."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from core.datatypes import StoreKind, XmpName
from core.errors import CaptionExistsError, InvalidCaptionError
from core.library import is_photo
from core.storage.files import (
    FileIdentity,
    atomic_write,
    check_identity,
    check_still_absent,
    display_name,
)

log = logging.getLogger(__name__)

__all__ = [  # StoreKind and XmpName live in core.datatypes (torch-free, for the CLI); here too
    "MAX_CAPTION_CHARS",
    "CaptionStore",
    "StoreKind",
    "StoredCaption",
    "WriteResult",
    "XmpName",
    "check_overwrite",
    "clean_caption",
    "shared_stem_note",
    "stem_is_shared",
    "write_sidecar",
]


MAX_CAPTION_CHARS = 5000
"""Longest caption accepted by every store; well inside the 64 KB metadata blocks of a JPEG."""


ALREADY_SAVED = "this caption was already saved."  # a write found the same caption there


@dataclass(frozen=True, kw_only=True)
class WriteResult:
    """Where a caption was stored, and anything the user should know about it."""

    photo: Path
    store: StoreKind  # the store that holds the caption now
    path: Path  # the file that was written: a sidecar, or the photo itself
    message: str = ""  # e.g. a fallback to a sidecar; empty when there is nothing to say
    written: bool = True  # False when the same caption was already there and nothing changed
    photo_identity: FileIdentity | None = None  # the photo after the write, for the next check

    @classmethod
    def unchanged(
        cls, photo: Path, store: StoreKind, path: Path, photo_identity: FileIdentity | None
    ) -> WriteResult:
        """The same caption was already in ``path``: nothing was written."""
        return cls(
            photo=photo,
            store=store,
            path=path,
            message=ALREADY_SAVED,
            written=False,
            photo_identity=photo_identity,
        )


@dataclass(frozen=True)
class StoredCaption:
    """A caption found for a photo and the name of the store it came from."""

    caption: str
    store: StoreKind


@runtime_checkable
class CaptionStore(Protocol):
    """Reads and writes one caption per photo in one place (a sidecar or the photo itself)."""

    name: StoreKind

    def files(self, photo: Path) -> tuple[Path, ...]:
        """The files this store may keep ``photo``'s caption in (a sidecar, or the photo)."""
        ...

    def read(self, photo: Path) -> str | None:
        """The stored caption, or None when there is none; StorageError when it is unreadable."""
        ...

    def write(
        self,
        photo: Path,
        caption: str,
        *,
        expected: FileIdentity | None = None,
        overwrite: bool = False,
    ) -> WriteResult:
        """Store ``caption`` for ``photo`` atomically.

        ``expected`` is the photo's identity when it was read for captioning: if the photo has
        changed since, FileChangedError is raised and nothing is written. An existing different
        caption raises CaptionExistsError unless ``overwrite``. Any failure raises a
        StorageError subclass and leaves every file as it was.
        """
        ...


def clean_caption(photo: Path, caption: str) -> str:
    """The caption as it will be stored: stripped, line breaks as "\\n", checked for limits.

    Raises InvalidCaptionError for an empty caption, one longer than MAX_CAPTION_CHARS, or one
    with characters XML-based metadata cannot hold (control characters other than tab and line
    feed, lone surrogates, U+FFFE/U+FFFF).
    """
    text = caption.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise InvalidCaptionError(photo, "the caption is empty; type a caption first.")
    if len(text) > MAX_CAPTION_CHARS:
        raise InvalidCaptionError(
            photo,
            f"the caption is {len(text)} characters long; shorten it to at most "
            f"{MAX_CAPTION_CHARS}.",
        )
    for char in text:
        code = ord(char)
        if (
            (code < 0x20 and char not in "\t\n")
            or 0x7F <= code <= 0x9F
            or 0xD800 <= code <= 0xDFFF
            or code in (0xFFFE, 0xFFFF)
        ):
            raise InvalidCaptionError(
                photo,
                f"the caption contains the invisible character U+{code:04X}, which photo "
                "metadata cannot hold; remove it and try again.",
            )
    return text


def check_overwrite(photo: Path, existing: str | None, caption: str, overwrite: bool) -> bool:
    """True when the same caption is already stored (nothing to write).

    Raises CaptionExistsError when a different caption is stored and ``overwrite`` is False.
    """
    if existing is None:
        return False
    if existing == caption:
        return True
    if not overwrite:
        raise CaptionExistsError(
            photo,
            "the photo already has a caption; PhotoScribe keeps it unless you choose to "
            "overwrite existing captions.",
        )
    return False


def stem_is_shared(photo: Path) -> bool:
    """True when another photo in the same folder has the same name before the extension.

    Then "a.txt" or "a.xmp" would be ambiguous between a.jpg and a.png, so the stores use
    the full name ("a.jpg.txt") instead.
    """
    try:
        with os.scandir(photo.parent) as scan:
            for entry in scan:
                other = Path(entry.name)
                if other.name != photo.name and other.stem == photo.stem and is_photo(other):
                    return True
    except OSError as error:
        log.debug("Could not list %s: %s", photo.parent, error)
    return False


def shared_stem_note(photo: Path, sidecar: Path) -> str:
    """The WriteResult message explaining why a sidecar carries the full photo name."""
    return (
        f"another photo in this folder is also named '{display_name(Path(photo.stem))}', so the "
        f"caption was saved as '{display_name(sidecar)}'."
    )


def write_sidecar(
    photo: Path,
    target: Path,
    data: bytes,
    *,
    store: StoreKind,
    photo_identity: FileIdentity,
    sidecar_identity: FileIdentity | None,
    message: str = "",
) -> WriteResult:
    """Write a sidecar's new bytes atomically beside ``photo`` (the text and XMP sidecars'
    one recipe): just before the replace, the photo must still be the one read
    (``photo_identity``) and the sidecar the one read (``sidecar_identity``), or still absent
    when there was none, so a change made meanwhile by another program is never overwritten."""

    def still_the_same() -> None:
        check_identity(photo, photo_identity)
        if sidecar_identity is None:
            check_still_absent(target)
        else:
            check_identity(target, sidecar_identity)

    atomic_write(target, data, mode_from=photo, before_replace=still_the_same)
    log.info("Saved caption for %s in %s", photo, target)
    return WriteResult(
        photo=photo,
        store=store,
        path=target,
        message=message,
        written=True,
        photo_identity=photo_identity,
    )
