"""The one table of caption stores: for each kind, its class, its name, its label and its rank.

Every list of stores reads this table: saving (make_store), looking a caption up (all_stores,
LOOKUP_ORDER), messages (STORE_NAMES) and the app's Settings (StoreInfo.label).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.storage.base import CaptionStore, StoreKind, XmpName
from core.storage.embedded import EmbeddedStore
from core.storage.txt import TextSidecarStore
from core.storage.xmp import XmpSidecarStore


@dataclass(frozen=True)
class StoreInfo:
    kind: StoreKind
    make: Callable[[XmpName], CaptionStore]  # the store, given the XMP sidecar naming
    name: str  # a noun phrase that reads right after "the" ("saved in the XMP sidecar")
    label: str  # how Settings offers it


# In the order captions are looked for: a caption inside the photo travels with it, so it
# wins; then the XMP sidecar other photo software writes; then the plain text sidecar.
STORES: tuple[StoreInfo, ...] = (
    StoreInfo(
        "embed",
        EmbeddedStore,
        "photo's embedded metadata",
        "Embedded in the photo (EXIF/IPTC/XMP; a sidecar for RAW and HEIC)",
    ),
    StoreInfo(
        "xmp",
        XmpSidecarStore,
        "XMP sidecar",
        "XMP sidecar (read by Lightroom, darktable, digiKam)",
    ),
    StoreInfo(
        "txt", lambda _xmp_name: TextSidecarStore(), "text sidecar", "Text sidecar (photo.txt)"
    ),
)

LOOKUP_ORDER: tuple[StoreKind, ...] = tuple(info.kind for info in STORES)
STORE_NAMES: dict[StoreKind, str] = {info.kind: info.name for info in STORES}


def store_info(kind: StoreKind) -> StoreInfo:
    for info in STORES:
        if info.kind == kind:
            return info
    choices = ", ".join(repr(info.kind) for info in STORES)
    raise ValueError(f"unknown caption store {kind!r}; choose {choices}")


def make_store(kind: StoreKind, xmp_name: XmpName = "photo.jpg.xmp") -> CaptionStore:
    """The store for ``kind``: "txt" (photo.txt), "xmp" (sidecar) or "embed" (in the photo).

    ``xmp_name`` picks the XMP sidecar name, "photo.jpg.xmp" (darktable, digiKam) or
    "photo.xmp" (Lightroom); it also names the sidecar "embed" falls back to for HEIC and RAW.
    """
    return store_info(kind).make(xmp_name)


def all_stores(xmp_name: XmpName = "photo.jpg.xmp") -> list[CaptionStore]:
    """Every store, in the order captions are looked for (LOOKUP_ORDER)."""
    return [info.make(xmp_name) for info in STORES]
