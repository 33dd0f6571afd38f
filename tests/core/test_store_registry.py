"""The one table of caption stores, which every list of stores reads."""

from __future__ import annotations

from typing import get_args

import pytest

from core.datatypes import StoreKind
from core.storage import LOOKUP_ORDER, STORE_NAMES, STORES, all_stores, make_store, store_info


def test_every_store_kind_is_in_the_table_once() -> None:
    assert sorted(info.kind for info in STORES) == sorted(get_args(StoreKind))
    assert LOOKUP_ORDER == ("embed", "xmp", "txt"), "a caption inside the photo counts first"
    assert list(STORE_NAMES) == list(LOOKUP_ORDER)


@pytest.mark.parametrize("xmp_name", ["photo.jpg.xmp", "photo.xmp"])
def test_stores_are_made_from_the_table(xmp_name) -> None:
    assert [s.name for s in all_stores(xmp_name)] == list(LOOKUP_ORDER)
    for kind in LOOKUP_ORDER:
        store = make_store(kind, xmp_name)
        assert store.name == kind
        if hasattr(store, "xmp_name"):
            assert store.xmp_name == xmp_name
    with pytest.raises(ValueError, match="unknown caption store 'floppy'"):
        store_info("floppy")  # type: ignore[arg-type]
