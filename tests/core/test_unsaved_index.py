"""Captions that could not be saved are kept in the library index until saved (issue 27)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import core.engine.writer as writer_module
from core.engine import Writer
from core.engine.upkeep import prune_missing
from core.errors import ReadOnlyError
from core.index import LibraryIndex
from core.storage import FileIdentity, SaveRequest


@pytest.fixture
def refuse(monkeypatch):
    """Saves of photos in the returned set fail as in a read-only folder."""
    refused: set[Path] = set()
    real = writer_module.save_caption

    def save(request):
        if request.photo in refused:
            raise ReadOnlyError(request.photo, "not allowed to write here.")
        return real(request)

    monkeypatch.setattr(writer_module, "save_caption", save)
    return refused


def kept(index_path: Path) -> dict[str, tuple[str, bool]]:
    with LibraryIndex.open(index_path, readonly=True) as index:
        return {k.path.name: (k.caption, k.typed) for k in index.unsaved_entries()}


def generated(photo: Path, caption: str) -> SaveRequest:
    return SaveRequest(
        photo=photo, caption=caption, store="txt", expected=FileIdentity.of(photo), model="m1"
    )


def test_failed_saves_are_kept_and_a_later_save_forgets_them(tmp_path, refuse):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"\xff\xd8not really")
    index_path = tmp_path / "index.db"
    writer = Writer(index_path)
    try:
        refuse.add(photo)
        [outcome] = writer.save_batch([generated(photo, "a dog on a beach")]).result()
        assert not outcome.ok and outcome.problem == "ReadOnlyError"
        writer.flush()
        assert kept(index_path) == {"a.jpg": ("a dog on a beach", False)}

        # The user's own text replaces the generated one, and is kept when it fails too.
        assert (
            not writer.save(SaveRequest(photo=photo, caption="my dog Rex", store="txt")).result().ok
        )
        assert kept(index_path) == {"a.jpg": ("my dog Rex", True)}
        # A generated caption that fails again never replaces what the user typed...
        writer.save_batch([generated(photo, "a dog")]).result()
        writer.flush()
        assert kept(index_path) == {"a.jpg": ("my dog Rex", True)}
        # ...nor does one saved later make it forgotten.
        refuse.clear()
        assert writer.save_batch([generated(photo, "a dog")]).result()[0].ok
        writer.flush()
        assert kept(index_path) == {"a.jpg": ("my dog Rex", True)}
        # Saved by the user: forgotten.
        assert (
            writer.save(SaveRequest(photo=photo, caption="my dog Rex", store="txt", overwrite=True))
            .result()
            .ok
        )
        assert kept(index_path) == {}
    finally:
        writer.close()


def test_discarded_or_gone_photos_are_forgotten(tmp_path, refuse):
    photos = [tmp_path / f"p{i}.jpg" for i in range(3)]
    for photo in photos:
        photo.write_bytes(b"x")
        refuse.add(photo)
    index_path = tmp_path / "index.db"
    writer = Writer(index_path)
    try:
        writer.save_batch([generated(p, f"caption {p.stem}") for p in photos]).result()
        writer.flush()
        assert set(kept(index_path)) == {"p0.jpg", "p1.jpg", "p2.jpg"}
        writer.discard_unsaved([photos[0]]).result()
        photos[1].unlink()
        writer.with_index(lambda index: prune_missing(index, (tmp_path,), True)).result()
        assert set(kept(index_path)) == {"p2.jpg"}
    finally:
        writer.close()


def test_an_older_index_is_upgraded_and_its_readers_find_nothing_kept(tmp_path):
    index_path = tmp_path / "index.db"
    with LibraryIndex.open(index_path) as index:
        index.commit()

    conn = sqlite3.connect(index_path)
    conn.execute("DROP TABLE unsaved")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with LibraryIndex.open(index_path, readonly=True) as reader:
        assert reader.unsaved_entries() == [] and reader.unsaved(tmp_path / "x.jpg") is None
    with LibraryIndex.open(index_path) as index:  # a writer adds the table
        assert index.unsaved_entries() == []
