"""python-exiv2 helpers: open photo or XMP bytes safely, and read or set the caption fields."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from xml.etree import ElementTree

import exiv2

from core.errors import (
    CorruptMetadataError,
    InvalidCaptionError,
    StorageError,
    UnsupportedFormatError,
)
from core.sniff import describe_non_image
from core.storage.placeholders import camera_tokens, is_placeholder

log = logging.getLogger(__name__)

EXIF_KEY = "Exif.Image.ImageDescription"
XMP_KEY = "Xmp.dc.description"
IPTC_KEY = "Iptc.Application2.Caption"
IPTC_CHARSET_KEY = "Iptc.Envelope.CharacterSet"
MAKE_KEY = "Exif.Image.Make"
MODEL_KEY = "Exif.Image.Model"
IPTC_UTF8 = "\x1b%G"  # ISO 2022 escape sequence for UTF-8 (IPTC IIM 1:90)
IPTC_MAX_BYTES = 2000  # IIM limit for Caption-Abstract
_LATIN1_CHARSETS = {"", "\x1b-A", "\x1b.A"}  # no marker, ISO 8859-1 as G1 or G2

# The XMP toolkit and exiv2's log handler are process-wide; one caller at a time.
_LOCK = threading.RLock()
_EXIV2_LOGGER = logging.getLogger("exiv2")  # python-exiv2 forwards libexiv2 messages here


class _ToLibrariesLog(logging.Handler):
    """libexiv2's warnings are about the file, not news for the terminal: they go to the log
    file at INFO, beside what the image readers' C libraries say (core.isolation)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger("photoscribe.libraries").info("exiv2: %s", record.getMessage())


_EXIV2_LOGGER.addHandler(_ToLibrariesLog())
_EXIV2_LOGGER.propagate = False


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record)


@contextmanager
def exiv2_calls() -> Iterator[list[logging.LogRecord]]:
    """Serialise exiv2 use and collect the warnings and errors libexiv2 logs meanwhile."""
    with _LOCK:
        if not _EXIV2_LOGGER.isEnabledFor(logging.WARNING):
            # Its complaints decide whether a write is safe: never let a quieter logging
            # set-up (root at ERROR) silence them.
            _EXIV2_LOGGER.setLevel(logging.WARNING)
        collector = _Collector()
        _EXIV2_LOGGER.addHandler(collector)
        try:
            yield collector.messages
        finally:
            _EXIV2_LOGGER.removeHandler(collector)


def open_metadata(
    path: Path, data: bytes, messages: list[logging.LogRecord], *, lenient: bool = False
) -> exiv2.Image:
    """An exiv2 image over ``data`` (the bytes of ``path``) with its metadata read.

    Works on memory rather than the file name, so names that are not valid UTF-8 (or not
    in the Windows code page) are no problem. Raises UnsupportedFormatError for data exiv2
    does not recognise and CorruptMetadataError when the metadata cannot be read completely;
    ``lenient`` accepts EXIF that exiv2 complains about (a damaged maker note: the fields it
    could read are there, its complaints stay in ``messages``), never XMP it cannot decode.
    """
    if image_type(data) == exiv2.ImageType.none:
        reason = describe_non_image(data[:512])
        if reason.startswith("not an image, or"):  # an image, perhaps, of a format exiv2 lacks
            reason = "this is not a photo format PhotoScribe can read metadata from"
        raise UnsupportedFormatError(path, f"{reason}.")
    try:
        image = exiv2.ImageFactory.open(data)
        image.readMetadata()
    except exiv2.Exiv2Error as error:
        raise CorruptMetadataError(
            path,
            f"the file's metadata is damaged ({exiv2_reason(error)}); PhotoScribe will not write to "
            "it. Repair it with another tool, or save captions to sidecar files.",
        ) from None
    problems = [m for m in messages if m.levelno >= logging.ERROR or "XMP" in m.getMessage()]
    if lenient:
        problems = [m for m in problems if "XMP" in m.getMessage()]
    packet = image.xmpPacket()
    if problems or (packet.strip() and image.xmpData().empty() and not _no_properties(packet)):
        detail = problems[0].getMessage() if problems else "XMP could not be decoded"
        raise CorruptMetadataError(
            path,
            f"the file's metadata is damaged ({detail}); PhotoScribe will not write to it, so "
            "nothing is lost. Repair it with another tool, or save captions to sidecar files.",
        )
    return image


_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


def _no_properties(packet: str) -> bool:
    """True for a well-formed XMP packet that holds no property at all (Photoshop writes
    ``<rdf:Description rdf:about=""/>``): empty, not undecodable."""
    try:
        root = ElementTree.fromstring(packet.strip().strip("\x00").encode("utf-8"))
    except ElementTree.ParseError:
        return False
    for description in root.iter(f"{_RDF}Description"):
        if len(description) or set(description.attrib) - {f"{_RDF}about"}:
            return False
    return True


def image_type(data: bytes) -> int:
    """exiv2's ImageType number for ``data`` (exiv2.ImageType.none when unknown)."""
    if not data:
        return exiv2.ImageType.none
    try:
        return exiv2.ImageFactory.getType(data)
    except exiv2.Exiv2Error:  # some short inputs make the type sniffers read past the end
        return exiv2.ImageType.none


def exiv2_reason(error: exiv2.Exiv2Error) -> str:
    """The human part of an Exiv2Error (its args are the code and the message)."""
    args = error.args
    if len(args) >= 2 and isinstance(args[1], str):
        return args[1]
    return str(error)


def legacy_text(value: str) -> str:
    """Text from a non-UTF-8 field: python-exiv2 keeps undecodable bytes as surrogates.

    Such bytes were almost certainly Windows-1252/Latin-1, the pre-UTF-8 default.
    """
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _clean(value: str) -> str | None:
    text = value.replace("\r\n", "\n").strip().strip("\x00").strip()
    return text or None


def camera_of(image: exiv2.Image) -> frozenset[str]:
    """The words of the photo's own camera make and model (EXIF Make, Model)."""
    exif = image.exifData()
    make = exif[MAKE_KEY].toString() if MAKE_KEY in exif else None
    model = exif[MODEL_KEY].toString() if MODEL_KEY in exif else None
    return camera_tokens(make, model)


def _described(image: exiv2.Image, text: str | None, raw: bool) -> str | None:
    """``text``, or None when it is camera junk (core.storage.placeholders) and not ``raw``."""
    if raw or text is None:
        return text
    return None if is_placeholder(text, camera_of(image)) else text


def exif_caption(image: exiv2.Image, *, raw: bool = False) -> str | None:
    """ImageDescription; camera junk counts as none unless ``raw``."""
    exif = image.exifData()
    if EXIF_KEY not in exif:
        return None
    return _described(image, _clean(legacy_text(exif[EXIF_KEY].toString())), raw)


def xmp_caption_from(xmp: exiv2.XmpData) -> str | None:
    """dc:description in the default language, else the first language present."""
    if XMP_KEY not in xmp:
        return None
    value = xmp[XMP_KEY].getValue()
    if isinstance(value, exiv2.LangAltValue):
        languages = dict(value)
        text = languages.get("x-default") or next(iter(languages.values()), "")
    else:
        text = value.toString()
    return _clean(text)


def xmp_caption(image: exiv2.Image, *, raw: bool = False) -> str | None:
    """Embedded dc:description; camera junk counts as none unless ``raw``."""
    return _described(image, xmp_caption_from(image.xmpData()), raw)


def iptc_utf8_declared(iptc: exiv2.IptcData) -> bool:
    return IPTC_CHARSET_KEY in iptc and iptc[IPTC_CHARSET_KEY].toString() == IPTC_UTF8


def iptc_caption(image: exiv2.Image, *, raw: bool = False) -> str | None:
    """Caption-Abstract; camera junk counts as none unless ``raw``."""
    iptc = image.iptcData()
    if IPTC_KEY not in iptc:
        return None
    value = iptc[IPTC_KEY].toString()
    return _described(image, _clean(value if iptc_utf8_declared(iptc) else legacy_text(value)), raw)


def embedded_caption(image: exiv2.Image) -> str | None:
    """The caption in the Metadata Working Group's order: EXIF, then XMP, then IPTC; text
    that describes nothing (camera defaults, file names, numbers) counts as none."""
    return exif_caption(image) or xmp_caption(image) or iptc_caption(image)


def set_xmp_caption(xmp: exiv2.XmpData, caption: str) -> None:
    """Set dc:description's default language, keeping any other languages already there."""
    languages: dict[str, str] = {}
    if XMP_KEY in xmp:
        value = xmp[XMP_KEY].getValue()
        if isinstance(value, exiv2.LangAltValue):
            languages = dict(value)
        del xmp[XMP_KEY]
    languages["x-default"] = caption
    # x-default first, as the XMP specification asks.
    ordered = {"x-default": caption} | {k: v for k, v in languages.items() if k != "x-default"}
    xmp[XMP_KEY] = exiv2.LangAltValue(ordered)


def set_iptc_caption(path: Path, iptc: exiv2.IptcData, caption: str) -> bool:
    """Set Caption-Abstract and declare UTF-8; True when older text had to be converted.

    IPTC without the UTF-8 marker is read as Latin-1 by other software, so before adding the
    marker every existing text field that is not already UTF-8 is converted, keeping its
    meaning. Raises InvalidCaptionError past the IIM limit of 2000 bytes.
    """
    size = len(caption.encode("utf-8"))
    if size > IPTC_MAX_BYTES:
        raise InvalidCaptionError(
            path,
            f"this photo has IPTC metadata, whose caption holds at most {IPTC_MAX_BYTES} bytes, "
            f"and the caption takes {size}; shorten it or save captions to XMP sidecars.",
        )
    converted = False
    if not iptc_utf8_declared(iptc):
        charset = iptc[IPTC_CHARSET_KEY].toString() if IPTC_CHARSET_KEY in iptc else ""
        strings = [
            datum
            for datum in iptc
            if datum.typeId() == exiv2.TypeId.string and datum.key() != IPTC_CHARSET_KEY
        ]
        if charset not in _LATIN1_CHARSETS:
            # A marker PhotoScribe does not know (or a damaged one) over plain ASCII text is
            # no obstacle: ASCII reads the same in UTF-8, so declaring it changes no field.
            if not all(datum.toString().isascii() for datum in strings):
                raise UnsupportedFormatError(
                    path,
                    f"the photo's IPTC text uses a character set ({charset!r}) PhotoScribe "
                    "cannot convert; save captions to XMP sidecars for this photo.",
                )
        else:
            for datum in strings:
                text = datum.toString()
                fixed = legacy_text(text) if charset == "" else _latin1(text)
                if fixed != text:
                    datum.setValue(fixed)
                    converted = True
    while IPTC_KEY in iptc:
        del iptc[IPTC_KEY]
    while IPTC_CHARSET_KEY in iptc:
        del iptc[IPTC_CHARSET_KEY]
    iptc[IPTC_CHARSET_KEY] = IPTC_UTF8
    iptc[IPTC_KEY] = caption
    return converted


def _latin1(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("latin-1")


def metadata_snapshot(image: exiv2.Image, skip: set[str]) -> list[tuple[str, str]]:
    """Every metadata field as (key, text), to prove a write changed nothing it should not.

    Fields that only record where something lies in the file (offsets, IFD pointers, the raw
    maker note block) legitimately change when exiv2 lays the file out again, so are left out.
    """
    # exiv2 sorts EXIF tags by number when it writes, and the XMP toolkit may reorder
    # properties (array items keep their index in the key), so both compare as sorted lists;
    # IPTC keeps its order, which is the order of repeated fields such as keywords.
    exif = sorted(
        (datum.key(), _as_text(datum))
        for datum in image.exifData()
        if datum.key() not in skip and not _is_layout_tag(datum.key())
    )
    fields: list[tuple[str, str]] = list(exif)
    iptc = image.iptcData()
    utf8 = iptc_utf8_declared(iptc)
    for datum in iptc:
        key = datum.key()
        if key in skip:
            continue
        text = _as_text(datum)
        fields.append((key, text if utf8 else legacy_text(text)))
    xmp = ((datum.key(), _as_text(datum)) for datum in image.xmpData())
    # exiv2 leaves out XMP properties with nothing in them (an empty dc:title in every
    # language) when it writes: empty and absent say the same, so empty ones are not compared.
    fields.extend(
        sorted(
            (key, text)
            for key, text in xmp
            if key not in skip and key != "Xmp.x.xmptk" and not _is_empty_xmp(text)
        )
    )
    return fields


def _is_empty_xmp(text: str) -> bool:
    """True for an XMP value with no text in any language ('lang="x-default" ')."""
    return not re.sub(r'lang="[^"]*"', "", text).replace(",", "").strip()


def preview_digests(image: exiv2.Image) -> list[str]:
    """A fingerprint of each preview image the photo carries (maker notes hold most of them):
    a write may move them in the file, never change them."""
    manager = exiv2.PreviewManager(image)
    digests = []
    for properties in manager.getPreviewProperties():
        preview = manager.getPreviewImage(properties)
        with preview.data() as view:
            digests.append(hashlib.sha256(bytes(view)).hexdigest())
    return digests


def encode_xmp_packet(path: Path, xmp: exiv2.XmpData) -> bytes:
    """Serialise XMP as the packet inside a photo (wrapper and padding, as exiv2 writes it)."""
    flags = exiv2.XmpParser.XmpFormatFlags
    try:
        code, packet = exiv2.XmpParser.encode(xmp, flags.useCompactFormat)
    except exiv2.Exiv2Error as error:
        raise StorageError(path, f"could not encode XMP ({exiv2_reason(error)}).") from None
    if code != 0 or not packet:
        raise StorageError(path, f"could not encode XMP (XMP toolkit error {code}).")
    return packet.encode("utf-8")


def _as_text(datum: object) -> str:
    try:
        return datum.toString()  # type: ignore[attr-defined]
    except (exiv2.Exiv2Error, ValueError, UnicodeError):
        return "<unreadable>"


_LAYOUT_WORDS = ("Offset", "ByteCounts", "JPEGInterchangeFormat", "IFDPointer", "ImageStart")
# Pointers to maker-note sub-directories: where they lie, not what they hold. What they
# hold is compared field by field, and their previews by content (preview_digests).
_LAYOUT_KEYS = {
    "Exif.Nikon3.Preview",
    "Exif.Image.ExifTag",
    "Exif.Image.GPSTag",
    "Exif.Photo.InteroperabilityTag",
    "Exif.Photo.MakerNote",
    "Exif.MakerNote.Offset",
    "Exif.MakerNote.ByteOrder",
    "Exif.Image.SubIFDs",
}


def _is_layout_tag(key: str) -> bool:
    return key in _LAYOUT_KEYS or any(word in key for word in _LAYOUT_WORDS)


def encode_xmp_sidecar(path: Path, xmp: exiv2.XmpData) -> bytes:
    """Serialise XMP as a sidecar file, the way exiv2 (and so darktable and digiKam) write them."""
    flags = exiv2.XmpParser.XmpFormatFlags
    try:
        result = exiv2.XmpParser.encode(xmp, flags.omitPacketWrapper | flags.useCompactFormat)
    except exiv2.Exiv2Error as error:
        raise StorageError(path, f"could not encode XMP ({exiv2_reason(error)}).") from None
    code, packet = result
    if code != 0 or not packet:
        raise StorageError(path, f"could not encode XMP (XMP toolkit error {code}).")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + packet).encode("utf-8")
