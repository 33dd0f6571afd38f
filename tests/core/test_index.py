"""The library index: rows, transactions, search ranking, damaged and locked files."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from core.errors import IndexDamagedError, IndexLockedError, LibraryIndexError
from core.index import (
    IndexEntry,
    LibraryIndex,
    default_index_path,
    move_aside,
    query_terms,
    search_library,
)
from core.index_schema import SCHEMA_VERSION


def done(path: Path, caption: str, store: str = "txt") -> IndexEntry:
    return IndexEntry(
        path=path,
        size=10,
        mtime_ns=20,
        status="done",
        caption=caption,
        store=store,
        store_path=None,
        model="m1",
    )


@pytest.fixture
def index_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "library.sqlite3"


def test_rows_round_trip_and_commit_is_all_or_nothing(index_path: Path, tmp_path: Path) -> None:
    odd = tmp_path / os.fsdecode(b"caf\xe9 \xff.jpg")  # not UTF-8: must still round-trip
    with LibraryIndex.open(index_path) as index:
        index.put(done(odd, "a cat"))
        index.put(
            IndexEntry(
                path=tmp_path / "b.jpg", size=1, mtime_ns=2, status="failed", error="b.jpg: broken"
            )
        )
        assert index.lookup(odd) is None  # queued, not yet written
        index.commit()
        row = index.lookup(odd)
        assert row is not None and row.path == odd and row.caption == "a cat"
        assert row.same_file(10, 20) and not row.same_file(10, 21)
        assert index.count() == 2 and index.count("failed") == 1

        index.put(done(tmp_path / "c.jpg", "ok"))
        index.put(IndexEntry(path=tmp_path / "d.jpg", size=1, mtime_ns=2, status="bogus"))  # type: ignore[arg-type]
        with pytest.raises(LibraryIndexError, match="library.sqlite3"):
            index.commit()  # the CHECK constraint fails: nothing of the batch is written
        assert index.lookup(tmp_path / "c.jpg") is None
    with LibraryIndex.open(index_path, readonly=True) as reader:
        assert reader.count() == 2


def test_wal_lets_a_reader_see_commits_while_the_writer_is_open(index_path: Path) -> None:
    writer = LibraryIndex.open(index_path)
    reader = LibraryIndex.open(index_path, readonly=True)
    try:
        writer.put(done(Path("/p/a.jpg"), "a dog"))
        writer.commit()
        assert reader.lookup(Path("/p/a.jpg")) is not None
        mode = sqlite3.connect(index_path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    finally:
        reader.close()
        writer.close()


CAPTIONS = {
    "short.jpg": "a dog on the beach",
    "long.jpg": "a big brown dog running along the long sandy beach near the sea at sunset",
    "cat.jpg": "a cat sleeping on the beach",
    "park.jpg": "a dog in the park",
    "car.jpg": "a red car",
}


def fill(index_path: Path, folder: Path) -> None:
    with LibraryIndex.open(index_path) as index:
        for name, caption in CAPTIONS.items():
            index.put(done(folder / name, caption))
        index.put(
            IndexEntry(path=folder / "failed.jpg", size=1, mtime_ns=2, status="failed", error="x")
        )
        index.put(
            IndexEntry(
                path=folder / "pending.jpg",
                size=1,
                mtime_ns=2,
                status="pending",
                caption="a dog on a beach",
            )
        )
        index.commit()


def test_search_ranks_all_words_first_then_some(index_path: Path) -> None:
    fill(index_path, Path("/photolib"))
    with LibraryIndex.open(index_path, readonly=True) as index:
        names = [h.path.name for h in index.search("dog on a beach")]
        # both words: the focused caption first; then one of the words; never unrelated
        # photos, failed or pending rows
        assert names[:2] == ["short.jpg", "long.jpg"]
        assert set(names[2:]) == {"cat.jpg", "park.jpg"}
        assert [h.path.name for h in index.search("dog on a beach", limit=1)] == ["short.jpg"]
        assert [h.path.name for h in index.search("bea")] != []  # prefix while typing
        assert {h.path.name for h in index.search("dogs")} == {"short.jpg", "long.jpg", "park.jpg"}
        assert [h.path.name for h in index.search("car")] == ["car.jpg"]
        assert index.search("submarine") == [] and index.search("  ") == []
        assert index.search('dog" OR (beach*') != []  # query syntax in the words is just text


def test_search_within_a_folder_only(index_path: Path) -> None:
    fill(index_path, Path("/photolib/a"))
    with LibraryIndex.open(index_path) as index:
        index.put(done(Path("/photolib/ab/x.jpg"), "a dog on the beach"))  # a sibling, same prefix
        index.put(done(Path("/photolib/a/sub/y.jpg"), "a dog on the beach"))
        index.commit()
        inside = {h.path.as_posix() for h in index.search("dog beach", Path("/photolib/a"))}
        assert "/photolib/ab/x.jpg" not in inside and "/photolib/a/sub/y.jpg" in inside
        assert len(index.search("dog beach", Path("/photolib/ab"))) == 1
        assert len(index.search("dog beach")) == len(inside) + 1


def test_search_without_fts5_falls_back_to_substrings(index_path: Path) -> None:
    fill(index_path, Path("/photolib"))
    with LibraryIndex.open(index_path, readonly=True) as index:
        index.fts = False
        names = [h.path.name for h in index.search("dog beach")]
    assert names == ["short.jpg", "long.jpg"]


def test_query_terms_drop_common_words_unless_nothing_is_left() -> None:
    assert query_terms("A dog on the Beach!") == ["dog", "beach"]
    assert query_terms("on the") == ["on", "the"]


def test_search_library_skips_photos_that_are_gone(index_path: Path, tmp_path: Path) -> None:
    (tmp_path / "short.jpg").write_bytes(b"x")
    fill(index_path, tmp_path)
    hits = search_library("dog beach", None, 10, index_path)
    assert [h.path.name for h in hits] == ["short.jpg"]


def test_no_index_yet_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LibraryIndexError, match="no library index yet"):
        search_library("dog", None, 10, tmp_path / "none.sqlite3")


def test_damaged_file_is_a_clear_error_naming_it(index_path: Path) -> None:
    index_path.parent.mkdir(parents=True)
    index_path.write_bytes(b"this is not a database, it was overwritten " * 100)
    for readonly in (False, True):
        with pytest.raises(IndexDamagedError, match="library.sqlite3.*damaged") as info:
            LibraryIndex.open(index_path, readonly=readonly)
        assert info.value.path == index_path
    moved = move_aside(index_path)
    assert not index_path.exists() and moved.name.startswith("library.sqlite3.damaged-")
    LibraryIndex.open(index_path).close()  # a fresh one opens


def test_other_sqlite_file_is_not_taken_for_an_index(index_path: Path) -> None:
    index_path.parent.mkdir(parents=True)
    with sqlite3.connect(index_path) as conn:
        conn.execute("CREATE TABLE mine (x)")
    with pytest.raises(LibraryIndexError, match="not a PhotoScribe library index") as info:
        LibraryIndex.open(index_path)
    assert not isinstance(info.value, IndexDamagedError)  # so it is never moved aside


def test_locked_index_is_a_clear_error(index_path: Path) -> None:
    LibraryIndex.open(index_path).close()
    other = sqlite3.connect(index_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program writing
    try:
        with pytest.raises(IndexLockedError, match="library.sqlite3.*in use") as info:
            LibraryIndex.open(index_path, timeout=0.1)
        assert info.value.path == index_path
        with LibraryIndex.open(index_path, readonly=True) as reader:  # reading still works
            assert reader.count() == 0
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_default_path_honours_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PHOTOSCRIBE_INDEX", str(tmp_path / "x.sqlite3"))
    assert default_index_path() == tmp_path / "x.sqlite3"
    monkeypatch.delenv("PHOTOSCRIBE_INDEX")
    assert default_index_path().name == "library.sqlite3"
    assert "PhotoScribe" in str(default_index_path())


def test_two_spellings_of_one_photo_are_one_row(index_path: Path, tmp_path: Path) -> None:
    """Regression: the index keyed photos by the path as given, so a relative path or a link
    to the folder gave a second set of rows."""
    real = tmp_path / "photos"
    real.mkdir()
    (real / "a.jpg").write_bytes(b"")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    with LibraryIndex.open(index_path) as index:
        index.put(done(link / "a.jpg", "a dog on the beach"))
        index.commit()
        index.put(done(real / "sub" / ".." / "a.jpg", "a cat on a sofa"))
        index.commit()
        assert index.count() == 1
        row = index.lookup(link / "a.jpg")
        assert row is not None and row.caption == "a cat on a sofa" and row.path == real / "a.jpg"
    hits = search_library("cat", link, 10, index_path)
    assert [hit.path for hit in hits] == [link / "a.jpg"], "spelled as the folder asked for"


# ---------------------------------------------------------------- confidence (issue 10)

V1_SCHEMA = """
CREATE TABLE photos (
    id INTEGER PRIMARY KEY, path BLOB NOT NULL UNIQUE, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'pending', 'failed')),
    caption TEXT, store TEXT, store_path BLOB, model TEXT, error TEXT, updated REAL NOT NULL
);
PRAGMA user_version = 1;
"""


def make_v1_index(path: Path, photo: Path, caption: str) -> None:
    """An index file as PhotoScribe wrote it before captions had a confidence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute(
        "INSERT INTO photos (path, size, mtime_ns, status, caption, store, store_path, model, "
        "error, updated) VALUES (?, 10, 20, 'done', ?, 'txt', NULL, 'm1', NULL, 1.0)",
        (os.fsencode(photo.resolve()), caption),
    )
    conn.commit()
    conn.close()


def test_confidence_round_trips_and_search_carries_it(index_path: Path, tmp_path: Path) -> None:
    sure, typed = tmp_path / "sure.jpg", tmp_path / "typed.jpg"
    for photo in (sure, typed):
        photo.write_bytes(b"x")
    with LibraryIndex.open(index_path) as index:
        index.put(
            IndexEntry(
                path=sure,
                size=10,
                mtime_ns=20,
                status="done",
                caption="a dog on a beach",
                store="txt",
                confidence=0.625,
            )
        )
        index.put(done(typed, "my dog on the beach"))  # typed by a person: no confidence
        index.commit()
        assert index.lookup(sure).confidence == 0.625
        assert index.lookup(typed).confidence is None
        hits = {hit.path.name: hit.confidence for hit in index.search("dog beach")}
    assert hits == {"sure.jpg": 0.625, "typed.jpg": None}
    found = {hit.path.name: hit.confidence for hit in search_library("dog", index_path=index_path)}
    assert found == {"sure.jpg": 0.625, "typed.jpg": None}


def test_an_index_made_before_confidences_is_upgraded_and_keeps_its_rows(
    index_path: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old.jpg"
    old.write_bytes(b"x")
    make_v1_index(index_path, old, "a cat on a sofa")

    # A reader cannot change the file: it works, and reads the confidence as unknown.
    with LibraryIndex.open(index_path, readonly=True) as reader:
        row = reader.lookup(old)
        assert row is not None and row.caption == "a cat on a sofa" and row.confidence is None
    assert [h.confidence for h in search_library("cat", index_path=index_path)] == [None]

    with LibraryIndex.open(index_path) as index:
        row = index.lookup(old)
        assert row is not None and row.caption == "a cat on a sofa" and row.confidence is None
        new = tmp_path / "new.jpg"
        index.put(
            IndexEntry(
                path=new,
                size=1,
                mtime_ns=2,
                status="done",
                caption="a cat asleep",
                store="txt",
                confidence=0.4,
            )
        )
        index.commit()
        assert index.lookup(new).confidence == 0.4
    conn = sqlite3.connect(index_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "confidence" in {r[1] for r in conn.execute("PRAGMA table_info(photos)")}
    conn.close()
    with LibraryIndex.open(index_path) as again:  # opening an upgraded file changes nothing
        assert again.lookup(old).caption == "a cat on a sofa"
        assert again.lookup(tmp_path / "new.jpg").confidence == 0.4
