"""Captions in XMP sidecars ("photo.jpg.xmp" or "photo.xmp"), updated in place, never replaced."""

from __future__ import annotations

import logging
from pathlib import Path

import exiv2

from core.errors import CorruptMetadataError
from core.storage.base import (
    StoreKind,
    WriteResult,
    XmpName,
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
from core.storage.metadata import (
    encode_xmp_sidecar,
    exiv2_calls,
    image_type,
    open_metadata,
    set_xmp_caption,
    xmp_caption_from,
)

log = logging.getLogger(__name__)


def long_sidecar(photo: Path) -> Path:
    """The darktable/digiKam sidecar name: a.jpg -> a.jpg.xmp."""
    return photo.with_name(photo.name + ".xmp")


def short_sidecar(photo: Path) -> Path:
    """The Lightroom/Capture One sidecar name: a.jpg -> a.xmp."""
    return photo.with_name(photo.stem + ".xmp")


def parse_sidecar(sidecar: Path, data: bytes) -> exiv2.XmpData:
    """The XMP properties of a sidecar file; CorruptMetadataError when it does not parse.

    An empty file counts as a sidecar with nothing in it.
    """
    if not data.strip():
        return exiv2.XmpData()
    with exiv2_calls() as messages:
        if image_type(data) != exiv2.ImageType.xmp:
            raise CorruptMetadataError(
                sidecar,
                "this XMP sidecar is damaged or is not XMP; fix it or move it away, then "
                "try again.",
            )
        image = open_metadata(sidecar, data, messages)
        # Copy out: the XmpData belongs to the image and would go with it.
        xmp = exiv2.XmpData()
        for datum in image.xmpData():
            xmp.add(datum)
        return xmp


class XmpSidecarStore:
    """dc:description (x-default) in an XMP sidecar next to the photo.

    ``xmp_name`` chooses "photo.jpg.xmp" (darktable, digiKam; the default) or "photo.xmp"
    (Lightroom). With "photo.xmp", a photo whose stem another photo in the folder shares gets
    "photo.jpg.xmp" instead, and the WriteResult says so. Reading tries the chosen name first,
    then the other. An existing sidecar is updated: only dc:description's default language
    changes, every other property stays.
    """

    name: StoreKind = "xmp"

    def __init__(self, xmp_name: XmpName = "photo.jpg.xmp") -> None:
        if xmp_name not in ("photo.jpg.xmp", "photo.xmp"):
            raise ValueError(f"xmp_name must be 'photo.jpg.xmp' or 'photo.xmp', not {xmp_name!r}")
        self.xmp_name: XmpName = xmp_name

    def candidates(self, photo: Path) -> tuple[Path, Path]:
        """The sidecar names to look for, the configured one first."""
        if self.xmp_name == "photo.xmp":
            return short_sidecar(photo), long_sidecar(photo)
        return long_sidecar(photo), short_sidecar(photo)

    def files(self, photo: Path) -> tuple[Path, ...]:
        return self.candidates(photo)

    def read(self, photo: Path) -> str | None:
        for sidecar in self.candidates(photo):
            if sidecar.is_file():
                data, _ = read_bytes(sidecar)
                caption = xmp_caption_from(parse_sidecar(sidecar, data))
                if caption is not None:
                    return caption
        return None

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
        target, message = self._target(photo)
        sidecar_identity: FileIdentity | None = None
        xmp = exiv2.XmpData()
        if target.is_file():
            data, sidecar_identity = read_bytes(target)
            xmp = parse_sidecar(target, data)
        target_caption = xmp_caption_from(xmp)
        existing = target_caption if target_caption is not None else self.read(photo)
        if check_overwrite(photo, existing, text, overwrite) and target_caption == text:
            return WriteResult.unchanged(photo, self.name, target, photo_identity)
        ensure_writable(target)
        with exiv2_calls():
            set_xmp_caption(xmp, text)
            packet = encode_xmp_sidecar(target, xmp)

        return write_sidecar(
            photo,
            target,
            packet,
            store=self.name,
            photo_identity=photo_identity,
            sidecar_identity=sidecar_identity,
            message=message,
        )

    def _target(self, photo: Path) -> tuple[Path, str]:
        if self.xmp_name == "photo.jpg.xmp":
            return long_sidecar(photo), ""
        if stem_is_shared(photo):
            target = long_sidecar(photo)
            return target, shared_stem_note(photo, target)
        return short_sidecar(photo), ""
