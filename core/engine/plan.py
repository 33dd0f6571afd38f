"""What to do with each photo: a pure decision from its index row and its stored captions.

No threads, no files: the scan gathers the facts (``PhotoFacts``), ``plan`` decides. When the
decision needs captions the facts do not hold yet, ``plan`` asks for them (``ReadStores``) and
is called again with them, so each store of a photo is read at most once, and only when needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.engine.job import SkipReason
from core.index import IndexEntry
from core.storage import LOOKUP_ORDER, FileIdentity, StoreKind


@dataclass(frozen=True)
class Rules:
    """The parts of a job (and the model) that decide what happens to a photo."""

    target: StoreKind | None  # where captions are saved; None: caption and report only
    overwrite: bool = False  # replace captions this model (with these settings) did not write
    skip_captioned: bool = False  # leave photos with a caption in any store
    recaption: bool = False  # caption photos with a caption too (saved only with overwrite)
    model: str = ""  # caption_version of this run


@dataclass(frozen=True)
class PhotoFacts:
    """What is known about one photo when its turn comes."""

    path: Path
    identity: FileIdentity  # size and mtime as the scan found them
    row: IndexEntry | None = None  # its row in the index, if any
    row_store_present: bool = True  # the file the row says holds the caption is still there
    stored: Mapping[StoreKind, str | None] = field(default_factory=dict)  # read so far


@dataclass(frozen=True)
class ReadStores:
    """The decision needs what these stores hold: read them and plan again."""

    kinds: tuple[StoreKind, ...]


@dataclass(frozen=True)
class Caption:
    """Caption the photo; ``overwrite`` lets the save replace the caption stored now."""

    path: Path
    overwrite: bool


@dataclass(frozen=True, kw_only=True)
class Skip:
    """Leave the photo alone; ``record`` is a row for the index (a caption found in a store)."""

    path: Path
    reason: SkipReason
    caption: str | None
    store: StoreKind | None
    record: IndexEntry | None = None
    confidence: float | None = None  # the model's confidence in ``caption``, when the index knows


Decision = Caption | Skip | ReadStores


def plan(facts: PhotoFacts, rules: Rules) -> Decision:
    """Decide what to do with one photo (see the module docstring)."""
    path, row, stored = facts.path, facts.row, facts.stored
    target = rules.target
    if target is None:  # caption and print only
        if rules.skip_captioned:
            if missing := _missing(stored, LOOKUP_ORDER):
                return ReadStores(missing)
            if (found := first_caption(stored)) is not None:
                return Skip(path=path, reason="has_caption", caption=found[1], store=found[0])
        return Caption(path, overwrite=False)
    if (
        row is not None
        and row.status == "done"
        and row.same_file(facts.identity.size, facts.identity.mtime_ns)
        and facts.row_store_present
    ):
        if rules.recaption and not rules.overwrite:
            return Caption(path, overwrite=False)  # a suggestion; the caption stored stays
        done = Skip(
            path=path,
            reason="done",
            caption=row.caption,
            store=row.store,
            confidence=row.confidence,
        )
        if not rules.overwrite:
            return done
        if row.model == rules.model:
            if target not in stored:
                return ReadStores((target,))
            if stored[target] == row.caption:
                return done
        return Caption(path, overwrite=True)
    if rules.skip_captioned:
        if missing := _missing(stored, LOOKUP_ORDER):
            return ReadStores(missing)
        if (found := first_caption(stored)) is not None:
            return adopt(facts, found[1], found[0])
    if target not in stored:
        return ReadStores((target,))
    held = stored[target]
    if held is None:
        return Caption(path, overwrite=False)
    ours = row is not None and row.model is not None and row.store == target and row.caption == held
    if ours and row is not None and row.status == "pending":
        # A run stopped between saving this caption and recording it: record it now.
        if rules.overwrite and row.model != rules.model:
            return Caption(path, overwrite=True)
        return adopt(facts, held, target)
    if ours or rules.overwrite:  # ours, of a photo changed since; or replacing on request
        return Caption(path, overwrite=True)
    if rules.recaption:
        return Caption(path, overwrite=False)  # a suggestion beside the caption that stays
    return adopt(facts, held, target)


def adopt(facts: PhotoFacts, caption: str, store: StoreKind) -> Skip:
    """Skip a photo whose caption was found in ``store``, recording it in the index."""
    record = adopted_row(facts, caption, store)
    return Skip(
        path=facts.path,
        reason="has_caption",
        caption=caption,
        store=store,
        record=record,
        confidence=record.confidence,
    )


def adopted_row(facts: PhotoFacts, caption: str, store: StoreKind) -> IndexEntry:
    """The index row for a caption found in a store; the model and its confidence are kept
    only when the row already held this very caption (then this model wrote it)."""
    row = facts.row
    same = row is not None and row.caption == caption
    model = row.model if same and row is not None else None
    confidence = row.confidence if same and row is not None else None
    alternatives = row.alternatives if same and row is not None else ()
    return IndexEntry(
        path=facts.path,
        size=facts.identity.size,
        mtime_ns=facts.identity.mtime_ns,
        status="done",
        caption=caption,
        store=store,
        store_path=None,
        model=model,
        confidence=confidence,
        alternatives=alternatives,
    )


def first_caption(stored: Mapping[StoreKind, str | None]) -> tuple[StoreKind, str] | None:
    """The first caption held, in LOOKUP_ORDER, with its store."""
    for kind in LOOKUP_ORDER:
        caption = stored.get(kind)
        if caption is not None:
            return kind, caption
    return None


def _missing(
    stored: Mapping[StoreKind, str | None], kinds: tuple[StoreKind, ...]
) -> tuple[StoreKind, ...]:
    return tuple(kind for kind in kinds if kind not in stored)
