"""What a file that is not a photo looks like, so a message can say what is wrong with it."""

from __future__ import annotations

from pathlib import Path

# Signatures of common files that are not photos, with what to call them.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg audio or video file"),
    (b"RIFF", "a RIFF file (audio or video)"),
)


def describe_non_image(head: bytes) -> str:
    """Why ``head`` (a file's first bytes) is not a photo, in words: "the file is empty",
    "not an image (it looks like text)", ..., or a general "not an image" when unknown."""
    if not head:
        return "the file is empty (0 bytes)"
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return f"not an image (it looks like {name})"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text[:1] == b"<" and b"html" in text[:256].lower():
        return "not an image (it looks like a web page)"
    if looks_like_text(head):
        return "not an image (it looks like text)"
    return "not an image, or an image format PhotoScribe cannot read"


def looks_like_text(head: bytes) -> bool:
    """UTF-8 (or ASCII) with no control characters but tabs and line ends."""
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # not just a character cut at the end of the sample
            return False
        decoded = head[: error.start].decode("utf-8")
    return bool(decoded) and all(c.isprintable() or c in "\t\r\n\f" for c in decoded)


def read_head(path: Path, size: int = 512) -> bytes:
    """The first bytes of ``path`` (empty when it cannot be read)."""
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError:
        return b""
