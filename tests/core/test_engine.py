"""The library engine: resume, only new or changed photos, stores as the source of truth."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import torch

import core.library as library_module
import core.storage.save as save_module
from core.datatypes import CaptionSettings
from core.engine import (
    IndexReplaced,
    LibraryEngine,
    LibraryJob,
    PhotoCaptioned,
    PhotoFailed,
    PhotoForReview,
    PhotoSkipped,
    RunProgress,
    RunSummary,
    rebuild_index,
)
from core.errors import IndexLockedError
from core.index import LibraryIndex, search_library
from core.inference import Captioner
from core.library import FoundPhoto, ScanProblem
from core.storage import FileIdentity, make_store
from core.storage.files import TEMP_PREFIX, TEMP_SUFFIX
from tests.imagegen import textured_image

FAST = CaptionSettings(beam_size=1, batch_size=2)


@pytest.fixture(scope="module")
def captioner(tiny_checkpoint: Path) -> Captioner:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared with other work: one thread is much faster
    yield Captioner(tiny_checkpoint, device="cpu")
    torch.set_num_threads(threads)


def make_photos(folder: Path, n: int, start: int = 0, prefix: str = "p") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"{prefix}{i:02d}.jpg"
        textured_image(64, 48, seed=i).save(path, quality=85)
        paths.append(path)
    return paths


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    make_photos(root / "a", 3)
    make_photos(root / "b", 2, start=3)
    return root


class Recorder:
    def __init__(self) -> None:
        self.events: list[object] = []

    def __call__(self, event: object) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def names(self, kind: type) -> list[str]:
        return [e.path.name for e in self.of(kind)]


def run(
    captioner: Captioner,
    index: Path,
    roots: tuple[Path, ...],
    cancel: threading.Event | None = None,
    on_event: Recorder | None = None,
    **job: object,
) -> tuple[RunSummary, Recorder]:
    recorder = on_event or Recorder()
    job.setdefault("store", "txt")
    job.setdefault("settings", FAST)
    summary = LibraryEngine(captioner, index, lock_timeout=0.2).run(
        LibraryJob(roots=roots, **job), cancel, recorder
    )
    return summary, recorder


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}")]


def captions(root: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.txt"))}


# ---------------------------------------------------------------- first and second run


def test_first_run_captions_everything_then_only_new_or_changed(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index.sqlite3"
    first, rec = run(captioner, index, (lib,))
    assert (first.captioned, first.skipped, first.failed) == (5, 0, 0)
    assert rec.names(PhotoCaptioned) == ["p00.jpg", "p01.jpg", "p02.jpg", "p03.jpg", "p04.jpg"]
    assert len(captions(lib)) == 5
    event = rec.of(PhotoCaptioned)[0]
    assert event.store == "txt" and event.saved_to == lib / "a" / "p00.txt" and event.caption
    last = rec.of(RunProgress)[-1]
    assert (last.done, last.total, last.captioned) == (5, 5, 5)
    with LibraryIndex.open(index, readonly=True) as db:
        row = db.lookup(lib / "a" / "p00.jpg")
        assert row is not None and row.status == "done" and row.model == first.model
        assert row.caption + "\n" == (lib / "a" / "p00.txt").read_text(encoding="utf-8")
        assert db.count("done") == 5

    second, rec = run(captioner, index, (lib,))
    assert (second.captioned, second.skipped, second.failed) == (0, 5, 0)
    assert {e.reason for e in rec.of(PhotoSkipped)} == {"done"}

    make_photos(lib / "b", 1, start=7)  # new
    textured_image(64, 48, seed=99).save(lib / "a" / "p01.jpg")  # changed
    os.utime(lib / "a" / "p01.jpg", ns=(1, 1))
    (lib / "b" / "p03.jpg").unlink()  # gone
    (lib / "b" / "p03.txt").unlink()
    third, rec = run(captioner, index, (lib,))
    assert rec.names(PhotoCaptioned) == ["p01.jpg", "p07.jpg"]  # ours, so replaced
    assert (third.captioned, third.skipped) == (2, 3)
    with LibraryIndex.open(index, readonly=True) as db:
        assert db.lookup(lib / "b" / "p03.jpg") is None  # forgotten
        assert db.count() == 5


def test_embedding_changes_the_photo_but_the_next_run_skips_it(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index.sqlite3"
    first, _ = run(captioner, index, (lib / "a",), store="embed")
    assert first.captioned == 3
    assert make_store("embed").read(lib / "a" / "p00.jpg")
    second, rec = run(captioner, index, (lib / "a",), store="embed")
    assert (second.captioned, second.skipped) == (0, 3)


def test_existing_captions_are_kept_unless_overwrite(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index.sqlite3"
    (lib / "a" / "p00.txt").write_text("written by hand", encoding="utf-8")
    first, rec = run(captioner, index, (lib / "a",))
    assert rec.names(PhotoCaptioned) == ["p01.jpg", "p02.jpg"]
    (skip,) = rec.of(PhotoSkipped)
    assert (skip.path.name, skip.reason, skip.caption) == (
        "p00.jpg",
        "has_caption",
        "written by hand",
    )
    with LibraryIndex.open(index, readonly=True) as db:
        row = db.lookup(lib / "a" / "p00.jpg")
        assert row is not None and row.status == "done" and row.model is None  # not ours

    (lib / "a" / "p01.txt").write_text("edited by the user", encoding="utf-8")
    second, _ = run(captioner, index, (lib / "a",))
    assert second.captioned == 0
    assert (lib / "a" / "p01.txt").read_text(encoding="utf-8") == "edited by the user"

    # --overwrite: replaces what this model did not write, and only that
    third, rec = run(captioner, index, (lib / "a",), overwrite=True)
    assert rec.names(PhotoCaptioned) == ["p00.jpg", "p01.jpg"]
    assert rec.names(PhotoSkipped) == ["p02.jpg"]
    assert "by hand" not in (lib / "a" / "p00.txt").read_text(encoding="utf-8")
    fourth, _ = run(captioner, index, (lib / "a",), overwrite=True)
    assert (fourth.captioned, fourth.skipped) == (0, 3)  # an --overwrite run resumes too
    other_beam = CaptionSettings(beam_size=2, batch_size=2)
    fifth, _ = run(captioner, index, (lib / "a",), overwrite=True, settings=other_beam)
    assert fifth.captioned == 3 and fifth.model.endswith("beam=2")  # other settings: redone


# ---------------------------------------------------------------- interruption


class Killed(BaseException):
    """Stands for the process dying: nothing after it runs (no except Exception catches it)."""


@pytest.mark.parametrize("store", ["txt", "embed"])
def test_killed_between_saving_and_recording_does_not_caption_twice(
    captioner: Captioner, lib: Path, tmp_path: Path, monkeypatch, store: str
) -> None:
    index = tmp_path / "index.sqlite3"
    real_make_store = save_module.make_store
    writes: list[Path] = []

    def make_store_that_dies(kind, xmp_name="photo.jpg.xmp"):
        inner = real_make_store(kind, xmp_name)

        class Dying:
            name = inner.name
            read = inner.read

            def write(self, photo, caption, **kw):
                result = inner.write(photo, caption, **kw)
                writes.append(photo)
                if len(writes) == 3:  # saved, but the process dies before the index commit
                    stray = photo.parent / f"{TEMP_PREFIX}half{TEMP_SUFFIX}"
                    stray.write_bytes(b"half a photo")  # as if killed inside the next write
                    os.utime(stray, (time.time() - 60, time.time() - 60))
                    raise Killed
                return result

        return Dying()

    monkeypatch.setattr(save_module, "make_store", make_store_that_dies)
    with pytest.raises(Killed):
        run(captioner, index, (lib,), store=store)
    monkeypatch.setattr(save_module, "make_store", real_make_store)
    assert temp_files(lib) != []

    second, rec = run(captioner, index, (lib,), store=store)
    assert temp_files(lib) == []
    # photos 1-2 were recorded, photo 3 was saved but not recorded: all three are adopted
    assert rec.names(PhotoCaptioned) == ["p03.jpg", "p04.jpg"]
    assert (second.captioned, second.skipped, second.failed) == (2, 3, 0)
    with LibraryIndex.open(index, readonly=True) as db:
        adopted = db.lookup(writes[2])
        assert adopted is not None and adopted.status == "done"
        assert adopted.model == second.model  # the pending row says the model wrote it
        assert db.count("done") == 5 and db.count("pending") == 0
    third, _ = run(captioner, index, (lib,), store=store)
    assert (third.captioned, third.skipped) == (0, 5)


def test_cancel_stops_after_the_batch_and_the_next_run_continues(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index.sqlite3"
    cancel = threading.Event()
    rec = Recorder()

    def stop_after_first(event: object) -> None:
        rec(event)
        if isinstance(event, PhotoCaptioned):
            cancel.set()

    first, _ = run(captioner, index, (lib,), cancel=cancel, on_event=stop_after_first)
    assert first.cancelled and 1 <= first.captioned < 5
    second, rec2 = run(captioner, index, (lib,))
    assert not second.cancelled
    assert set(rec.names(PhotoCaptioned)).isdisjoint(rec2.names(PhotoCaptioned))
    assert first.captioned + second.captioned == 5 and second.skipped == first.captioned
    assert len(captions(lib)) == 5 and temp_files(lib) == []


class CancelledMidBatch:
    """The test captioner, with a cancel that comes while the model works on the first batch."""

    def __init__(self, captioner: Captioner, cancel: threading.Event) -> None:
        self._captioner = captioner
        self._cancel = cancel
        self.batches = 0

    def caption_batch(self, images, settings, cancel=None):
        self.batches += 1
        self._cancel.set()  # the user presses Cancel while this batch is in the model
        return self._captioner.caption_batch(images, settings, cancel)

    def __getattr__(self, name: str) -> object:
        return getattr(self._captioner, name)


def test_cancel_finishes_and_saves_the_batch_in_flight(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    """A regression guard (issue 22): a cancel during a batch threw the photos being captioned
    away ("Captioned 0 photos" 3 s into a run); now they are finished and saved, and no further
    batch starts."""
    cancel = threading.Event()
    model = CancelledMidBatch(captioner, cancel)
    summary, rec = run(model, tmp_path / "index.sqlite3", (lib,), cancel=cancel)  # type: ignore[arg-type]
    assert summary.cancelled and model.batches == 1
    assert summary.captioned == FAST.batch_size == len(rec.of(PhotoCaptioned))
    assert len(captions(lib)) == FAST.batch_size and temp_files(lib) == []


def test_runs_on_a_worker_thread(captioner: Captioner, lib: Path, tmp_path: Path) -> None:
    out: list[RunSummary] = []
    worker = threading.Thread(target=lambda: out.append(run(captioner, tmp_path / "i", (lib,))[0]))
    worker.start()
    worker.join(120)
    assert out and out[0].captioned == 5


def test_captioning_starts_before_the_scan_ends(
    captioner: Captioner, tmp_path: Path, monkeypatch
) -> None:
    root = tmp_path / "lib"
    photos = make_photos(root, 12)
    first_caption = threading.Event()
    real_scan = library_module.scan_library

    def slow_scan(roots, recursive=True, *, check_files=True):
        if not check_files:  # the background count
            yield from real_scan(roots, recursive, check_files=False)
            return
        for path in photos:
            if path == photos[10]:  # more than the captioner's look-ahead window so far
                if not first_caption.wait(60):
                    raise AssertionError("nothing was captioned while the scan was running")
            yield FoundPhoto(path, path.stat().st_size, path.stat().st_mtime_ns)

    rec = Recorder()

    def on_event(event: object) -> None:
        rec(event)
        if isinstance(event, PhotoCaptioned):
            first_caption.set()

    monkeypatch.setattr(library_module, "scan_library", slow_scan)
    summary, _ = run(captioner, tmp_path / "i", (root,), on_event=on_event)
    assert summary.captioned == 12


def test_bad_photos_and_unreadable_folders_are_reported_not_fatal(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    (lib / "a" / "zz_broken.jpg").write_bytes(b"not a jpeg")
    summary, rec = run(captioner, tmp_path / "i.sqlite3", (lib, tmp_path / "missing"))
    assert summary.captioned == 5 and summary.failed == 2
    reasons = {f.path.name: f.reason for f in summary.failures}
    assert set(reasons) == {"zz_broken.jpg", "missing"}
    assert "zz_broken.jpg" in reasons["zz_broken.jpg"]
    report = summary.to_dict()
    assert report["failed"] == 2 and report["failures"][0]["reason"]
    assert report["images_per_second"] > 0
    with LibraryIndex.open(tmp_path / "i.sqlite3", readonly=True) as db:
        row = db.lookup(lib / "a" / "zz_broken.jpg")
        assert row is not None and row.status == "failed" and "zz_broken" in (row.error or "")
    again, rec = run(captioner, tmp_path / "i.sqlite3", (lib,))
    assert (again.captioned, again.skipped, again.failed) == (0, 5, 1)  # failures are retried


def test_without_a_store_nothing_is_saved_and_no_index_is_made(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    summary, rec = run(captioner, tmp_path / "i.sqlite3", (lib,), store=None)
    assert summary.captioned == 5 and summary.index_path is None
    assert not (tmp_path / "i.sqlite3").exists() and captions(lib) == {}
    assert all(e.store is None for e in rec.of(PhotoCaptioned))


# ---------------------------------------------------------------- the stores are the truth


def test_damaged_index_is_replaced_and_nothing_is_captioned_again(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index.sqlite3"
    run(captioner, index, (lib,))
    before = captions(lib)
    index.write_bytes(b"garbage " * 1000)
    for extra in ("-wal", "-shm"):
        Path(str(index) + extra).unlink(missing_ok=True)
    summary, rec = run(captioner, index, (lib,))
    (replaced,) = rec.of(IndexReplaced)
    assert replaced.path == index and replaced.moved_to.exists()
    assert "damaged" in replaced.reason
    assert (summary.captioned, summary.skipped) == (0, 5)  # recognised from the stores
    assert captions(lib) == before
    assert len(search_library(next(iter(before.values())), None, 10, index)) == 5


def test_locked_index_stops_before_touching_any_photo(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index.sqlite3"
    LibraryIndex.open(index).close()
    other = sqlite3.connect(index, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(IndexLockedError, match="index.sqlite3.*in use"):
            run(captioner, index, (lib,))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert captions(lib) == {}


def test_rebuild_index_from_the_stores(captioner: Captioner, lib: Path, tmp_path: Path) -> None:
    index = tmp_path / "index.sqlite3"
    first, _ = run(captioner, index, (lib,))
    (lib / "a" / "p02.txt").write_text("a dog on the beach", encoding="utf-8")
    (lib / "b" / "p04.txt").unlink()
    for f in tmp_path.glob("index.sqlite3*"):
        f.unlink()
    problems: list[object] = []
    summary = rebuild_index((lib,), True, index_path=index, on_event=problems.append)
    assert (summary.indexed, summary.uncaptioned, summary.failed) == (4, 1, 0)
    assert [h.path.name for h in search_library("dog beach", None, 10, index)] == ["p02.jpg"]
    again, rec = run(captioner, index, (lib,))
    assert rec.names(PhotoCaptioned) == ["p04.jpg"]  # only the photo without a caption
    assert again.skipped == 4


def test_scan_problems_reach_the_handler(captioner: Captioner, tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "lib"
    make_photos(root / "ok", 1)
    make_photos(root / "private", 1)
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "private":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    import core.library as library

    monkeypatch.setattr(library.os, "scandir", scandir)
    summary, rec = run(captioner, tmp_path / "i", (root,))
    assert summary.captioned == 1 and summary.failed == 0
    (problem,) = rec.of(ScanProblem)
    assert problem.kind == "folder" and summary.problems == (problem,)
    assert summary.to_dict()["folders_not_scanned"][0]["path"].endswith("private")
    assert not rec.of(PhotoFailed)


def test_saves_and_index_rows_go_through_one_writer_thread(
    captioner: Captioner, lib: Path, tmp_path: Path, monkeypatch
) -> None:
    """The engine hands each batch to the writer and goes on; the writer owns the index."""
    import core.engine.writer as writer_module
    from core.engine import Writer

    threads: set[str] = set()
    real_save = writer_module.save_caption

    def noted(request):
        threads.add(threading.current_thread().name)
        return real_save(request)

    monkeypatch.setattr(writer_module, "save_caption", noted)
    writer = Writer(tmp_path / "i")
    try:
        engine = LibraryEngine(captioner, writer=writer)
        summary, rec = None, Recorder()
        summary = engine.run(LibraryJob(roots=(lib,), store="xmp", settings=FAST), on_event=rec)
        again = engine.run(LibraryJob(roots=(lib,), store="xmp", settings=FAST))
    finally:
        writer.close()
    assert summary.captioned == 5 and len(list(lib.rglob("*.xmp"))) == 5
    assert threads == {"writer"}
    assert again.skipped == 5, "the second run sees what the writer recorded"
    for event in rec.of(PhotoCaptioned):
        assert event.identity is not None and event.identity.matches(FileIdentity.of(event.path))


# ---------------------------------------------------------------- issue 11: stores agree


def test_a_sidecar_deleted_by_hand_is_noticed_before_skipping(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    """Regression (issue 11, item 19): the index said "done", the caption was gone."""
    index = tmp_path / "index.sqlite3"
    first, _ = run(captioner, index, (lib,))
    photo = lib / "a" / "p01.jpg"
    caption = photo.with_suffix(".txt").read_text(encoding="utf-8").removesuffix("\n")
    assert search_library(caption, lib / "a", 10, index)
    photo.with_suffix(".txt").unlink()
    hits = search_library(caption, lib / "a", 10, index)
    assert photo not in [hit.path for hit in hits], "search leaves out a caption that is gone"

    second, rec = run(captioner, index, (lib,))
    assert rec.names(PhotoCaptioned) == ["p01.jpg"] and second.skipped == 4
    assert photo.with_suffix(".txt").read_text(encoding="utf-8") == caption + "\n"
    with LibraryIndex.open(index, readonly=True) as db:
        row = db.lookup(photo)
        assert row is not None and row.status == "done" and row.caption == caption


def test_overwrite_into_another_store_updates_the_old_one(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    """Regression (issue 11, item 1): `--write xmp --overwrite` left the .txt caption stale."""
    index = tmp_path / "index.sqlite3"
    folder = lib / "a"
    (folder / "p00.txt").write_text("an older caption", encoding="utf-8")
    summary, rec = run(captioner, index, (folder,), store="xmp", overwrite=True)
    assert summary.captioned == 3
    made = {e.path.name: e for e in rec.of(PhotoCaptioned)}
    new = made["p00.jpg"].caption
    assert make_store("xmp").read(folder / "p00.jpg") == new
    assert (folder / "p00.txt").read_text(encoding="utf-8") == new + "\n", "stores agree"
    assert "text sidecar was updated" in made["p00.jpg"].message
    assert not (folder / "p01.txt").exists(), "a store with no caption is not created"


def test_captions_come_with_the_models_confidence(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    for store in ("txt", None):
        _, rec = run(captioner, tmp_path / f"i-{store}", (lib / "b",), store=store)
        confidences = [e.confidence for e in rec.of(PhotoCaptioned)]
        assert len(confidences) == 2 and all(0.0 <= c <= 1.0 for c in confidences)


def test_recaption_without_overwrite_reports_suggestions_and_keeps_captions(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    """One route for the app's "re-caption, do not replace": the engine saves new captions
    where there was none and reports the others as suggestions (store None)."""
    index = tmp_path / "index.sqlite3"
    folder = lib / "a"
    (folder / "p00.txt").write_text("written by hand", encoding="utf-8")
    summary, rec = run(captioner, index, (folder,), recaption=True)
    assert summary.captioned == 3 and summary.skipped == 0
    by_name = {e.path.name: e for e in rec.of(PhotoCaptioned)}
    assert by_name["p00.jpg"].store is None and "suggestion" in by_name["p00.jpg"].message
    assert (folder / "p00.txt").read_text(encoding="utf-8") == "written by hand"
    assert by_name["p01.jpg"].store == "txt" and (folder / "p01.txt").is_file()
    again, rec = run(captioner, index, (folder,), recaption=True)
    assert again.captioned == 3, "re-captioning captions every photo again"


def test_each_photos_metadata_is_read_once(
    captioner: Captioner, lib: Path, tmp_path: Path, monkeypatch
) -> None:
    """Regression: with the embedded store and skip-captioned, exiv2 read each photo twice."""
    from core.storage import EmbeddedStore

    reads: list[Path] = []
    real_read = EmbeddedStore.read

    def counted(self, photo):
        reads.append(photo)
        return real_read(self, photo)

    monkeypatch.setattr(EmbeddedStore, "read", counted)
    summary, _ = run(captioner, tmp_path / "i", (lib,), store="embed", skip_captioned=True)
    assert summary.captioned == 5
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 5, "once per photo"


def test_the_index_keeps_each_captions_confidence(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index.sqlite3"
    _, rec = run(captioner, index, (lib / "b",))
    made = {e.path: e.confidence for e in rec.of(PhotoCaptioned)}
    assert len(made) == 2 and all(c is not None for c in made.values())
    with LibraryIndex.open(index, readonly=True) as db:
        assert {p: db.lookup(p).confidence for p in made} == made
    _, again = run(captioner, index, (lib / "b",))
    assert {e.path: e.confidence for e in again.of(PhotoSkipped)} == made


class Unsure:
    """The test captioner, whose confidences are taken in turn from a list (the tiny model is
    equally unsure of every photo)."""

    def __init__(self, captioner: Captioner, confidences: list[float]) -> None:
        self._captioner = captioner
        self._next = iter(confidences)

    def caption_batch(self, images, settings, cancel=None):
        found = self._captioner.caption_batch(images, settings, cancel)
        return [(candidates, next(self._next)) for candidates, _ in found]

    def __getattr__(self, name: str) -> object:
        return getattr(self._captioner, name)


def test_min_confidence_keeps_only_the_captions_the_model_is_sure_of(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index.sqlite3"
    unsure = Unsure(captioner, [0.9, 0.2, 0.7, 0.1, 0.5])
    summary, rec = run(unsure, index, (lib,), min_confidence=0.5)  # type: ignore[arg-type]

    kept = {e.path: e.confidence for e in rec.of(PhotoCaptioned)}
    held = {e.path: e for e in rec.of(PhotoForReview)}
    assert sorted(kept.values()) == [0.5, 0.7, 0.9], "at or above the minimum is kept"
    assert sorted(e.confidence for e in held.values()) == [0.1, 0.2]
    for path, event in held.items():
        assert event.min_confidence == 0.5 and event.caption
        assert not path.with_suffix(".txt").exists(), "a doubtful caption is not saved"
    assert all(p.with_suffix(".txt").exists() for p in kept)
    assert (summary.captioned, summary.for_review, summary.failed) == (3, 2, 0)
    assert summary.to_dict()["left_for_review"] == 2
    assert rec.of(RunProgress)[-1].done == 5
    with LibraryIndex.open(index, readonly=True) as db:
        assert all(db.lookup(p) is None for p in held), "nor recorded: the next run tries again"
        assert {p: db.lookup(p).confidence for p in kept} == kept

    again, rec2 = run(Unsure(captioner, [0.3, 0.6]), index, (lib,), min_confidence=0.5)  # type: ignore[arg-type]
    assert (again.skipped, again.for_review, again.captioned) == (3, 1, 1)
    assert {e.path for e in rec2.of(PhotoForReview)} | {
        e.path for e in rec2.of(PhotoCaptioned)
    } == set(held)


def test_min_confidence_must_be_between_0_and_1(lib: Path) -> None:
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            LibraryJob(roots=(lib,), min_confidence=bad)


class HeldSecondBatch:
    """The test captioner; the second batch waits at the model until the first batch's
    captions have been reported (at most 60 s: the writer thread may be slow to get the CPU
    on a busy machine; when the feature works the wait ends as soon as they are)."""

    def __init__(self, captioner: Captioner) -> None:
        self._captioner = captioner
        self.batches = 0
        self.first_reported = threading.Event()
        self.reported_in_time: bool | None = None

    def caption_batch(self, images, settings, cancel=None):
        self.batches += 1
        if self.batches == 2:
            self.reported_in_time = self.first_reported.wait(60)
        return self._captioner.caption_batch(images, settings, cancel)

    def __getattr__(self, name: str) -> object:
        return getattr(self._captioner, name)


def test_saved_captions_are_reported_while_the_model_works_on_the_next_batch(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    """Issue 22 item 3: captions on disk were reported a batch late (the bar at 0/100 while
    32 were saved, "Captioned 64" after a cancel with the bar at 0). Now a batch's photos are
    reported once the writer has saved them, a batch at the model shows as in flight, and
    the counts agree with the photos reported."""
    model = HeldSecondBatch(captioner)
    rec = Recorder()

    def on_event(event: object) -> None:
        rec(event)
        if isinstance(event, PhotoCaptioned):
            model.first_reported.set()

    summary, _ = run(model, tmp_path / "index.sqlite3", (lib,), on_event=on_event)  # type: ignore[arg-type]
    assert model.reported_in_time, "the first batch was reported while the second was captioned"
    assert summary.captioned == 5 == len(rec.of(PhotoCaptioned))
    reported = 0
    in_flight = []
    for event in rec.events:
        if isinstance(event, (PhotoCaptioned, PhotoSkipped, PhotoFailed)):
            reported += 1
        elif isinstance(event, RunProgress):
            assert event.done == reported, "the counts are what was reported"
            in_flight.append(event.in_flight)
    assert FAST.batch_size in in_flight, "a batch at the model shows as in flight"
    assert in_flight[-1] == 0


def test_the_models_alternatives_are_kept_in_the_index(
    captioner: Captioner, lib: Path, tmp_path: Path
) -> None:
    """Issue 21: the beam's other candidates survive a restart (the app offers them)."""
    index = tmp_path / "index.sqlite3"
    beam = CaptionSettings(beam_size=3, batch_size=2, n_candidates=3)
    _, rec = run(captioner, index, (lib / "a",), settings=beam)
    events = rec.of(PhotoCaptioned)
    assert events
    with LibraryIndex.open(index, readonly=True) as db:
        for event in events:
            row = db.lookup(event.path)
            others = tuple(c.caption for c in event.candidates if c.caption != event.caption)
            assert row.alternatives == others
        assert any(db.lookup(e.path).alternatives for e in events), "the beam found others"
