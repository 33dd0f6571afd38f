"""Saving one caption: the chosen store first, then every other store that held an older one."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from core.datatypes import CaptionResult
from core.errors import StorageError
from core.storage.base import StoreKind, WriteResult, XmpName, clean_caption
from core.storage.files import FileIdentity
from core.storage.registry import STORE_NAMES, all_stores, make_store

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SaveRequest:
    """A snapshot of one caption to save: the text, where, and the photo we expect to find."""

    photo: Path
    caption: str
    store: StoreKind
    xmp_name: XmpName = "photo.jpg.xmp"
    overwrite: bool = False  # replace a different caption (and bring other stores up to date)
    expected: FileIdentity | None = None  # the photo when its caption was read or made
    model: str | None = None  # the model that wrote it (recorded in the index); None: typed
    confidence: float | None = None  # the model's confidence (recorded in the index); None: typed
    # The model's result this caption came from (engine runs): it travels through the writer
    # and comes back with the outcome, so the run loop reports score and candidates with it.
    made: CaptionResult | None = None


def save_caption(request: SaveRequest) -> WriteResult:
    """Store the caption in ``request.store``; with ``overwrite``, also update the others.

    A store that already held a different caption of the photo is brought to the same text
    (never left stale, never deleted), so no two stores of one photo disagree. Raises like
    CaptionStore.write for the chosen store; a store that cannot be brought up to date is named
    in the result's message instead, since the caption itself was saved.
    """
    store = make_store(request.store, request.xmp_name)
    result = store.write(
        request.photo, request.caption, expected=request.expected, overwrite=request.overwrite
    )
    if not request.overwrite:
        return result
    return _update_other_stores(request, result)


def _update_other_stores(request: SaveRequest, result: WriteResult) -> WriteResult:
    text = clean_caption(request.photo, request.caption)
    identity = result.photo_identity
    notes = [result.message] if result.message else []
    for other in all_stores(request.xmp_name):
        if other.name == request.store or result.path in other.files(request.photo):
            continue  # the store just written (an embed that fell back to the XMP sidecar)
        try:
            held = other.read(request.photo)
            if held is None or held == text:
                continue
            written = other.write(request.photo, text, expected=identity, overwrite=True)
        except StorageError as error:
            log.warning("Older caption of %s left in the %s: %s", request.photo, other.name, error)
            notes.append(
                f"the {STORE_NAMES[other.name]} still holds an older caption ({error.problem})"
            )
            continue
        log.info("Brought the %s caption of %s up to date", other.name, request.photo)
        identity = written.photo_identity or identity
        notes.append(f"the {STORE_NAMES[other.name]} was updated to the same caption.")
    return replace(result, message=" ".join(notes), photo_identity=identity)
