"""An XMP packet the XMP toolkit rejects, made decodable by leaving out what no reader can parse.

Some converters copied EXIF tags into XMP under names that are not XML names
(``<exif:TIFF/EPStandardID>``) and copied a tag of the thumbnail's directory beside the same
tag of the main image (``exif:XResolution`` twice), so the whole packet fails to decode and
nothing can be written into it. Leaving out just those elements (the later of two) makes it
decode again; the caller keeps the result only when each element left out is a copy of an
EXIF tag the photo still holds (EXIF is what readers take for those first), so nothing is lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A leaf element (text only, no attributes), named prefix:local; the name may hold characters
# XML names cannot have, such as "/".
_LEAF = re.compile(
    r"<(?P<name>(?P<prefix>[A-Za-z_][\w.\-]*):(?P<local>[^\s<>:]+))>(?P<value>[^<]*)</(?P=name)>"
)
_XML_NAME = re.compile(r"[A-Za-z_][\w.\-]*")


@dataclass(frozen=True)
class Dropped:
    """One element left out of the packet: its namespace prefix, local name and text."""

    prefix: str
    local: str
    value: str

    @property
    def tag(self) -> str:
        """The name compared with EXIF tag names: letters and digits, lower case."""
        return _flat(self.local)


def without_unparsable(packet: str) -> tuple[str, list[Dropped]]:
    """``packet`` without its leaf elements whose names are not XML names or that repeat an
    earlier element of the same name, and those elements."""
    dropped: list[Dropped] = []
    seen: set[str] = set()

    def keep_or_drop(match: re.Match[str]) -> str:
        name = match["name"]
        if _XML_NAME.fullmatch(match["local"]) and name not in seen:
            seen.add(name)
            return match[0]
        dropped.append(Dropped(match["prefix"], match["local"], match["value"].strip()))
        return ""

    return _LEAF.sub(keep_or_drop, packet), dropped


def copies_of_exif(dropped: list[Dropped], exif_tags: set[str]) -> bool:
    """True when every dropped element is an exif:/tiff: copy of a tag in ``exif_tags``
    (EXIF tag names such as "TIFFEPStandardID")."""
    present = {_flat(tag) for tag in exif_tags}
    return all(d.prefix in ("exif", "tiff") and d.tag in present for d in dropped)


def _flat(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.casefold())
