"""Photoshop image resources in a JPEG's APP13 segment: the IPTC block and its IPTCDigest.

Photoshop stores an MD5 of the IPTC block (resource 0x0425, IPTCDigest) so that readers can
tell whether the IPTC still matches the XMP (the Metadata Working Group's guidance): a digest
that matches says they are in step and XMP wins; one that does not says an older program
changed IPTC since, and IPTC wins. exiv2 writes IPTC without touching the digest, which then
reads as stale ("IPTCDigest is not current. XMP may be out of sync"). As exiftool does, a write
keeps a digest that was current before it current after it, and leaves a stale one alone.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Literal

from core.storage.jpeg_xmp import PHOTOSHOP_SIGNATURE, SegmentError, photoshop_segments

IPTC_RESOURCE = 0x0404
DIGEST_RESOURCE = 0x0425
_RESOURCE_TYPES = (b"8BIM", b"PHUT", b"AgHg", b"DCSR")  # as exiv2 accepts them

DigestState = Literal["none", "current", "stale"]


@dataclass(frozen=True)
class Resource:
    """One image resource: its id and where its data lies in the segment's payload."""

    id: int
    start: int
    size: int


def resources(payload: bytes) -> list[Resource]:
    """The image resources of an APP13 payload. Raises SegmentError when they do not parse."""
    if not payload.startswith(PHOTOSHOP_SIGNATURE):
        raise SegmentError("not a Photoshop APP13 segment")
    found = []
    pos = len(PHOTOSHOP_SIGNATURE)
    while pos < len(payload):
        if payload[pos:].strip(b"\x00") == b"":  # padding at the end
            break
        if pos + 7 > len(payload) or payload[pos : pos + 4] not in _RESOURCE_TYPES:
            raise SegmentError(f"the Photoshop resources do not parse at byte {pos}")
        (resource_id,) = struct.unpack(">H", payload[pos + 4 : pos + 6])
        name_length = 1 + payload[pos + 6]
        name_length += name_length % 2  # the Pascal name is padded to an even length
        at = pos + 6 + name_length
        if at + 4 > len(payload):
            raise SegmentError(f"the Photoshop resource at byte {pos} runs past its segment")
        (size,) = struct.unpack(">I", payload[at : at + 4])
        start = at + 4
        if start + size > len(payload):
            raise SegmentError(f"the Photoshop resource at byte {pos} runs past its segment")
        found.append(Resource(resource_id, start, size))
        pos = start + size + size % 2
    return found


def _digest_parts(data: bytes) -> tuple[int, Resource, bytes] | None:
    """(where the digest's segment payload starts, the digest resource, the IPTC block) of
    the photo's single Photoshop segment; None without a digest. Raises SegmentError for
    resources spread over several segments, whose digest PhotoScribe does not compute."""
    found = photoshop_segments(data)
    if not found:
        return None
    if len(found) > 1:
        raise SegmentError("the Photoshop resources are split over several segments")
    segment = found[0]
    payload = segment.payload(data)
    by_id = {r.id: r for r in resources(payload)}
    digest = by_id.get(DIGEST_RESOURCE)
    if digest is None:
        return None
    if digest.size != 16:
        raise SegmentError("the IPTCDigest is not an MD5 digest")
    iptc = by_id.get(IPTC_RESOURCE)
    block = payload[iptc.start : iptc.start + iptc.size] if iptc else b""
    return segment.start + 4, digest, block


def iptc_digest_state(data: bytes) -> DigestState:
    """Whether the JPEG's IPTCDigest is missing, matches its IPTC block, or does not."""
    try:
        parts = _digest_parts(data)
    except SegmentError:
        return "none"  # nothing PhotoScribe can keep current; it is left as it is
    if parts is None:
        return "none"
    base, digest, block = parts
    stored = data[base + digest.start : base + digest.start + 16]
    return "current" if stored == hashlib.md5(block, usedforsecurity=False).digest() else "stale"


def with_current_iptc_digest(data: bytes) -> bytes:
    """``data`` with its IPTCDigest set to the MD5 of its IPTC block (16 bytes in place)."""
    parts = _digest_parts(data)
    if parts is None:
        return data
    base, digest, block = parts
    at = base + digest.start
    return data[:at] + hashlib.md5(block, usedforsecurity=False).digest() + data[at + 16 :]
