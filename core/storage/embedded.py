"""Captions embedded in JPEG, PNG, WebP and TIFF files (EXIF, XMP and IPTC kept in agreement)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
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
from core.storage.jpeg_xmp import SegmentError, with_xmp_packet, without_xmp
from core.storage.metadata import (
    EXIF_KEY,
    IPTC_CHARSET_KEY,
    IPTC_KEY,
    XMP_KEY,
    embedded_caption,
    encode_xmp_packet,
    exif_caption,
    exiv2_calls,
    exiv2_reason,
    iptc_caption,
    metadata_snapshot,
    open_metadata,
    preview_digests,
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
            try:
                # Fields exiv2 could read are read, whatever it says of a maker note.
                image = open_metadata(photo, data, messages, lenient=True)
            except CorruptMetadataError as error:
                if _falls_back(photo):
                    raise
                # Nothing readable in there: a caption saved for it goes to the XMP sidecar
                # (see write), so the photo is captioned like one without a caption.
                log.info("No caption read from the damaged metadata of %s: %s", photo, error)
                return None
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
            embedded = self._embed(real, data, text, overwrite, messages)
        if isinstance(embedded, _Unsafe):
            return self._write_beside(photo, text, identity, overwrite, embedded.reason)
        new_data, message = embedded
        if new_data is None:
            return WriteResult(
                photo=photo,
                store=self.name,
                path=photo,
                message=message,
                written=False,
                photo_identity=identity,
            )

        def still_the_same() -> None:
            check_identity(real, identity)

        atomic_write(real, new_data, before_replace=still_the_same)
        log.info("Saved caption inside %s", photo)
        return WriteResult(
            photo=photo,
            store=self.name,
            path=photo,
            message=message,
            written=True,
            photo_identity=FileIdentity.of(real),
        )

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

    def _write_beside(
        self, photo: Path, text: str, identity: FileIdentity, overwrite: bool, reason: str
    ) -> WriteResult:
        """The caption in the XMP sidecar, where writing inside the photo is not safe."""
        log.warning(
            "Not writing inside %s (%s): the caption goes to its XMP sidecar", photo, reason
        )
        result = self.sidecar.write(photo, text, expected=identity, overwrite=overwrite)
        note = (
            f"PhotoScribe could not write inside this photo safely ({reason}), so the caption "
            f"is in the XMP sidecar '{display_name(result.path)}'; the photo was not changed."
        )
        return replace(result, message=" ".join(p for p in (note, result.message) if p))

    @runs_in_reader("embed", collect=exiv2_calls)  # libexiv2 in a reader process, likewise
    def _embed(
        self,
        photo: Path,
        data: bytes,
        text: str,
        overwrite: bool,
        messages: list[logging.LogRecord],
    ) -> tuple[bytes | None, str] | _Unsafe:
        """The photo's new bytes (None when already up to date) and a message, or why writing
        inside this photo is not safe."""
        try:
            image = open_metadata(photo, data, messages, lenient=True)
        except CorruptMetadataError as error:
            return _Unsafe(_reason_of(error))
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
            return _Unsafe(f"its image data could not be checked: {error}")
        damage = [m.getMessage() for m in messages if m.levelno >= logging.ERROR]
        if damage:
            # exiv2 would write back only what it could read of the damaged part.
            reason = f"exiv2 reported: {damage[0]}"
        else:
            written = self._rewrite(photo, image, data, kind, text, has_iptc, pixels_before)
            if not isinstance(written, _Unsafe):
                return written
            reason = written.reason
        if kind == "jpeg":
            try:
                return self._xmp_only(photo, data, image, text, has_iptc, pixels_before), ""
            except _NotXmpOnly as error:
                log.info("Only the XMP of %s could not be written either: %s", photo, error)
        return _Unsafe(reason)

    def _rewrite(
        self,
        photo: Path,
        image: exiv2.Image,
        data: bytes,
        kind: str,
        text: str,
        has_iptc: bool,
        pixels_before: str,
    ) -> tuple[bytes, str] | _Unsafe:
        """All three caption fields written by exiv2 (which lays the metadata out again),
        checked: the caption reads back, every other field, every preview and the image data
        are as they were."""
        before = metadata_snapshot(image, _CAPTION_KEYS)
        previews = sorted(preview_digests(image))
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
            return _Unsafe(f"exiv2 could not write the metadata: {exiv2_reason(error)}")
        except UnsupportedFormatError as error:
            return _Unsafe(error.problem.split(";")[0])
        with exiv2_calls() as messages:
            problem = ""
            try:
                after = open_metadata(photo, new_data, messages, lenient=True)
                found = [exif_caption(after, raw=True), xmp_caption(after, raw=True)]
                if has_iptc:
                    found.append(iptc_caption(after, raw=True))
                if any(m.levelno >= logging.ERROR for m in messages):
                    problem = f"exiv2 reported: {messages[0].getMessage()}"
                elif any(f != text for f in found):
                    problem = "the caption did not read back the same"
                elif metadata_snapshot(after, _CAPTION_KEYS) != before:
                    problem = "other metadata would have changed"
                elif sorted(preview_digests(after)) != previews:
                    problem = "a preview image inside the photo would have changed"
                elif image_data_digest(new_data, kind) != pixels_before:
                    problem = "the image data would have changed"
            except (StorageError, NotRecognisedError) as error:
                problem = _reason_of(error)
        if problem:
            log.info("Rewriting the metadata of %s is not safe: %s", photo, problem)
            return _Unsafe(problem)
        return new_data, message

    def _xmp_only(
        self,
        photo: Path,
        data: bytes,
        image: exiv2.Image,
        text: str,
        has_iptc: bool,
        pixels_before: str,
    ) -> bytes:
        """The JPEG with only its XMP packet written (core.storage.jpeg_xmp): EXIF, maker
        notes, previews, IPTC and image data stay byte for byte as they are. Only when no
        other field holds a different caption, which would then disagree with the new one."""
        others = [exif_caption(image)] + ([iptc_caption(image)] if has_iptc else [])
        if any(other not in (None, text) for other in others):
            raise _NotXmpOnly("its EXIF or IPTC holds another caption that would stay")
        before = metadata_snapshot(image, _CAPTION_KEYS)
        xmp = exiv2.XmpData()
        for datum in image.xmpData():
            xmp.add(datum)
        try:
            set_xmp_caption(xmp, text)
            new_data = with_xmp_packet(data, encode_xmp_packet(photo, xmp))
        except (SegmentError, StorageError) as error:
            raise _NotXmpOnly(str(error)) from None
        with exiv2_calls() as messages:
            try:
                after = open_metadata(photo, new_data, messages, lenient=True)
            except StorageError as error:
                raise _NotXmpOnly(_reason_of(error)) from None
            if without_xmp(new_data) != without_xmp(data):
                raise _NotXmpOnly("bytes outside the XMP segment would have changed")
            if xmp_caption(after, raw=True) != text:
                raise _NotXmpOnly("the caption did not read back the same")
            if metadata_snapshot(after, _CAPTION_KEYS) != before:
                raise _NotXmpOnly("other XMP properties would have changed")
            if image_data_digest(new_data, "jpeg") != pixels_before:
                raise _NotXmpOnly("the image data would have changed")
        log.info("Wrote only the XMP of %s; the rest of the file is as it was", photo)
        return new_data


@dataclass(frozen=True)
class _Unsafe:
    """Writing inside this photo is not safe; ``reason`` says why (for the user)."""

    reason: str


class _NotXmpOnly(Exception):
    """Writing only the XMP packet is not possible or not safe for this photo."""


def _reason_of(error: Exception) -> str:
    """A StorageError's problem without its advice ("...; PhotoScribe will not write...")."""
    problem = error.problem if isinstance(error, StorageError) else str(error)
    return problem.split(";")[0].rstrip(".")


def _falls_back(photo: Path) -> bool:
    suffix = photo.suffix.lower()
    return suffix in IMAGE_EXTENSIONS and suffix not in EMBED_EXTENSIONS
