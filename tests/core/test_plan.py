"""The plan: what happens to each photo, decided from its index row and stored captions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from core.engine.plan import (
    Caption,
    PhotoFacts,
    ReadStores,
    Rules,
    Skip,
    plan,
)
from core.index import IndexEntry
from core.storage import LOOKUP_ORDER, FileIdentity

PHOTO = Path("/photos/a.jpg")
NOW = FileIdentity(100, 5)
MODEL = "b0-abc beam=3"


def row(status="done", caption="ours", store="txt", model=MODEL, size=100, mtime=5):
    return IndexEntry(
        path=PHOTO,
        size=size,
        mtime_ns=mtime,
        status=status,
        caption=caption,
        store=store,
        store_path=None,
        model=model,
    )


TXT = Rules("txt", model=MODEL)
OVERWRITE = Rules("txt", overwrite=True, model=MODEL)
SKIP_ANY = Rules("txt", skip_captioned=True, model=MODEL)
RECAPTION = Rules("txt", recaption=True, model=MODEL)
PRINT_ONLY = Rules(None, model=MODEL)
PRINT_SKIP_ANY = Rules(None, skip_captioned=True, model=MODEL)

CASES = [
    # (name, rules, row, store file still there, stored captions, expected decision)
    ("new photo, nothing read yet", TXT, None, True, {}, ReadStores(("txt",))),
    ("new photo, no caption", TXT, None, True, {"txt": None}, Caption(PHOTO, False)),
    ("done before", TXT, row(), True, {}, Skip(path=PHOTO, reason="done", caption="ours", store="txt")),
    ("done, then changed on disk", TXT, row(size=1), True, {"txt": "ours"},
     Caption(PHOTO, True)),
    ("done, sidecar deleted by hand", TXT, row(), False, {"txt": None}, Caption(PHOTO, False)),
    ("done, overwrite, same model: reads", OVERWRITE, row(), True, {}, ReadStores(("txt",))),
    ("done, overwrite, same model and text", OVERWRITE, row(), True, {"txt": "ours"},
     Skip(path=PHOTO, reason="done", caption="ours", store="txt")),
    ("done, overwrite, other model", OVERWRITE, row(model="old"), True, {},
     Caption(PHOTO, True)),
    ("someone else's caption is kept", TXT, None, True, {"txt": "theirs"},
     "adopt:txt:theirs"),
    ("someone else's caption, overwrite", OVERWRITE, None, True, {"txt": "theirs"},
     Caption(PHOTO, True)),
    ("pending: saved but not recorded", TXT, row("pending"), True, {"txt": "ours"},
     "adopt:txt:ours"),
    ("pending, nothing saved", TXT, row("pending"), True, {"txt": None}, Caption(PHOTO, False)),
    ("skip captioned reads every store", SKIP_ANY, None, True, {"txt": None},
     ReadStores(("embed", "xmp"))),
    ("skip captioned, embedded caption", SKIP_ANY, None, True,
     {"embed": "camera", "xmp": None, "txt": None}, "adopt:embed:camera"),
    ("recaption: done before, a suggestion", RECAPTION, row(), True, {}, Caption(PHOTO, False)),
    ("recaption: someone else's caption stays", RECAPTION, None, True, {"txt": "theirs"},
     Caption(PHOTO, False)),
    ("print only", PRINT_ONLY, None, True, {}, Caption(PHOTO, False)),
    ("print only, skip captioned", PRINT_SKIP_ANY, None, True,
     {"embed": None, "xmp": "x", "txt": "t"}, Skip(path=PHOTO, reason="has_caption", caption="x", store="xmp")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rules", "index_row", "present", "stored", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_plan(rules, index_row, present, stored, expected) -> None:
    decision = plan(PhotoFacts(PHOTO, NOW, index_row, present, stored), rules)
    if isinstance(expected, str):  # an adoption: skipped, and the caption found is recorded
        _, store, caption = expected.split(":")
        assert isinstance(decision, Skip) and decision.reason == "has_caption"
        assert (decision.store, decision.caption) == (store, caption)
        assert decision.record is not None
        assert (decision.record.status, decision.record.caption) == ("done", caption)
        assert (decision.record.size, decision.record.mtime_ns) == (NOW.size, NOW.mtime_ns)
        keeps_model = index_row is not None and index_row.caption == caption
        assert decision.record.model == (MODEL if keeps_model else None)
    else:
        assert decision == expected


def test_each_store_is_asked_for_once() -> None:
    """Planning again with what was asked for always ends in a decision."""
    for rules in (TXT, OVERWRITE, SKIP_ANY, RECAPTION, PRINT_SKIP_ANY):
        for index_row in (None, row(), row("pending"), row(model="old")):
            stored: dict = {}
            asked: list[str] = []
            decision = plan(PhotoFacts(PHOTO, NOW, index_row, True, stored), rules)
            while isinstance(decision, ReadStores):
                assert not set(decision.kinds) & set(asked), "asked twice"
                asked.extend(decision.kinds)
                stored.update({kind: None for kind in decision.kinds})
                decision = plan(PhotoFacts(PHOTO, NOW, index_row, True, stored), rules)
            assert set(asked) <= set(LOOKUP_ORDER)


def test_the_confidence_recorded_with_a_caption_stays_with_it() -> None:
    """A skip reports the confidence the index holds; a caption adopted from a store keeps it
    only when it is the very caption the index recorded it for."""
    sure = replace(row(), confidence=0.3)
    skip = plan(PhotoFacts(PHOTO, NOW, sure), TXT)
    assert isinstance(skip, Skip) and skip.confidence == 0.3

    pending = replace(row(status="pending"), confidence=0.3)
    adopted = plan(PhotoFacts(PHOTO, NOW, pending, stored={"txt": "ours"}), TXT)
    assert isinstance(adopted, Skip) and adopted.record is not None
    assert adopted.confidence == adopted.record.confidence == 0.3

    other = replace(row(caption="someone else's"), confidence=0.3, size=1)  # photo changed
    found = plan(PhotoFacts(PHOTO, NOW, other, stored={"txt": "typed by hand"}), TXT)
    assert isinstance(found, Skip) and found.record is not None
    assert found.confidence is None and found.record.confidence is None
