"""Text cameras and their software put where a caption goes, which describes nothing.

Cameras fill EXIF ImageDescription (and software copies it into XMP and IPTC) with their name
("OLYMPUS DIGITAL CAMERA"), a file name ("DSC00019"), a number ("000015"), a standard's
name ("DCF 1.0") or "null". gThumb, PhotoPrism and KPhotoAlbum treat such text as no caption;
so does PhotoScribe: such photos are captioned, and the text is replaced, as if it were empty.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Words of camera makers, product lines and camera defaults. A text made only of these,
# of model numbers and of numbers names the camera, not the picture. Makers whose names are
# also ordinary words (Sharp, Concord, Pixel, Genius) are left out: "Concord" may be a caption.
_CAMERA_WORDS = frozenset(
    """
    agfa aiptek benq canon casio contax coolpix cybershot dimage dji easyshare epson exilim
    finepix fuji fujifilm gopro hasselblad huawei hewlett packard hp ixus ixy kenox kodak konica
    kyocera leica lg lumix mamiya medion minolta motorola mustek nikon nokia olympus oneplus optio
    panasonic pentax polaroid powershot praktica ricoh rollei samsung sanyo sigma sony techwin
    toshiba traveler vivitar xiaomi yakumo camedia photosmart ge dcim
    digital camera cam still dsc dcf picture pic photo image img video action mobile phone
    imaging company corporation corp ltd co inc optical electric jpeg jpg exif default null none
    unknown untitled nil description caption no title file version
    """.split()
)

# Numbering and file names cameras give pictures: DSC00019, IMG_1234, P1010001, _MG_1234.
_FILE_PREFIX = re.compile(
    r"^(?:img|dsc|dscn|dscf|dcp|dscp|pict|cimg|imgp|sam|sdc|mvi|gopr|gp|pxl|hpim|kif|pdrm|dig|"
    r"dji|mg|p|pano|photo|image|pic|picture|scan|vid|wp|cam|sdim|r|l|k|s)\d+[a-z]?$"
)
_PHOTO_FILE = re.compile(
    r"\b[\w\-]+\.(?:jpe?g|tiff?|png|heic|heif|dng|nef|cr2|cr3|arw|orf|rw2|raf|pef|srw)\b",
    re.IGNORECASE,
)
# "Dateiname : DSCN1767.JPG", "File name: IMG_1234.JPG": a label, then the file's name.
_FILE_LABEL = re.compile(
    r"^\s*(?:dateiname|file\s*name|filename|nom\s+du\s+fichier|nombre\s+de\s+archivo|"
    r"nome\s+file|bestandsnaam)\s*:",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def camera_tokens(make: str | None, model: str | None) -> frozenset[str]:
    """The words of the camera's own make and model, lower case."""
    words: set[str] = set()
    for value in (make, model):
        if value:
            words.update(t.casefold() for t in _TOKEN.findall(value))
    return frozenset(words)


def is_placeholder(text: str | None, camera: Iterable[str] = ()) -> bool:
    """True when ``text`` describes nothing: empty, a camera default, the camera's make and
    model (``camera``, as camera_tokens gives them), a file name or a number."""
    if text is None:
        return True
    flat = " ".join(text.split())
    if not flat:
        return True
    if _FILE_LABEL.match(flat):
        return True
    known = _CAMERA_WORDS | frozenset(camera)
    rest = _PHOTO_FILE.sub(" ", flat)
    tokens = _TOKEN.findall(rest)
    if not tokens:  # emoji say something; dashes and dots do not
        return not any(unicodedata.category(c) == "So" for c in flat)
    return all(_is_noise(token, known) for token in tokens)


def _is_noise(token: str, known: frozenset[str]) -> bool:
    lower = token.casefold()
    if lower in known or token.isdigit():
        return True
    if any(c.isdigit() for c in token):
        # Model numbers and serials are upper case (S730, M2E1L0, 0R336B386); a word with
        # digits in lower case ("Paris2019", "2nd") may be someone's caption.
        return not any(c.islower() for c in token) or bool(_FILE_PREFIX.match(lower))
    return False
