"""Fingerprints of a photo's encoded image data, to prove a metadata write left pixels alone."""

from __future__ import annotations

import hashlib
import io
import struct

from PIL import Image, UnidentifiedImageError

from core.storage.jpeg_xmp import SegmentError, image_data_start

_PNG_IMAGE_CHUNKS = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"acTL", b"fcTL", b"fdAT"}
_WEBP_IMAGE_CHUNKS = {b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"}
_TIFF_DATA_TAGS = ((273, 279), (324, 325))  # (StripOffsets, StripByteCounts), tiles likewise


class NotRecognisedError(ValueError):
    """The bytes are not laid out as the format says; no fingerprint can be taken."""


def image_data_digest(data: bytes, kind: str) -> str:
    """SHA-256 over the parts of ``data`` that encode the picture (not the metadata).

    ``kind`` is "jpeg", "png", "webp" or "tiff": for JPEG everything from the first
    start-of-scan marker to the end, for PNG the header, palette and IDAT chunks, for WebP the
    bitstream chunks, for TIFF the raw strip or tile bytes of the first image plus its decoded
    pixels where Pillow can decode them. Raises NotRecognisedError for data that does not parse.
    """
    digest = hashlib.sha256()
    try:
        if kind == "jpeg":
            digest.update(_jpeg_scan(data))
        elif kind == "png":
            for chunk in _png_chunks(data):
                digest.update(chunk)
        elif kind == "webp":
            for chunk in _webp_chunks(data):
                digest.update(chunk)
        elif kind == "tiff":
            for part in _tiff_parts(data):
                digest.update(part)
        else:
            raise NotRecognisedError(f"no image-data fingerprint for {kind!r}")
    except (struct.error, IndexError, OSError, UnidentifiedImageError, KeyError) as error:
        raise NotRecognisedError(str(error)) from error
    return digest.hexdigest()


def _jpeg_scan(data: bytes) -> bytes:
    """From the first start of scan on: the entropy-coded image data (and what follows)."""
    try:
        return data[image_data_start(data) :]
    except SegmentError as error:
        raise NotRecognisedError(str(error)) from error


def _png_chunks(data: bytes) -> list[bytes]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise NotRecognisedError("no PNG signature")
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind in _PNG_IMAGE_CHUNKS:
            chunks.append(data[pos : pos + 12 + length])
        pos += 12 + length
        if kind == b"IEND":
            break
    return chunks


def _webp_chunks(data: bytes) -> list[bytes]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise NotRecognisedError("no WebP header")
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[pos : pos + 8])
        if kind in _WEBP_IMAGE_CHUNKS:
            chunks.append(data[pos : pos + 8 + length])
        pos += 8 + length + (length & 1)
    return chunks


def _tiff_parts(data: bytes) -> list[bytes]:
    with Image.open(io.BytesIO(data)) as image:
        tags = image.tag_v2
        parts: list[bytes] = []
        for offsets_tag, counts_tag in _TIFF_DATA_TAGS:
            if offsets_tag in tags:
                offsets, counts = tags[offsets_tag], tags[counts_tag]
                offsets = offsets if isinstance(offsets, tuple) else (offsets,)
                counts = counts if isinstance(counts, tuple) else (counts,)
                parts.extend(data[o : o + c] for o, c in zip(offsets, counts, strict=True))
        if not parts:
            raise NotRecognisedError("TIFF has no strips or tiles")
        try:
            parts.append(image.tobytes())
        except (OSError, ValueError, Image.DecompressionBombError):
            pass  # a layout Pillow cannot decode; the raw strip bytes above still prove it
    return parts
