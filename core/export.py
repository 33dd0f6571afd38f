"""Export the captions already stored for a folder's photos as CSV, JSON, JSON Lines or HF."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from core.datatypes import EXPORT_FORMATS, ExportFormat
from core.errors import LibraryIndexError, StorageError
from core.index import LibraryIndex, default_index_path
from core.library import find_photos
from core.storage import CaptionStore, StoredCaption, all_stores, read_caption_any
from core.storage.files import atomic_write, ensure_writable

log = logging.getLogger(__name__)

HF_METADATA_NAME = "metadata.jsonl"
"""The file name Hugging Face ImageFolder looks for in the dataset folder."""

# A file name that is not valid UTF-8 reaches Python as os.fsdecode gives it: each byte that
# is not UTF-8 becomes a lone surrogate U+DC80..U+DCFF (PEP 383, "surrogateescape").
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def export_captions(
    folder: Path,
    *,
    recursive: bool,
    fmt: ExportFormat,
    out: TextIO | Path,
    bom: bool = False,
    stores: Sequence[CaptionStore] | None = None,
    index_path: Path | None = None,
) -> int:
    """Write the captions stored for the photos under ``folder``; return how many.

    Each record has the photo's path relative to ``folder`` with "/" separators, the caption,
    the name of the store it came from, the model's confidence in it (empty or null when a
    person wrote it, or the caption is not the one the library index recorded) and whether it
    was reviewed (written or changed by a person in PhotoScribe). The last two come from the
    library index (``index_path``; None: the default one); without an index they are empty.

    - "csv": RFC 4180 (CRLF line ends, quoted as needed), header
      ``file_name,caption,store,confidence,reviewed``; ``bom`` puts a UTF-8 byte-order mark
      first so Excel reads it as UTF-8.
    - "json": one array of ``{"file_name", "caption", "store", "confidence", "reviewed"}``.
    - "jsonl": one such object per line.
    - "hf": Hugging Face ImageFolder's metadata.jsonl: ``{"file_name", "text", "store",
      "confidence"}`` per line; save it as ``folder/metadata.jsonl``.

    ``out`` is a path, written atomically as UTF-8, or an open text stream (open files with
    ``newline=""`` so CSV line ends stay CRLF). ``stores`` defaults to all_stores(). Photos
    without a caption are left out; one that cannot be read is logged and skipped.

    A file name that is not valid UTF-8 (a Latin-1 name from an old camera or archive) is
    exported as the file system has it: in CSV as its own bytes (read the file with Python's
    ``errors="surrogateescape"`` to get a name ``open()`` accepts); in JSON, JSON Lines and
    metadata.jsonl each byte that is not UTF-8 is the escape ``\\udcXX`` (XX the byte), which
    keeps the file valid UTF-8 and which ``json.loads`` turns into the name Python's
    ``open()`` and ``os.fsencode`` take (b"caf\\xe9.jpg" is "caf\\udce9.jpg"). Raises ValueError
    for an unknown ``fmt`` or ``bom`` outside CSV, and StorageError when ``folder`` is missing
    or ``out`` cannot be written.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    if bom and fmt != "csv":
        raise ValueError("a byte-order mark is only for CSV; JSON must not start with one")
    chosen = list(stores) if stores is not None else all_stores()
    with _open_index(index_path) as index:
        records = [_with_provenance(r, index) for r in _records(folder, recursive, chosen)]
    text = _render(records, fmt)
    if bom:
        text = "\ufeff" + text
    if isinstance(out, Path):
        ensure_writable(out)
        atomic_write(out, text.encode("utf-8", "surrogateescape"))
    else:
        _write_stream(out, text)
    log.info("Exported %d captions from %s as %s", len(records), folder, fmt)
    return len(records)


@dataclass(frozen=True)
class _Record:
    file_name: str  # relative to the folder exported, "/" separators
    photo: Path
    found: StoredCaption
    confidence: float | None = None  # the model's, when the model wrote this very caption
    reviewed: bool = False  # written or changed by a person in PhotoScribe


@contextlib.contextmanager
def _open_index(index_path: Path | None) -> Iterator[LibraryIndex | None]:
    """The library index, read-only, or None when there is none (captions made elsewhere)."""
    path = index_path if index_path is not None else default_index_path()
    if not path.is_file():
        yield None
        return
    try:
        index = LibraryIndex.open(path, readonly=True, timeout=5)
    except LibraryIndexError as error:
        log.warning("Exporting without confidences: %s", error)
        yield None
        return
    try:
        yield index
    finally:
        index.close()


def _with_provenance(record: _Record, index: LibraryIndex | None) -> _Record:
    entry = index.lookup(record.photo) if index is not None else None
    if entry is None or entry.caption != record.found.caption:
        return record  # not what PhotoScribe recorded: it knows nothing of this caption
    if entry.model is None:
        return replace(record, reviewed=True)
    return replace(record, confidence=entry.confidence)


def _records(folder: Path, recursive: bool, stores: list[CaptionStore]) -> Iterator[_Record]:
    folder = Path(os.path.abspath(folder))  # as the scan names its photos: "." works too
    for photo in find_photos(folder, recursive):
        relative = photo.relative_to(folder).as_posix()
        try:
            found = read_caption_any(photo, stores)
        except StorageError as error:
            log.warning("Skipping %s: %s", photo, error)
            continue
        if found is not None:
            yield _Record(relative, photo, found)


def _render(records: list[_Record], fmt: ExportFormat) -> str:
    if fmt == "csv":
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["file_name", "caption", "store", "confidence", "reviewed"])
        for r in records:
            confidence = "" if r.confidence is None else f"{r.confidence:.3f}"
            reviewed = "true" if r.reviewed else "false"
            writer.writerow([r.file_name, r.found.caption, r.found.store, confidence, reviewed])
        return buffer.getvalue()
    if fmt == "hf":
        rows = [
            {
                "file_name": r.file_name,
                "text": r.found.caption,
                "store": r.found.store,
                "confidence": _rounded(r.confidence),
            }
            for r in records
        ]
    else:
        rows = [
            {
                "file_name": r.file_name,
                "caption": r.found.caption,
                "store": r.found.store,
                "confidence": _rounded(r.confidence),
                "reviewed": r.reviewed,
            }
            for r in records
        ]
    if fmt == "json":
        return _json(rows, indent=2) + "\n"
    return "".join(_json(row) + "\n" for row in rows)


def _json(value: object, indent: int | None = None) -> str:
    """JSON text, UTF-8 as it is, with each byte of a file name that is not UTF-8 (a lone
    surrogate, which no UTF-8 file can hold) as its escape \\udcXX: still valid JSON."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _write_stream(out: TextIO, text: str) -> None:
    """Write to an open stream; a CSV naming a file whose name is not UTF-8 goes to a byte
    stream underneath (stdout) with that name's own bytes, as it does into a file."""
    buffer = getattr(out, "buffer", None)
    if buffer is not None and _SURROGATE.search(text):
        out.flush()
        buffer.write(text.encode(getattr(out, "encoding", None) or "utf-8", "surrogateescape"))
        buffer.flush()
    else:
        out.write(text)
    out.flush()


def _rounded(confidence: float | None) -> float | None:
    return None if confidence is None else round(confidence, 3)
