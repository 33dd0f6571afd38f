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
from core.storage.base import (
    ALREADY_SAVED,
    StoreKind,
    WriteResult,
    XmpName,
    check_overwrite,
    clean_caption,
)
from core.storage.exif_in_place import offset_in_exif, with_description
from core.storage.files import (
    FileIdentity,
    atomic_write,
    check_identity,
    display_name,
    ensure_writable,
    read_bytes,
)
from core.storage.jpeg_xmp import (
    XMP_SIGNATURE,
    Segment,
    SegmentError,
    app_segments,
    outside_xmp_and_iptc,
    photoshop_segments,
    replace_segment,
    with_standard_xmp_header,
    with_xmp_packet,
    without_segments,
)
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
    iptc_utf8_declared,
    metadata_snapshot,
    open_metadata,
    preview_digests,
    set_iptc_caption,
    set_xmp_caption,
    undecoded_maker_note,
    xmp_caption,
)
from core.storage.photoshop import iptc_digest_state, with_current_iptc_digest
from core.storage.pixels import NotRecognisedError, image_data_digest
from core.storage.xmp import XmpSidecarStore
from core.storage.xmp_salvage import copies_of_exif, without_unparsable

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
        data = with_standard_xmp_header(data)  # a JPEG's "XMP\0" packet is read too
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
            return WriteResult.unchanged(photo, self.name, photo, identity)

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
        # A JPEG's XMP segment under a damaged header is made readable first (same length),
        # so it is the packet written: no second packet beside it keeps the old description.
        data = with_standard_xmp_header(data)
        digest_current = iptc_digest_state(data) == "current"
        note = ""
        try:
            image = open_metadata(photo, data, messages, lenient=True)
        except CorruptMetadataError as error:
            salvaged = _with_salvaged_xmp(photo, data, messages)
            if salvaged is None:
                return _Unsafe(_reason_of(error))
            data, image, note = salvaged
        embedded = self._embed_into(photo, data, image, text, overwrite, messages, digest_current)
        if isinstance(embedded, _Unsafe) or embedded[0] is None or not note:
            return embedded
        return embedded[0], " ".join(m for m in (note, embedded[1]) if m)

    def _embed_into(
        self,
        photo: Path,
        data: bytes,
        image: exiv2.Image,
        text: str,
        overwrite: bool,
        messages: list[logging.LogRecord],
        digest_current: bool,
    ) -> tuple[bytes | None, str] | _Unsafe:
        """The caption written into the opened photo by the safest way that keeps everything
        else: exiv2's rewrite, else (JPEG) only the XMP and IPTC segments; or why not."""
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
            return None, ALREADY_SAVED
        try:
            pixels_before = image_data_digest(data, kind)
        except NotRecognisedError as error:
            return _Unsafe(f"its image data could not be checked: {error}")
        damage = [m.getMessage() for m in messages if m.levelno >= logging.ERROR]
        if damage:
            # exiv2 would write back only what it could read of the damaged part.
            reason = f"exiv2 reported: {damage[0]}"
        else:
            written = self._rewrite(
                photo, image, data, kind, text, has_iptc, pixels_before, digest_current
            )
            if not isinstance(written, _Unsafe):
                return written
            reason = written.reason
        if kind == "jpeg":
            try:
                return self._keeping_layout(
                    photo, data, image, text, has_iptc, pixels_before, digest_current
                )
            except _NotXmpOnly as error:
                log.info("Not even the captions alone could be written in %s: %s", photo, error)
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
        digest_current: bool,
    ) -> tuple[bytes, str] | _Unsafe:
        """All three caption fields written by exiv2 (which lays the metadata out again),
        checked: the caption reads back, every other field, every preview and the image data
        are as they were."""
        before = metadata_snapshot(image, _CAPTION_KEYS)
        previews = sorted(preview_digests(image))
        maker_note = undecoded_maker_note(image) if kind == "jpeg" else None
        # exiv2 changes the image it writes: write a copy, so that the caller's stays as the
        # photo is for the way tried next (it once saw the new caption in EXIF, as if there).
        with exiv2_calls() as own:
            try:
                image = open_metadata(photo, data, own, lenient=True)
            except StorageError as error:
                return _Unsafe(_reason_of(error))
        message = ""
        try:
            image.exifData()[EXIF_KEY] = text
            set_xmp_caption(image.xmpData(), text)
            if has_iptc and set_iptc_caption(photo, image.iptcData(), text):
                message = "older IPTC text in the photo was converted to UTF-8."
            image.writeMetadata()
            with image.io().data() as buffer:
                new_data = bytes(buffer)
            if kind == "jpeg" and digest_current:
                new_data = with_current_iptc_digest(new_data)
        except exiv2.Exiv2Error as error:
            return _Unsafe(f"exiv2 could not write the metadata: {exiv2_reason(error)}")
        except UnsupportedFormatError as error:
            return _Unsafe(_reason_of(error))
        except SegmentError as error:
            return _Unsafe(f"its IPTCDigest could not be kept current: {error}")
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
                elif (changed := _changed_keys(before, after)) != []:
                    problem = f"exiv2 would have changed {', '.join(changed[:3])}"
                elif maker_note and offset_in_exif(new_data, maker_note) != offset_in_exif(
                    data, maker_note
                ):
                    # Offsets inside it (FLIR's, for one) would then point to the wrong bytes.
                    problem = "exiv2 would have moved a maker note it cannot read"
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

    def _keeping_layout(
        self,
        photo: Path,
        data: bytes,
        image: exiv2.Image,
        text: str,
        has_iptc: bool,
        pixels_before: str,
        digest_current: bool,
    ) -> tuple[bytes, str]:
        """The JPEG with only its XMP packet (core.storage.jpeg_xmp) and, where it has IPTC,
        its Photoshop IPTC segment written, and an older EXIF ImageDescription replaced where
        it lies (core.storage.exif_in_place): EXIF's layout, maker notes, previews and image
        data stay byte for byte as they are."""
        before = metadata_snapshot(image, _CAPTION_KEYS)
        xmp = exiv2.XmpData()
        for datum in image.xmpData():
            xmp.add(datum)
        notes = []
        base, exif_after = data, exif_caption(image, raw=True)
        try:
            if exif_after not in (None, text):
                # An older text (camera junk, or a caption --overwrite replaces) must not stay
                # in EXIF, which readers take first.
                base, fits = with_description(data, text)
                exif_after = text if fits else None
                if not fits:
                    notes.append(
                        "the old caption in the photo's EXIF was emptied (the new one is longer "
                        "than its place there, which cannot grow without rewriting EXIF)."
                    )
            set_xmp_caption(xmp, text)
            new_data = with_xmp_packet(base, encode_xmp_packet(photo, xmp))
            if has_iptc and (
                iptc_caption(image, raw=True) != text or not iptc_utf8_declared(image.iptcData())
            ):
                new_data, converted = _with_iptc_caption(photo, new_data, text)
                if converted:
                    notes.append("older IPTC text in the photo was converted to UTF-8.")
            if digest_current:
                new_data = with_current_iptc_digest(new_data)
        except (SegmentError, StorageError) as error:
            raise _NotXmpOnly(_reason_of(error)) from None
        with exiv2_calls() as messages:
            try:
                after = open_metadata(photo, new_data, messages, lenient=True)
            except StorageError as error:
                raise _NotXmpOnly(_reason_of(error)) from None
            if outside_xmp_and_iptc(new_data) != outside_xmp_and_iptc(base):
                raise _NotXmpOnly("bytes outside the XMP and IPTC segments would have changed")
            found = [xmp_caption(after, raw=True)]
            if has_iptc:
                found.append(iptc_caption(after, raw=True))
            if any(f != text for f in found) or exif_caption(after, raw=True) != exif_after:
                raise _NotXmpOnly("the caption did not read back the same")
            if metadata_snapshot(after, _CAPTION_KEYS) != before:
                raise _NotXmpOnly("other XMP or IPTC fields would have changed")
            if image_data_digest(new_data, "jpeg") != pixels_before:
                raise _NotXmpOnly("the image data would have changed")
        log.info("Wrote only the captions of %s; the rest of the file is as it was", photo)
        return new_data, " ".join(notes)


def _with_iptc_caption(photo: Path, data: bytes, text: str) -> tuple[bytes, bool]:
    """``data`` with the caption set in its (single) Photoshop APP13 segment, the IPTC encoded
    by exiv2 from a copy of the photo without its EXIF and XMP (so exiv2 rewrites nothing but
    that segment, which then replaces the photo's own). True when older text was converted."""
    old = _single(photoshop_segments(data))
    carrier = without_segments(data, marker=0xE1)
    with exiv2_calls() as messages:
        image = open_metadata(photo, carrier, messages, lenient=True)
        converted = set_iptc_caption(photo, image.iptcData(), text)
        try:
            image.writeMetadata()
            with image.io().data() as buffer:
                written = bytes(buffer)
        except exiv2.Exiv2Error as error:
            raise SegmentError(f"exiv2 could not write IPTC: {exiv2_reason(error)}") from None
    new = _single(photoshop_segments(written))
    return replace_segment(data, old, new.payload(written)), converted


def _with_salvaged_xmp(
    photo: Path, data: bytes, messages: list[logging.LogRecord]
) -> tuple[bytes, exiv2.Image, str] | None:
    """A JPEG whose XMP packet does not decode, with the packet made decodable by leaving out
    elements no reader can parse (core.storage.xmp_salvage), opened; with a note for the user.
    None unless each element left out is a copy of an EXIF tag the photo holds."""
    try:
        found = app_segments(data, 0xE1, XMP_SIGNATURE)
        if len(found) != 1:
            return None
        packet = found[0].payload(data)[len(XMP_SIGNATURE) :].decode("utf-8")
        cleaned, dropped = without_unparsable(packet)
        if not dropped:
            return None
        repaired = with_xmp_packet(data, cleaned.encode("utf-8"))
    except (SegmentError, UnicodeDecodeError):
        return None
    del messages[:]  # the complaints were about the packet now replaced
    try:
        image = open_metadata(photo, repaired, messages, lenient=True)
    except CorruptMetadataError:
        return None
    if not copies_of_exif(dropped, {datum.key().split(".")[-1] for datum in image.exifData()}):
        return None
    names = ", ".join(f"{d.prefix}:{d.local}" for d in dropped)
    log.info("Left %s out of the undecodable XMP of %s (EXIF holds it)", names, photo)
    copies = "a copy of an EXIF tag" if len(dropped) == 1 else "copies of EXIF tags"
    note = (
        f"The photo's XMP could not be decoded because of {names}, {copies} the photo keeps "
        "in EXIF; the XMP was written again without them."
    )
    return repaired, image, note


def _changed_keys(before: list[tuple[str, str]], after: exiv2.Image) -> list[str]:
    """The metadata fields that differ between a snapshot and an image, by key."""
    now = metadata_snapshot(after, _CAPTION_KEYS)
    if now == before:
        return []
    return sorted({key for key, _ in set(before) ^ set(now)}) or ["the order of fields"]


def _single(found: list[Segment]) -> Segment:
    """The one Photoshop segment; SegmentError when there are none or several."""
    if len(found) != 1:
        raise SegmentError("the photo's IPTC is not in exactly one Photoshop segment")
    return found[0]


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
