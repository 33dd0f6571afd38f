"""A JPEG's XMP packet replaced (or inserted) as one APP1 segment, every other byte left as it was.

Rewriting a camera JPEG's whole metadata makes exiv2 lay out the EXIF block again, and some
maker notes do not survive that unchanged. The caption's XMP lives in an APP1 segment of its
own, so writing only that segment leaves EXIF, maker notes, previews, IPTC and the image data
byte for byte as the camera wrote them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

XMP_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"
# Some editors wrote "XMP\0" over the first four bytes of the signature (hundreds of COCO photos
# carry it beside a Photoshop IPTCDigest). exiftool reads such a packet ("non-standard header");
# exiv2 does not, so it would add a second packet and leave the first one's description stale.
DAMAGED_XMP_SIGNATURE = b"XMP\x00://ns.adobe.com/xap/1.0/\x00"
PHOTOSHOP_SIGNATURE = b"Photoshop 3.0\x00"
EXTENDED_XMP_SIGNATURE = b"http://ns.adobe.com/xmp/extension/\x00"
_EXIF_SIGNATURE = b"Exif\x00\x00"
_APP0, _APP1, _APP13, _SOS, _EOI = 0xE0, 0xE1, 0xED, 0xDA, 0xD9
MAX_SEGMENT = 0xFFFF - 2  # a segment's length field counts itself


class SegmentError(ValueError):
    """The JPEG's segments are not laid out as they should be, or the packet does not fit."""


@dataclass(frozen=True)
class Segment:
    marker: int
    start: int  # offset of the 0xFF of its marker
    end: int  # offset just past it

    def payload(self, data: bytes) -> bytes:
        return data[self.start + 4 : self.end]


def segments(data: bytes) -> list[Segment]:
    """The marker segments before the image data (up to the first start of scan)."""
    return _walk(data)[0]


def image_data_start(data: bytes) -> int:
    """Where the image data starts: the first start-of-scan marker (or the end of image)."""
    return _walk(data)[1]


def _walk(data: bytes) -> tuple[list[Segment], int]:
    """The segments before the image data, and the position of the marker that ends them."""
    if data[:2] != b"\xff\xd8":
        raise SegmentError("no JPEG start marker")
    found: list[Segment] = []
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise SegmentError(f"a JPEG marker was expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (_SOS, _EOI):
            return found, pos
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise SegmentError(f"the segment at byte {pos} runs past the end of the file")
        found.append(Segment(marker, pos, end))
        pos = end
    raise SegmentError("the JPEG has no image data")


def with_xmp_packet(data: bytes, packet: bytes) -> bytes:
    """``data`` with its XMP APP1 segment's packet replaced by ``packet`` (or a new segment
    inserted after the APP0/EXIF segments); nothing else in the file changes.

    Raises SegmentError when the packet does not fit in one segment, or the photo uses
    extended XMP (several segments) or more than one XMP segment.
    """
    body = XMP_SIGNATURE + packet
    if len(body) > MAX_SEGMENT:
        raise SegmentError("the XMP packet is too large for one JPEG segment")
    new_segment = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    found = segments(data)
    xmp = [s for s in found if s.marker == _APP1 and s.payload(data).startswith(XMP_SIGNATURE)]
    if any(s.marker == _APP1 and s.payload(data).startswith(EXTENDED_XMP_SIGNATURE) for s in found):
        raise SegmentError("the photo's XMP is split over several segments (extended XMP)")
    if len(xmp) > 1:
        raise SegmentError("the photo has more than one XMP segment")
    if xmp:
        old = xmp[0]
        return data[: old.start] + new_segment + data[old.end :]
    at = 2
    for segment in found:  # after JFIF (APP0) and EXIF (APP1), where readers look for it
        if segment.marker == _APP0 or (
            segment.marker == _APP1 and segment.payload(data).startswith(_EXIF_SIGNATURE)
        ):
            at = segment.end
        else:
            break
    return data[:at] + new_segment + data[at:]


def with_standard_xmp_header(data: bytes) -> bytes:
    """``data`` with an XMP segment's "XMP\\0" header put back to the standard signature
    (the same length: no other byte moves), so that every reader finds the packet; ``data``
    itself when there is nothing to repair, or a standard XMP segment already."""
    try:
        found = segments(data)
    except SegmentError:
        return data
    app1 = [s for s in found if s.marker == _APP1]
    if any(s.payload(data).startswith(XMP_SIGNATURE) for s in app1):
        return data
    damaged = [s for s in app1 if s.payload(data).startswith(DAMAGED_XMP_SIGNATURE)]
    if len(damaged) != 1:
        return data
    at = damaged[0].start + 4
    return data[:at] + XMP_SIGNATURE + data[at + len(XMP_SIGNATURE) :]


def replace_segment(data: bytes, old: Segment, payload: bytes) -> bytes:
    """``data`` with segment ``old`` holding ``payload`` instead (same marker)."""
    if len(payload) > MAX_SEGMENT:
        raise SegmentError("the metadata is too large for one JPEG segment")
    new = bytes([0xFF, old.marker]) + struct.pack(">H", len(payload) + 2) + payload
    return data[: old.start] + new + data[old.end :]


def app_segments(data: bytes, marker: int, signature: bytes) -> list[Segment]:
    """The segments with ``marker`` whose payload starts with ``signature``."""
    return [
        s for s in segments(data) if s.marker == marker and s.payload(data).startswith(signature)
    ]


def photoshop_segments(data: bytes) -> list[Segment]:
    """The APP13 segments holding Photoshop image resources (IPTC and its digest)."""
    return app_segments(data, _APP13, PHOTOSHOP_SIGNATURE)


def outside_xmp_and_iptc(data: bytes) -> bytes:
    """``data`` without its XMP and Photoshop (IPTC) segments: what must stay byte for byte
    as it was when only those are written (EXIF, maker notes, previews, ICC, image data)."""
    return _cut(data, app_segments(data, _APP1, XMP_SIGNATURE) + photoshop_segments(data))


def without_segments(data: bytes, marker: int) -> bytes:
    """``data`` without any segment with ``marker`` (0xE1: without its EXIF and XMP)."""
    return _cut(data, [s for s in segments(data) if s.marker == marker])


def _cut(data: bytes, drop: list[Segment]) -> bytes:
    kept, pos = [], 0
    for segment in sorted(drop, key=lambda s: s.start):
        kept.append(data[pos : segment.start])
        pos = segment.end
    kept.append(data[pos:])
    return b"".join(kept)


def without_xmp(data: bytes) -> bytes:
    """``data`` without its XMP segment: what must stay identical when only XMP is written."""
    for segment in segments(data):
        if segment.marker == _APP1 and segment.payload(data).startswith(XMP_SIGNATURE):
            return data[: segment.start] + data[segment.end :]
    return data
