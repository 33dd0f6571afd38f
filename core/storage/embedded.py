"""Captions embedded in JPEG, PNG, WebP and TIFF files (EXIF, XMP and IPTC kept in agreement)."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import exiv2

from core.errors import CorruptMetadataError, StorageError, UnsupportedFormatError
from core.isolation import runs_in_reader
from core.library import IMAGE_EXTENSIONS
from core.storage.base import StoreKind, WriteResult, XmpName, check_overwrite, clean_caption
from core.storage.files import (
    FileIdentity,
    atomic_write,
    check_identity,
    display_name,
    ensure_writable,
    read_bytes,
)
from core.storage.metadata import (
    EXIF_KEY,
    IPTC_CHARSET_KEY,
    IPTC_KEY,
    XMP_KEY,
    embedded_caption,
    exif_caption,
    exiv2_calls,
    exiv2_reason,
    iptc_caption,
    metadata_snapshot,
    open_metadata,
    set_iptc_caption,
    set_xmp_caption,
    xmp_caption,
)
from core.storage.pixels import NotRecognisedError, image_data_digest
from core.storage.xmp import XmpSidecarStore

log = logging.getLogger(__name__)

EMBED_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"})
"""Photos whose captions go inside the file; other photos (HEIC, RAW, GIF, BMP) get a sidecar."""

# exiv2 image types we write, by the name used for the image-data check.
_WRITABLE_TYPES = {
    exiv2.ImageType.jpeg: "jpeg",
    exiv2.ImageType.png: "png",
    exiv2.ImageType.webp: "webp",
    exiv2.ImageType.tiff: "tiff",
}
# Fields a caption write changes on purpose. In TIFF, XMP and IPTC live inside EXIF tags
# (XMLPacket, IPTCNAA, Photoshop ImageResources); their contents are compared field by field.
_CAPTION_KEYS = {
    EXIF_KEY,
    XMP_KEY,
    IPTC_KEY,
    IPTC_CHARSET_KEY,
    "Exif.Image.XMLPacket",
    "Exif.Image.IPTCNAA",
    "Exif.Image.ImageResources",
}


class EmbeddedStore:
    """The caption inside the photo: XMP dc:description, EXIF ImageDescription and, where
    the photo already has IPTC, IPTC Caption-Abstract with the UTF-8 marker, all three equal.

    Only JPEG, PNG, WebP and TIFF are written, through python-exiv2 working on a copy in
    memory: the result is checked (caption read back, every other field and the encoded image
    data unchanged) before it atomically replaces the photo. Other photos (HEIC, RAW, GIF,
    BMP) fall back to an XMP sidecar named by ``xmp_name``, and the WriteResult says so.
    Reading follows the Metadata Working Group's order: EXIF, XMP, then IPTC; for fallback
    formats the sidecar comes first.
    """

    name: StoreKind = "embed"

    def __init__(self, xmp_name: XmpName = "photo.jpg.xmp") -> None:
        self.sidecar = XmpSidecarStore(xmp_name)

    def files(self, photo: Path) -> tuple[Path, ...]:
        if _falls_back(photo):
            return (*self.sidecar.files(photo), photo)
        return (photo,)

    def read(self, photo: Path) -> str | None:
        if not _falls_back(photo):
            return self._read_embedded(photo)
        caption = self.sidecar.read(photo)
        if caption is not None:
            return caption
        try:
            return self._read_embedded(photo)
        except (UnsupportedFormatError, CorruptMetadataError) as error:
            # Many RAW formats are beyond exiv2; the sidecar is where captions go for them.
            log.debug("No embedded caption read from %s: %s", photo, error)
            return None

    @runs_in_reader("embedded_caption")  # libexiv2 in a reader process: a crash costs one file
    def _read_embedded(self, photo: Path) -> str | None:
        data, _ = read_bytes(photo)
        with exiv2_calls() as messages:
            image = open_metadata(photo, data, messages)
            return embedded_caption(image)

    def write(
        self,
        photo: Path,
        caption: str,
        *,
        expected: FileIdentity | None = None,
        overwrite: bool = False,
    ) -> WriteResult:
        text = clean_caption(photo, caption)
        if _falls_back(photo):
            return self._write_sidecar(photo, text, expected, overwrite)
        if photo.suffix.lower() not in EMBED_EXTENSIONS:
            raise UnsupportedFormatError(
                photo, "PhotoScribe only stores captions for photos (JPEG, PNG, WebP, TIFF, ...)."
            )
        real = Path(os.path.realpath(photo))  # write through a symlink, keep the link
        ensure_writable(real)
        data, identity = read_bytes(real, expected)
        with exiv2_calls() as messages:
            new_data, message = self._embed(real, data, text, overwrite, messages)
        if new_data is None:
            return WriteResult(photo, self.name, photo, message, False, identity)

        def still_the_same() -> None:
            check_identity(real, identity)

        atomic_write(real, new_data, before_replace=still_the_same)
        log.info("Saved caption inside %s", photo)
        return WriteResult(photo, self.name, photo, message, True, FileIdentity.of(real))

    def _write_sidecar(
        self, photo: Path, text: str, expected: FileIdentity | None, overwrite: bool
    ) -> WriteResult:
        if not overwrite:
            # A caption the camera or another program put inside the RAW/HEIC counts too.
            check_identity(photo, expected)
            check_overwrite(photo, self.read(photo), text, overwrite=False)
        result = self.sidecar.write(photo, text, expected=expected, overwrite=True)
        kind = photo.suffix.lstrip(".").upper()
        note = (
            f"PhotoScribe does not write inside {kind} files, so the caption is in the XMP "
            f"sidecar '{display_name(result.path)}'."
        )
        return replace(result, message=" ".join(p for p in (note, result.message) if p))

    @runs_in_reader("embed", exiv2_messages=True)  # libexiv2 in a reader process, likewise
    def _embed(
        self,
        photo: Path,
        data: bytes,
        text: str,
        overwrite: bool,
        messages: list[logging.LogRecord],
    ) -> tuple[bytes | None, str]:
        """The photo's new bytes (None when already up to date) and a message."""
        image = open_metadata(photo, data, messages)
        kind = _WRITABLE_TYPES.get(image.imageType())
        if kind is None:
            raise UnsupportedFormatError(
                photo,
                f"the contents are {image.mimeType()}, which PhotoScribe does not write "
                "metadata into; save captions to sidecar files instead.",
            )
        has_iptc = not image.iptcData().empty()
        fields = [exif_caption(image), xmp_caption(image)]
        if has_iptc:
            fields.append(iptc_caption(image))
        existing = embedded_caption(image)
        if check_overwrite(photo, existing, text, overwrite) and all(f == text for f in fields):
            return None, "this caption was already saved."
        try:
            pixels_before = image_data_digest(data, kind)
        except NotRecognisedError as error:
            raise UnsupportedFormatError(
                photo,
                f"PhotoScribe cannot check the image data of this {kind.upper()} ({error}), so "
                "it will not write to it; save captions to sidecar files instead.",
            ) from None
        before = metadata_snapshot(image, _CAPTION_KEYS)
        message = ""
        try:
            image.exifData()[EXIF_KEY] = text
            set_xmp_caption(image.xmpData(), text)
            if has_iptc and set_iptc_caption(photo, image.iptcData(), text):
                message = "older IPTC text in the photo was converted to UTF-8."
            image.writeMetadata()
            with image.io().data() as buffer:
                new_data = bytes(buffer)
        except exiv2.Exiv2Error as error:
            raise StorageError(
                photo,
                f"could not write the metadata ({exiv2_reason(error)}); the photo was not "
                "changed. Save captions to sidecar files instead.",
            ) from None
        self._verify(photo, new_data, kind, text, has_iptc, before, pixels_before, messages)
        return new_data, message

    def _verify(
        self,
        photo: Path,
        new_data: bytes,
        kind: str,
        text: str,
        has_iptc: bool,
        before: list[tuple[str, str]],
        pixels_before: str,
        messages: list[logging.LogRecord],
    ) -> None:
        """Read the new bytes back; refuse to save them unless only the caption changed."""
        problem = ""
        try:
            if messages:
                problem = f"exiv2 reported: {messages[0].getMessage()}"
            else:
                image = open_metadata(photo, new_data, messages)
                found = [exif_caption(image), xmp_caption(image)]
                if has_iptc:
                    found.append(iptc_caption(image))
                if any(f != text for f in found):
                    problem = "the caption did not read back the same"
                elif metadata_snapshot(image, _CAPTION_KEYS) != before:
                    problem = "other metadata would have changed"
                elif image_data_digest(new_data, kind) != pixels_before:
                    problem = "the image data would have changed"
        except (StorageError, NotRecognisedError) as error:
            problem = str(error)
        if problem:
            log.warning("Refused to write %s: %s", photo, problem)
            raise StorageError(
                photo,
                f"the metadata could not be written safely ({problem}); the photo was not "
                f"changed. Save captions for '{display_name(photo)}' to a sidecar file instead.",
            )


def _falls_back(photo: Path) -> bool:
    suffix = photo.suffix.lower()
    return suffix in IMAGE_EXTENSIONS and suffix not in EMBED_EXTENSIONS
