"""Captions in plain-text sidecars ("photo.txt"), as training tools and many scripts expect."""

from __future__ import annotations

import logging
from pathlib import Path

from core.errors import CorruptMetadataError
from core.storage.base import (
    StoreKind,
    WriteResult,
    check_overwrite,
    clean_caption,
    shared_stem_note,
    stem_is_shared,
    write_sidecar,
)
from core.storage.files import (
    FileIdentity,
    check_identity,
    ensure_writable,
    read_bytes,
)

log = logging.getLogger(__name__)


def short_sidecar(photo: Path) -> Path:
    """The plain sidecar name: a.jpg -> a.txt."""
    return photo.with_name(photo.stem + ".txt")


def long_sidecar(photo: Path) -> Path:
    """The full sidecar name a.jpg -> a.jpg.txt, used when a.png shares the stem."""
    return photo.with_name(photo.name + ".txt")


class TextSidecarStore:
    """One UTF-8 caption per photo in a .txt file next to it.

    The file is "a.txt" for "a.jpg", or "a.jpg.txt" when another photo in the folder shares
    the stem (a.jpg and a.png). Reading looks at "a.jpg.txt" first, then "a.txt". The caption
    is written as one line ending in a newline (a text file, as editors, `cat` and `wc -l`
    expect); reading strips surrounding whitespace, that newline and a BOM.
    """

    name: StoreKind = "txt"

    def files(self, photo: Path) -> tuple[Path, ...]:
        return long_sidecar(photo), short_sidecar(photo)

    def read(self, photo: Path) -> str | None:
        sidecar = self._existing(photo)
        if sidecar is None:
            return None
        data, _ = read_bytes(sidecar)
        return _decode(sidecar, data)

    def write(
        self,
        photo: Path,
        caption: str,
        *,
        expected: FileIdentity | None = None,
        overwrite: bool = False,
    ) -> WriteResult:
        text = clean_caption(photo, caption)
        photo_identity = check_identity(photo, expected)
        existing_sidecar = self._existing(photo)
        existing: str | None = None
        sidecar_identity: FileIdentity | None = None
        if existing_sidecar is not None:
            data, sidecar_identity = read_bytes(existing_sidecar)
            existing = _decode(existing_sidecar, data)
        target, message = self._target(photo, existing_sidecar)
        if check_overwrite(photo, existing, text, overwrite) and target == existing_sidecar:
            return WriteResult.unchanged(photo, self.name, target, photo_identity)
        if target != existing_sidecar:
            sidecar_identity = None
        ensure_writable(target)
        return write_sidecar(
            photo,
            target,
            (text + "\n").encode("utf-8"),
            store=self.name,
            photo_identity=photo_identity,
            sidecar_identity=sidecar_identity,
            message=message,
        )

    def _existing(self, photo: Path) -> Path | None:
        for sidecar in self.files(photo):
            if sidecar.is_file():
                return sidecar
        return None

    def _target(self, photo: Path, existing: Path | None) -> tuple[Path, str]:
        long = long_sidecar(photo)
        if existing == long:
            return long, ""
        if stem_is_shared(photo):
            return long, shared_stem_note(photo, long)
        return short_sidecar(photo), ""


def _decode(sidecar: Path, data: bytes) -> str | None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CorruptMetadataError(
            sidecar,
            "this caption file is not UTF-8 text; re-save it as UTF-8 or delete it.",
        ) from None
    text = text.replace("\r\n", "\n").strip()
    return text or None
