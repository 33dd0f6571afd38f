"""A JPEG's EXIF ImageDescription replaced in place: no offset moves, no other byte changes.

Where exiv2 would lay EXIF out again and drop or alter a tag (PhotometricInterpretation in
some Canon and Photoshop files), or reports a maker note damaged, EXIF must stay as the camera
wrote it. The one field a caption write changes there can still be changed where it lies: the
new text, padded with NULs to the old value's length (readers stop at the first NUL), or,
when it does not fit, the old text blanked so that no stale caption is left in EXIF.
"""

from __future__ import annotations

import struct

from core.storage.jpeg_xmp import SegmentError, app_segments

EXIF_SIGNATURE = b"Exif\x00\x00"
_IMAGE_DESCRIPTION = 0x010E
_ASCII = 2


def with_description(data: bytes, text: str) -> tuple[bytes, bool]:
    """``data`` with IFD0's ImageDescription holding ``text`` (True) or, when ``text`` does
    not fit in the old value's bytes, holding nothing (False). Raises SegmentError when the
    EXIF block or the tag is not there or not laid out as it should be."""
    found = app_segments(data, 0xE1, EXIF_SIGNATURE)
    if len(found) != 1:
        raise SegmentError("the photo has no single EXIF segment")
    base = found[0].start + 4 + len(EXIF_SIGNATURE)  # where the TIFF header starts
    tiff = data[base : found[0].end]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        raise SegmentError("the EXIF block has no TIFF header")
    (ifd0,) = struct.unpack(order + "I", tiff[4:8])
    if ifd0 + 2 > len(tiff):
        raise SegmentError("the EXIF block's first directory lies outside it")
    (count,) = struct.unpack(order + "H", tiff[ifd0 : ifd0 + 2])
    for index in range(count):
        entry = ifd0 + 2 + 12 * index
        if entry + 12 > len(tiff):
            break
        tag, kind, size = struct.unpack(order + "HHI", tiff[entry : entry + 8])
        if tag != _IMAGE_DESCRIPTION:
            continue
        if kind != _ASCII:
            raise SegmentError("EXIF's ImageDescription is not text")
        where = (
            entry + 8 if size <= 4 else struct.unpack(order + "I", tiff[entry + 8 : entry + 12])[0]
        )
        if where + size > len(tiff):
            raise SegmentError("EXIF's ImageDescription lies outside the EXIF block")
        value = text.encode("utf-8") + b"\x00"
        fits = len(value) <= size
        new = value.ljust(size, b"\x00") if fits else b"\x00" * size
        at = base + where
        return data[:at] + new + data[at + size :], fits
    raise SegmentError("EXIF has no ImageDescription")
