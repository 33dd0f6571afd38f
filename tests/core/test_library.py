"""Scanning a library: stable order, skipped folders, unreadable files, links, streaming."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import core.library as library
from core.library import FoundPhoto, ScanProblem, find_photos, scan_library


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 not decoded by the scan")


def rel(root: Path, items) -> list[str]:
    return [i.path.relative_to(root).as_posix() for i in items if isinstance(i, FoundPhoto)]


def problems(items) -> list[ScanProblem]:
    return [i for i in items if isinstance(i, ScanProblem)]


def test_stable_depth_first_order_files_before_subfolders(tmp_path: Path) -> None:
    touch(tmp_path, "b.jpg", "a.JPG", "z/1.png", "m/2.heic", "m/n/3.tif", "m/0.dng", "x.txt")
    items = list(scan_library([tmp_path]))
    assert rel(tmp_path, items) == ["a.JPG", "b.jpg", "m/0.dng", "m/2.heic", "m/n/3.tif", "z/1.png"]
    assert rel(tmp_path, scan_library([tmp_path], recursive=False)) == ["a.JPG", "b.jpg"]
    assert rel(tmp_path, scan_library([tmp_path])) == rel(tmp_path, items)  # same again


def test_found_photos_carry_size_and_mtime(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg")
    (item,) = scan_library([tmp_path])
    info = os.stat(tmp_path / "a.jpg")
    assert isinstance(item, FoundPhoto)
    assert (item.size, item.mtime_ns) == (info.st_size, info.st_mtime_ns)


@pytest.mark.parametrize(
    "folder",
    [
        ".git",
        ".thumbnails",
        "@eaDir",
        ".Trash-1000",
        "$RECYCLE.BIN",
        "System Volume Information",
        "#recycle",
        "lost+found",
        "__MACOSX",
        "Catalog Previews.lrdata",
        "Photos Library.photoslibrary",
    ],
)
def test_hidden_and_system_folders_are_skipped(tmp_path: Path, folder: str) -> None:
    touch(tmp_path, "keep.jpg", f"{folder}/thumb.jpg", f"{folder}/deeper/t.jpg")
    assert rel(tmp_path, scan_library([tmp_path])) == ["keep.jpg"]


def test_hidden_files_are_skipped_but_a_hidden_root_is_scanned(tmp_path: Path) -> None:
    root = tmp_path / ".photos"
    touch(root, "._a.jpg", ".photoscribe-x.tmp", "a.jpg")
    assert rel(root, scan_library([root])) == ["a.jpg"]


def test_symlink_loops_end_and_linked_folders_are_scanned_once(tmp_path: Path) -> None:
    touch(tmp_path, "a/1.jpg", "b/2.jpg")
    (tmp_path / "a" / "loop").symlink_to(tmp_path)  # a/loop -> the root: a loop
    (tmp_path / "a" / "self").symlink_to(tmp_path / "a")
    (tmp_path / "c").symlink_to(tmp_path / "b")  # a second way to b
    (tmp_path / "d").symlink_to(tmp_path / "elsewhere")  # dangling link to a folder
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    touch(outside, "3.jpg")
    (tmp_path / "e").symlink_to(outside)  # a linked folder with new photos is followed
    items = list(scan_library([tmp_path]))
    assert rel(tmp_path, items) == ["a/1.jpg", "b/2.jpg", "e/3.jpg"]
    assert problems(items) == []


def test_folder_it_may_not_enter_is_reported_and_the_scan_goes_on(
    tmp_path: Path, monkeypatch
) -> None:
    touch(tmp_path, "a/1.jpg", "private/2.jpg", "z/3.jpg")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "private":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(library.os, "scandir", scandir)
    items = list(scan_library([tmp_path]))
    assert rel(tmp_path, items) == ["a/1.jpg", "z/3.jpg"]
    (problem,) = problems(items)
    assert problem.kind == "folder" and problem.path == tmp_path / "private"
    assert "private" in problem.reason and "Permission denied" in problem.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read and enter everything")
def test_real_permissions(tmp_path: Path) -> None:
    touch(tmp_path, "locked/1.jpg", "secret.jpg", "ok.jpg")
    (tmp_path / "locked").chmod(0)
    (tmp_path / "secret.jpg").chmod(0)
    try:
        items = list(scan_library([tmp_path]))
    finally:
        (tmp_path / "locked").chmod(0o755)
        (tmp_path / "secret.jpg").chmod(0o644)
    assert rel(tmp_path, items) == ["ok.jpg"]
    assert {p.kind for p in problems(items)} == {"folder", "unreadable"}


def test_unreadable_files_are_skipped_and_reported(tmp_path: Path, monkeypatch) -> None:
    touch(tmp_path, "a.jpg", "no-access.jpg", "z.jpg")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it would hang a decoder forever
    real_access = os.access
    monkeypatch.setattr(
        library.os,
        "access",
        lambda p, mode: Path(p).name != "no-access.jpg" and real_access(p, mode),
    )
    items = list(scan_library([tmp_path]))
    assert rel(tmp_path, items) == ["a.jpg", "z.jpg"]
    reasons = {p.path.name: p for p in problems(items)}
    assert set(reasons) == {"dangling.jpg", "no-access.jpg", "pipe.jpg"}
    assert all(p.kind == "unreadable" for p in reasons.values())
    assert "permission" in reasons["no-access.jpg"].reason


def test_roots_can_be_files_and_missing_roots_are_reported(tmp_path: Path) -> None:
    touch(tmp_path, "one.jpg", "notes.bin")
    items = list(scan_library([tmp_path / "one.jpg", tmp_path / "nope", tmp_path / "notes.bin"]))
    assert [i.path.name for i in items if isinstance(i, FoundPhoto)] == ["one.jpg", "notes.bin"]
    (missing,) = problems(items)
    assert missing.kind == "missing" and "nope" in missing.reason


def test_scan_streams_without_listing_the_whole_tree_first(tmp_path: Path, monkeypatch) -> None:
    touch(tmp_path, "a.jpg", *(f"sub{i}/p.jpg" for i in range(5)))
    listed: list[str] = []
    real_scandir = os.scandir

    def scandir(path):
        listed.append(Path(path).name)
        return real_scandir(path)

    monkeypatch.setattr(library.os, "scandir", scandir)
    scan = scan_library([tmp_path])
    first = next(scan)
    assert isinstance(first, FoundPhoto) and first.path.name == "a.jpg"
    assert listed == [tmp_path.name]  # only the root listed so far
    assert len(list(scan)) == 5


def test_find_photos_keeps_its_contract(tmp_path: Path) -> None:
    touch(tmp_path, "b.jpg", "a.png", ".h/x.jpg", "s/c.jpg")
    assert [p.name for p in find_photos(tmp_path)] == ["a.png", "b.jpg"]
    assert [p.name for p in find_photos(tmp_path, recursive=True)] == ["a.png", "b.jpg", "c.jpg"]
    with pytest.raises(Exception, match="does not exist"):
        list(find_photos(tmp_path / "missing"))
