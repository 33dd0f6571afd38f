"""Photoshop-edited JPEGs: an XMP segment under a damaged header and an IPTCDigest (issue 22, item 2).

COCO photo 000000092660 (like 320 of the 4,377 COCO photos here) carries its XMP in an APP1
segment whose header reads "XMP\\0://ns.adobe.com/xap/1.0/" and an empty dc:description, beside
Photoshop's IPTC block and its MD5 (IPTCDigest). exiv2 did not see that packet, so a save
added a second one and left the digest stale; exiftool then listed two descriptions and warned
"IPTCDigest is not current. XMP may be out of sync". The photo is generated here with that
structure (no COCO photo is committed).
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
from pathlib import Path

import pytest

from core.errors import CaptionExistsError
from core.storage import EmbeddedStore
from core.storage.jpeg_xmp import (
    DAMAGED_XMP_SIGNATURE,
    XMP_SIGNATURE,
    SegmentError,
    with_standard_xmp_header,
)
from core.storage.photoshop import iptc_digest_state, with_current_iptc_digest
from core.storage.xmp_salvage import copies_of_exif, without_unparsable
from tests.core.test_storage_support import DATA, EXIFTOOL, jpeg_scan, needs_exiftool

CAPTION = "A dog running on a beach, 犬"


def dataset(record: int, number: int, value: bytes) -> bytes:
    return b"\x1c" + bytes([record, number]) + struct.pack(">H", len(value)) + value


def resource(number: int, data: bytes) -> bytes:
    padding = b"\x00" * (len(data) % 2)
    return (
        b"8BIM"
        + struct.pack(">H", number)
        + b"\x00\x00"
        + struct.pack(">I", len(data))
        + data
        + padding
    )


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def photoshop_jpeg(path: Path, *, description: str = "", digest: str = "current") -> Path:
    """plain.jpg with COCO 000000092660's metadata structure: an IPTC block (UTF-8, a record
    version, an object name) with its IPTCDigest, and an XMP packet with dc:description (as
    an rdf:Seq, as there) and dc:title, under the damaged "XMP\\0" header."""
    iptc = dataset(1, 90, b"\x1b%G") + dataset(2, 0, b"\x00\x02") + dataset(2, 5, b"Harbour, Kiel")
    md5 = hashlib.md5(iptc).digest() if digest == "current" else b"\x01" * 16
    app13 = b"Photoshop 3.0\x00" + resource(0x0404, iptc) + resource(0x0425, md5)
    item = (
        f'<rdf:li xml:lang="x-default">{description}</rdf:li>'
        if description
        else '<rdf:li xml:lang="x-default"/>'
    )
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<dc:description><rdf:Seq>{item}</rdf:Seq></dc:description>"
        '<dc:title><rdf:Seq><rdf:li xml:lang="x-default">Harbour</rdf:li></rdf:Seq></dc:title>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()
    app1 = DAMAGED_XMP_SIGNATURE + packet
    plain = (DATA / "plain.jpg").read_bytes()
    path.write_bytes(plain[:2] + segment(0xED, app13) + segment(0xE1, app1) + plain[2:])
    return path


def exiftool_lines(photo: Path) -> list[tuple[str, str, str]]:
    """exiftool -a -G1 -s: every tag, duplicates included, as (group, tag, value)."""
    assert EXIFTOOL is not None
    out = subprocess.run(
        [EXIFTOOL, "-a", "-G1", "-s", str(photo)], capture_output=True, text=True, check=True
    ).stdout
    lines = []
    for line in out.splitlines():
        head, _, value = line.partition(": ")
        group, _, tag = head.strip().partition("]")
        lines.append((group.lstrip("["), tag.strip(), value))
    return lines


def values(lines: list[tuple[str, str, str]], group: str, tag: str) -> list[str]:
    return [v for g, t, v in lines if (g, t) == (group, tag)]


@needs_exiftool
def test_the_generated_photo_has_the_structure_of_the_coco_photo(tmp_path: Path) -> None:
    photo = photoshop_jpeg(tmp_path / "harbour.jpg")
    lines = exiftool_lines(photo)
    assert values(lines, "ExifTool", "Warning") == ["Non-standard header for APP1 XMP segment"]
    assert values(lines, "XMP-dc", "Description") == [""]
    assert values(lines, "Photoshop", "IPTCDigest") == values(lines, "File", "CurrentIPTCDigest")


@needs_exiftool
def test_one_description_in_each_of_xmp_exif_and_iptc_and_the_digest_current(
    tmp_path: Path,
) -> None:
    """Issue 22, item 2: after a save exiftool lists one description in each of XMP, EXIF and
    IPTC, no warning, the IPTCDigest current; the title and object name are kept; pixels
    unchanged. Before: two XMP descriptions (the caption and the old empty one) and 'IPTCDigest
    is not current. XMP may be out of sync'."""
    photo = photoshop_jpeg(tmp_path / "harbour.jpg")
    original = photo.read_bytes()

    result = EmbeddedStore().write(photo, CAPTION)

    assert (result.store, result.written) == ("embed", True)
    lines = exiftool_lines(photo)
    assert values(lines, "XMP-dc", "Description") == [CAPTION]
    assert values(lines, "IFD0", "ImageDescription") == [CAPTION]
    assert values(lines, "IPTC", "Caption-Abstract") == [CAPTION]
    assert values(lines, "ExifTool", "Warning") == []
    assert values(lines, "Photoshop", "IPTCDigest") == values(lines, "File", "CurrentIPTCDigest")
    assert values(lines, "XMP-dc", "Title") == ["Harbour"]
    assert values(lines, "IPTC", "ObjectName") == ["Harbour, Kiel"]
    assert sum(1 for g, _, _ in lines if g == "XMP-x") == 1, "one XMP packet"
    assert jpeg_scan(photo.read_bytes()) == jpeg_scan(original)
    assert EmbeddedStore().read(photo) == CAPTION


@needs_exiftool
def test_a_stale_digest_is_left_as_it_was(tmp_path: Path) -> None:
    """A digest that did not match before says an older program changed IPTC after XMP; as
    exiftool does, it is left as it was (making it current would tell readers to trust XMP
    for every field, which the caption write did not make true)."""
    photo = photoshop_jpeg(tmp_path / "harbour.jpg", digest="stale")
    assert iptc_digest_state(photo.read_bytes()) == "stale"

    EmbeddedStore().write(photo, CAPTION)

    lines = exiftool_lines(photo)
    assert values(lines, "Photoshop", "IPTCDigest") == ["01010101010101010101010101010101"]
    assert values(lines, "XMP-dc", "Description") == [CAPTION]
    assert values(lines, "IPTC", "Caption-Abstract") == [CAPTION]


def test_a_caption_under_the_damaged_header_is_read(tmp_path: Path) -> None:
    photo = photoshop_jpeg(tmp_path / "harbour.jpg", description="Boats in a harbour at dusk")
    assert EmbeddedStore().read(photo) == "Boats in a harbour at dusk"
    with pytest.raises(CaptionExistsError):
        EmbeddedStore().write(photo, CAPTION)


def test_the_header_repair_changes_only_those_four_bytes(tmp_path: Path) -> None:
    data = photoshop_jpeg(tmp_path / "harbour.jpg").read_bytes()
    repaired = with_standard_xmp_header(data)
    assert len(repaired) == len(data)
    at = data.index(DAMAGED_XMP_SIGNATURE)
    changed = [i for i, (a, b) in enumerate(zip(data, repaired, strict=True)) if a != b]
    assert changed == [at, at + 1, at + 2, at + 3]  # "XMP\0" -> "http"
    assert XMP_SIGNATURE in repaired and with_standard_xmp_header(repaired) == repaired


def with_xmp(path: Path, properties: str) -> Path:
    """plain.jpg with a standard XMP segment whose rdf:Description holds ``properties``."""
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 5.2-c004">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        f' xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"{properties}'
        "</rdf:RDF></x:xmpmeta>"
    ).encode()
    plain = (DATA / "plain.jpg").read_bytes()
    path.write_bytes(plain[:2] + segment(0xE1, XMP_SIGNATURE + packet) + plain[2:])
    return path


@needs_exiftool
def test_an_xmp_packet_with_no_properties_is_empty_not_damaged(tmp_path: Path) -> None:
    """Regression: Photoshop's empty packet (<rdf:Description rdf:about=""/>, 4 of the COCO
    photos with the damaged header) counted as XMP that could not be decoded, so the caption
    went to a sidecar."""
    photo = with_xmp(tmp_path / "empty.jpg", "/>")
    result = EmbeddedStore().write(photo, CAPTION)
    assert result.store == "embed"
    assert values(exiftool_lines(photo), "XMP-dc", "Description") == [CAPTION]


@needs_exiftool
def test_empty_xmp_properties_that_exiv2_leaves_out_are_no_change(tmp_path: Path) -> None:
    """Regression: an empty dc:title and xmpRights:UsageTerms (Photoshop writes them, 10 of
    the COCO photos with the damaged header) are left out when exiv2 writes; that counted as
    other metadata changing, so the caption went to a sidecar. Empty and absent say the same;
    a title with text is still compared (and kept)."""
    empty = '<rdf:Alt><rdf:li xml:lang="x-default"/></rdf:Alt>'
    photo = with_xmp(
        tmp_path / "rights.jpg",
        f"><xmpRights:UsageTerms>{empty}</xmpRights:UsageTerms>"
        f"<dc:title>{empty}</dc:title>"
        "<dc:creator><rdf:Seq><rdf:li>Ann Smith</rdf:li></rdf:Seq></dc:creator>"
        "</rdf:Description>",
    )
    result = EmbeddedStore().write(photo, CAPTION)
    assert result.store == "embed"
    lines = exiftool_lines(photo)
    assert values(lines, "XMP-dc", "Description") == [CAPTION]
    assert values(lines, "XMP-dc", "Creator") == ["Ann Smith"]


def test_photoshop_resources_that_do_not_parse_leave_the_digest_alone(tmp_path: Path) -> None:
    data = photoshop_jpeg(tmp_path / "harbour.jpg").read_bytes()
    broken = data.replace(b"8BIM\x04\x25", b"8BIX\x04\x25")
    assert iptc_digest_state(data) == "current"
    assert iptc_digest_state(broken) == "none"
    with pytest.raises(SegmentError):
        with_current_iptc_digest(broken)


def test_salvage_leaves_out_only_unparsable_names_and_later_repeats() -> None:
    packet = (
        "<exif:Make>NIKON</exif:Make><exif:TIFF/EPStandardID>1 0 0 0</exif:TIFF/EPStandardID>"
        "<exif:XResolution>300</exif:XResolution><exif:XResolution>72</exif:XResolution>"
    )
    cleaned, dropped = without_unparsable(packet)
    assert cleaned == "<exif:Make>NIKON</exif:Make><exif:XResolution>300</exif:XResolution>"
    assert [(d.prefix, d.local, d.value) for d in dropped] == [
        ("exif", "TIFF/EPStandardID", "1 0 0 0"),
        ("exif", "XResolution", "72"),
    ]
    assert copies_of_exif(dropped, {"TIFFEPStandardID", "XResolution", "Make"})
    assert not copies_of_exif(dropped, {"XResolution"}), "TIFF/EP is not in this EXIF"
    other = without_unparsable("<dc:Foo/Bar>x</dc:Foo/Bar>")[1]
    assert not copies_of_exif(other, {"FooBar"}), "only exif: and tiff: copies of EXIF"
