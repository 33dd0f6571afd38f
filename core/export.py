"""Export the captions already stored for a folder's photos as CSV, JSON, JSON Lines or HF."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from core.datatypes import EXPORT_FORMATS, ExportFormat
from core.errors import StorageError
from core.library import find_photos
from core.storage import CaptionStore, StoredCaption, all_stores, read_caption_any
from core.storage.files import atomic_write, ensure_writable

log = logging.getLogger(__name__)

HF_METADATA_NAME = "metadata.jsonl"
"""The file name Hugging Face ImageFolder looks for in the dataset folder."""


def export_captions(
    folder: Path,
    *,
    recursive: bool,
    fmt: ExportFormat,
    out: TextIO | Path,
    bom: bool = False,
    stores: Sequence[CaptionStore] | None = None,
) -> int:
    """Write the captions stored for the photos under ``folder``; return how many.

    Each record has the photo's path relative to ``folder`` with "/" separators, the caption
    and the name of the store it came from:

    - "csv": RFC 4180 (CRLF line ends, quoted as needed), header ``file_name,caption,store``;
      ``bom`` puts a UTF-8 byte-order mark first so Excel reads it as UTF-8.
    - "json": one array of ``{"file_name", "caption", "store"}`` objects.
    - "jsonl": one such object per line.
    - "hf": Hugging Face ImageFolder's metadata.jsonl: ``{"file_name", "text", "store"}`` per
      line; save it as ``folder/metadata.jsonl``.

    ``out`` is a path, written atomically as UTF-8, or an open text stream (open files with
    ``newline=""`` so CSV line ends stay CRLF). ``stores`` defaults to all_stores(). Photos
    without a caption are left out; one that cannot be read, or whose name is not valid UTF-8,
    is logged and skipped. Raises ValueError for an unknown ``fmt`` or ``bom`` outside CSV,
    and StorageError when ``folder`` is missing or ``out`` cannot be written.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    if bom and fmt != "csv":
        raise ValueError("a byte-order mark is only for CSV; JSON must not start with one")
    chosen = list(stores) if stores is not None else all_stores()
    records = list(_records(folder, recursive, chosen))
    text = _render(records, fmt)
    if bom:
        text = "\ufeff" + text
    if isinstance(out, Path):
        ensure_writable(out)
        atomic_write(out, text.encode("utf-8"))
    else:
        out.write(text)
        out.flush()
    log.info("Exported %d captions from %s as %s", len(records), folder, fmt)
    return len(records)


def _records(
    folder: Path, recursive: bool, stores: list[CaptionStore]
) -> Iterator[tuple[str, StoredCaption]]:
    folder = Path(os.path.abspath(folder))  # as the scan names its photos: "." works too
    for photo in find_photos(folder, recursive):
        relative = photo.relative_to(folder).as_posix()
        try:
            relative.encode("utf-8")
        except UnicodeEncodeError:
            log.warning("Skipping %r: its name is not valid UTF-8, so no export can name it", photo)
            continue
        try:
            found = read_caption_any(photo, stores)
        except StorageError as error:
            log.warning("Skipping %s: %s", photo, error)
            continue
        if found is not None:
            yield relative, found


def _render(records: list[tuple[str, StoredCaption]], fmt: ExportFormat) -> str:
    if fmt == "csv":
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["file_name", "caption", "store"])
        for file_name, found in records:
            writer.writerow([file_name, found.caption, found.store])
        return buffer.getvalue()
    text_key = "text" if fmt == "hf" else "caption"
    rows = [
        {"file_name": file_name, text_key: found.caption, "store": found.store}
        for file_name, found in records
    ]
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
