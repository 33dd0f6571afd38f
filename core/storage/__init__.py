"""Caption storage that other photo software reads: text sidecars, XMP sidecars, embedded.

Typical use::

    identity = FileIdentity.of(photo)  # when the photo is read for captioning
    result = save_caption(SaveRequest(photo, caption, "embed", expected=identity))
    found = read_caption_any(photo, all_stores())  # StoredCaption or None

Every write is atomic and checked; every failure is a core.errors.StorageError subclass that
names the file and leaves it untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from core.errors import FileMissingError, StorageError
from core.storage.base import (
    MAX_CAPTION_CHARS,
    CaptionStore,
    StoredCaption,
    StoreKind,
    WriteResult,
    XmpName,
)
from core.storage.embedded import EMBED_EXTENSIONS, EmbeddedStore
from core.storage.files import FileIdentity
from core.storage.registry import (
    LOOKUP_ORDER,
    STORE_NAMES,
    STORES,
    all_stores,
    make_store,
    store_info,
)
from core.storage.save import SaveRequest, save_caption
from core.storage.txt import TextSidecarStore
from core.storage.xmp import XmpSidecarStore

log = logging.getLogger(__name__)

__all__ = [
    "LOOKUP_ORDER",
    "EMBED_EXTENSIONS",
    "MAX_CAPTION_CHARS",
    "CaptionStore",
    "EmbeddedStore",
    "FileIdentity",
    "STORES",
    "STORE_NAMES",
    "SaveRequest",
    "StoreKind",
    "StoredCaption",
    "TextSidecarStore",
    "WriteResult",
    "XmpName",
    "XmpSidecarStore",
    "all_stores",
    "make_store",
    "read_caption_any",
    "save_caption",
    "store_info",
]


def read_caption_any(photo: Path, stores: Sequence[CaptionStore]) -> StoredCaption | None:
    """The first caption any of ``stores`` holds for ``photo``, with the store's name.

    A store that cannot be read (a damaged sidecar, an unsupported file) is logged and
    skipped; its error is raised only when no other store has a caption. A missing photo
    raises FileMissingError.
    """
    if not photo.is_file():
        raise FileMissingError(
            photo, "the photo is no longer there; it may have been moved, renamed or deleted."
        )
    first_error: StorageError | None = None
    for store in stores:
        try:
            caption = store.read(photo)
        except StorageError as error:
            log.warning("Could not read the %s caption of %s: %s", store.name, photo, error)
            first_error = first_error or error
            continue
        if caption is not None:
            return StoredCaption(caption, store.name)
    if first_error is not None:
        raise first_error
    return None
