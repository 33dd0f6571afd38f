"""The library engine: captions whole libraries resumably, for the command line and the app."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.datatypes import Candidate, CaptionResult, CaptionSettings
from core.errors import (
    CaptionExistsError,
    IndexDamagedError,
    PhotoScribeError,
    StorageError,
)
from core.index import IndexEntry, LibraryIndex, default_index_path, move_aside
from core.library import FoundPhoto, ScanProblem, scan_library
from core.storage import (
    CaptionStore,
    FileIdentity,
    StoreKind,
    WriteResult,
    XmpName,
    all_stores,
    make_store,
    read_caption_any,
)
from core.storage.files import TEMP_PREFIX, TEMP_SUFFIX

if TYPE_CHECKING:  # core.inference loads torch; the app imports this module at start-up
    from core.inference import Captioner

log = logging.getLogger(__name__)

COMMIT_EVERY_ROWS = 500  # rows of skips/adoptions/failures grouped into one index transaction
COMMIT_EVERY_S = 2.0
PROGRESS_EVERY_S = 0.25
_QUEUE_SIZE = 256  # classified photos waiting for the captioner; bounds the scan's lead


# ---------------------------------------------------------------- the job and its events


@dataclass(frozen=True)
class LibraryJob:
    """What to caption and where to keep the captions; a plain value, safe to pass to a thread.

    ``store`` None captions and reports only: nothing is saved and the index is not used, since
    it must never be the only copy of a caption.
    """

    roots: tuple[Path, ...]  # folders (and single photos) to caption
    recursive: bool = True  # include subfolders
    store: StoreKind | None = "xmp"  # where captions are saved: "txt", "xmp", "embed" or None
    xmp_name: XmpName = "photo.jpg.xmp"  # XMP sidecar naming (also for embed's fallback)
    overwrite: bool = False  # replace captions the current model did not write
    skip_captioned: bool = False  # also skip photos with a caption in any other store
    settings: CaptionSettings = field(default_factory=CaptionSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", tuple(Path(r) for r in self.roots))


@dataclass(frozen=True)
class PhotoCaptioned:
    """A photo was captioned in this run and, when the job has a store, saved and indexed."""

    path: Path
    caption: str
    score: float | None
    candidates: tuple[Candidate, ...]
    store: str | None  # the store now holding the caption; None when the job saves nothing
    saved_to: Path | None  # the sidecar written, or the photo itself for "embed"
    message: str = ""  # a note from the store, e.g. a fallback to an XMP sidecar


SkipReason = Literal["done", "has_caption"]


@dataclass(frozen=True)
class PhotoSkipped:
    """A photo not captioned: done in an earlier run, or it already had a caption."""

    path: Path
    reason: SkipReason
    caption: str | None = None
    store: str | None = None


@dataclass(frozen=True)
class PhotoFailed:
    """A photo that could not be captioned or saved; ``reason`` names the file."""

    path: Path
    reason: str
    caption: str | None = None  # the caption when it was made but could not be saved


@dataclass(frozen=True)
class RunProgress:
    """Counts so far; ``total`` is None until the background count of the photos has finished."""

    done: int  # captioned + skipped + failed
    total: int | None
    captioned: int
    skipped: int
    failed: int
    elapsed: float  # seconds since the run started
    rate: float  # photos captioned per second


@dataclass(frozen=True)
class IndexReplaced:
    """The index file was damaged; it was moved aside and a new one started."""

    path: Path
    moved_to: Path
    reason: str


SaveFunction = Callable[[CaptionStore, Path, str, FileIdentity, bool], WriteResult]
"""save(store, photo, caption, expected, overwrite): store one caption, return where it went."""


def save_directly(
    store: CaptionStore, photo: Path, caption: str, expected: FileIdentity, overwrite: bool
) -> WriteResult:
    """The default SaveFunction: write on the engine's own thread."""
    return store.write(photo, caption, expected=expected, overwrite=overwrite)


EngineEvent = (
    PhotoCaptioned | PhotoSkipped | PhotoFailed | ScanProblem | RunProgress | IndexReplaced
)
EventHandler = Callable[[EngineEvent], None]


@dataclass(frozen=True)
class RunSummary:
    """The outcome of one run."""

    captioned: int
    skipped: int
    failed: int
    failures: tuple[PhotoFailed, ...]
    problems: tuple[ScanProblem, ...]  # folders that could not be opened
    seconds: float
    cancelled: bool
    store: str | None
    index_path: Path | None
    model: str

    @property
    def images_per_second(self) -> float:
        return self.captioned / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings, undecodable bytes escaped)."""
        return {
            "captioned": self.captioned,
            "skipped": self.skipped,
            "failed": self.failed,
            "failures": [{"path": _text(f.path), "reason": f.reason} for f in self.failures],
            "folders_not_scanned": [
                {"path": _text(p.path), "reason": p.reason} for p in self.problems
            ],
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 3),
            "cancelled": self.cancelled,
            "store": self.store,
            "index": _text(self.index_path) if self.index_path else None,
            "model": self.model,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"


def _text(path: Path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# ---------------------------------------------------------------- model identity


def model_version(captioner: Captioner) -> str:
    """A short name for the model a captioner runs: file stem and a hash of the file."""
    checkpoint = getattr(captioner, "checkpoint", None)
    path = getattr(checkpoint, "path", None)
    if path is not None and Path(path).is_file():
        info = os.stat(path)
        return _file_version(str(path), info.st_size, info.st_mtime_ns)
    described = json.dumps(
        {
            "config": getattr(getattr(checkpoint, "config", None), "__dict__", {}),
            "provenance": getattr(checkpoint, "provenance", {}),
        },
        sort_keys=True,
        default=str,
    )
    return "in-memory-" + hashlib.sha256(described.encode()).hexdigest()[:12]


def caption_version(captioner: Captioner, settings: CaptionSettings) -> str:
    """The model and the decoding settings that shape its captions, e.g. "b0-1a2b3c beam=3".

    Recorded with every caption, so that --overwrite can tell captions this very setup wrote
    (kept: redoing them gives the same text) from all others (replaced).
    """
    text = f"{model_version(captioner)} beam={settings.beam_size}"
    if settings.length_penalty != 1.0:
        text += f" lp={settings.length_penalty:g}"
    if settings.max_tokens != CaptionSettings().max_tokens:
        text += f" max={settings.max_tokens}"
    return text


@lru_cache(maxsize=8)
def _file_version(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return f"{Path(path).stem}-{digest.hexdigest()[:12]}"


# ---------------------------------------------------------------- what the scan decides


@dataclass(frozen=True)
class _Todo:
    path: Path
    identity: FileIdentity
    overwrite: bool  # may replace the stored caption (ours from before, or --overwrite)


@dataclass(frozen=True)
class _Skip:
    path: Path
    reason: SkipReason
    caption: str | None
    store: str | None
    adopt: IndexEntry | None = None  # a row to record: the caption was found in a store


@dataclass(frozen=True)
class _Fail:
    path: Path
    reason: str
    identity: FileIdentity | None
    photo: bool = True  # False for a folder that could not be opened (not a photo)
    problem: ScanProblem | None = None


@dataclass(frozen=True)
class _Crash:
    error: BaseException


_END = object()


# ---------------------------------------------------------------- the engine


class LibraryEngine:
    """Captions libraries with one Captioner; use it from one thread at a time.

    Typical use, from the thread that owns the captioner::

        engine = LibraryEngine(captioner)  # index in the user data folder
        job = LibraryJob(roots=(folder,), recursive=True, store="xmp")
        summary = engine.run(job, cancel=token, on_event=handler)

    ``on_event`` is called on the calling thread with plain frozen dataclasses; it must not
    block for long. ``save`` writes one caption to its store; an app whose writes all go
    through one writer thread passes a function that hands the write to that thread and waits
    for its WriteResult (or exception), so the engine still records a caption only once it is
    saved.

    A run can be stopped at any moment, even by killing the process: the next run of the
    same job continues where it stopped. Per batch of photos the engine records the
    captions as pending in the index, writes them to the store, then marks them done, so no
    photo is captioned twice and nothing is half-written.
    """

    def __init__(
        self,
        captioner: Captioner,
        index_path: Path | None = None,
        *,
        replace_damaged_index: bool = True,
        lock_timeout: float | None = None,
        save: SaveFunction = save_directly,
    ) -> None:
        self.captioner = captioner
        self.save = save
        self.index_path = Path(index_path) if index_path is not None else default_index_path()
        self.replace_damaged_index = replace_damaged_index
        self.lock_timeout = lock_timeout

    def run(
        self,
        job: LibraryJob,
        cancel: threading.Event | None = None,
        on_event: EventHandler | None = None,
    ) -> RunSummary:
        """Caption what the job covers and is not done yet; returns the summary.

        Raises LibraryIndexError (IndexLockedError, ...) when the index cannot be used;
        captions saved until then stay in their stores. A damaged index is moved aside and
        replaced (an IndexReplaced event says so) unless ``replace_damaged_index`` is False.
        """
        return _Run(self, job, cancel or threading.Event(), on_event or _ignore).execute()

    def open_index(self, emit: EventHandler | None = None) -> LibraryIndex:
        """The index for writing, replacing a damaged one as configured."""
        return open_index_for_writing(
            self.index_path,
            replace_damaged=self.replace_damaged_index,
            timeout=self.lock_timeout,
            emit=emit,
        )


def open_index_for_writing(
    path: Path,
    *,
    replace_damaged: bool = True,
    timeout: float | None = None,
    emit: EventHandler | None = None,
) -> LibraryIndex:
    """Open the index at ``path`` for writing; a damaged file is moved aside and replaced.

    The stores hold every caption, so nothing is lost by starting a new index: the next run
    recognises captioned photos from their stores instead of captioning them again.
    """
    try:
        return LibraryIndex.open(path, timeout=timeout)
    except IndexDamagedError as error:
        if not replace_damaged or not path.exists():
            raise
        moved = move_aside(path)
        if emit is not None:
            emit(IndexReplaced(path, moved, error.problem))
        return LibraryIndex.open(path, timeout=timeout)


def _ignore(event: EngineEvent) -> None:
    pass


def _close(iterator: Iterator[object]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


class _Run:
    """The state of one LibraryEngine.run; its methods run on the caller's thread except
    ``_produce`` and ``_count``, which run on their own threads and share only the queue, the
    stop event and ``total``."""

    def __init__(
        self, engine: LibraryEngine, job: LibraryJob, cancel: threading.Event, emit: EventHandler
    ) -> None:
        self.engine = engine
        self.job = job
        self.cancel = cancel
        self.emit = emit
        self.model = caption_version(engine.captioner, job.settings)
        self.target: CaptionStore | None = (
            make_store(job.store, job.xmp_name) if job.store is not None else None
        )
        self.index: LibraryIndex | None = None
        self.stop = threading.Event()
        self.items: queue.Queue[object] = queue.Queue(_QUEUE_SIZE)
        self.total: int | None = None
        self.todo: dict[Path, deque[_Todo]] = {}
        self.batch: list[tuple[CaptionResult, _Todo]] = []
        self.captioned = self.skipped = self.failed = 0
        self.failures: list[PhotoFailed] = []
        self.problems: list[ScanProblem] = []
        self.scan_complete = False
        self.t0 = time.monotonic()
        self.started_wall = time.time()
        self.last_progress = 0.0
        self.last_commit = time.monotonic()

    # ------------------------------------------------------------ main thread

    def execute(self) -> RunSummary:
        threads: list[threading.Thread] = []
        try:
            if self.target is not None:
                self.index = self.engine.open_index(self.emit)
                self._recover()
            for target, name in ((self._produce, "library-scan"), (self._count, "library-count")):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                threads.append(thread)
            results = self.engine.captioner.caption_paths(
                self._todo_paths(), self.job.settings, self.cancel, on_batch=self._on_batch
            )
            try:
                for result in results:
                    todo = self._pop_todo(result.path)
                    if result.ok:
                        self.batch.append((result, todo))
                    else:
                        self._failed(result.path, result.error or f"{result.path}: failed", todo)
            finally:
                _close(results)  # stops the decoding threads now, also after an error
            self._flush()
            if self.index is not None:
                self.index.commit()
                if self.scan_complete and not self.cancel.is_set():
                    self._prune()
            self._progress(force=True)
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=10)
            if self.index is not None:
                self.index.close()
        return RunSummary(
            self.captioned,
            self.skipped,
            self.failed,
            tuple(self.failures),
            tuple(self.problems),
            time.monotonic() - self.t0,
            self.cancel.is_set(),
            self.target.name if self.target is not None else None,
            self.engine.index_path if self.index is not None else None,
            self.model,
        )

    def _todo_paths(self) -> Iterator[Path]:
        """The photos to caption, for the captioner; deals with everything else on the way."""
        while not self.cancel.is_set():
            try:
                item = self.items.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                self.scan_complete = True
                return
            if isinstance(item, _Crash):
                raise item.error
            if isinstance(item, _Todo):
                self.todo.setdefault(item.path, deque()).append(item)
                yield item.path
            elif isinstance(item, _Skip):
                self.skipped += 1
                if item.adopt is not None and self.index is not None:
                    self.index.put(item.adopt)
                self.emit(PhotoSkipped(item.path, item.reason, item.caption, item.store))
            elif isinstance(item, _Fail):
                if item.photo:
                    self._failed(item.path, item.reason, None, item.identity)
                else:
                    assert item.problem is not None
                    self.problems.append(item.problem)
                    self.emit(item.problem)
            self._maybe_commit()
            self._progress()

    def _pop_todo(self, path: Path) -> _Todo:
        pending = self.todo[path]
        todo = pending.popleft()
        if not pending:
            del self.todo[path]
        return todo

    def _on_batch(self, n: int) -> None:
        self._flush()

    def _flush(self) -> None:
        """Save and record the captions of one batch: pending in the index, store, done."""
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        if self.target is None or self.index is None:
            for result, _ in batch:
                self.captioned += 1
                self.emit(
                    PhotoCaptioned(
                        result.path,
                        result.caption or "",
                        result.score,
                        result.candidates,
                        None,
                        None,
                    )
                )
            self._progress()
            return
        store, index = self.target, self.index
        for result, todo in batch:
            if result.caption:
                index.put(self._row(todo.path, todo.identity, "pending", result.caption))
        index.commit()
        events: list[PhotoCaptioned | PhotoSkipped] = []
        for result, todo in batch:
            path, caption = result.path, result.caption
            if not caption:
                self._failed(path, f"{path}: the model gave no caption for this photo.", todo)
                continue
            try:
                saved = self.engine.save(store, path, caption, todo.identity, todo.overwrite)
            except CaptionExistsError:
                # Another program captioned it since the scan looked: theirs stays. The next
                # run records it.
                index.forget(path)
                self.skipped += 1
                events.append(PhotoSkipped(path, "has_caption"))
                continue
            except StorageError as error:
                self._failed(path, str(error), todo, caption=caption)
                continue
            after = saved.photo_identity or FileIdentity.of_optional(path) or todo.identity
            index.put(
                self._row(path, after, "done", caption, store=saved.store, store_path=saved.path)
            )
            self.captioned += 1
            events.append(
                PhotoCaptioned(
                    path,
                    caption,
                    result.score,
                    result.candidates,
                    saved.store,
                    saved.path,
                    saved.message,
                )
            )
        index.commit()
        self.last_commit = time.monotonic()
        for event in events:
            self.emit(event)
        self._progress()

    def _failed(
        self,
        path: Path,
        reason: str,
        todo: _Todo | None,
        identity: FileIdentity | None = None,
        caption: str | None = None,
    ) -> None:
        self.failed += 1
        event = PhotoFailed(path, reason, caption)
        self.failures.append(event)
        identity = identity or (todo.identity if todo is not None else None)
        if self.index is not None and identity is not None:
            self.index.put(
                IndexEntry(path, identity.size, identity.mtime_ns, "failed", error=reason)
            )
        self.emit(event)

    def _row(
        self,
        path: Path,
        identity: FileIdentity,
        status: Literal["done", "pending"],
        caption: str,
        store: str | None = None,
        store_path: Path | None = None,
    ) -> IndexEntry:
        assert self.target is not None
        return IndexEntry(
            path,
            identity.size,
            identity.mtime_ns,
            status,
            caption.strip(),
            store or self.target.name,
            store_path,
            self.model,
        )

    def _maybe_commit(self) -> None:
        index = self.index
        if index is None or not index.queued:
            return
        now = time.monotonic()
        if index.queued >= COMMIT_EVERY_ROWS or now - self.last_commit >= COMMIT_EVERY_S:
            index.commit()
            self.last_commit = now

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_progress < PROGRESS_EVERY_S:
            return
        self.last_progress = now
        elapsed = now - self.t0
        self.emit(
            RunProgress(
                self.captioned + self.skipped + self.failed,
                self.total,
                self.captioned,
                self.skipped,
                self.failed,
                elapsed,
                self.captioned / elapsed if elapsed > 0 else 0.0,
            )
        )

    def _recover(self) -> None:
        """Clean up after a run that was killed while writing: its temporary files.

        Pending rows say which folders it was writing in; their captions are adopted or redone
        as the scan reaches them (see _classify).
        """
        assert self.index is not None
        folders: set[Path] = set()
        for entry in self.index.entries("pending"):
            folders.add(entry.path.parent)
            folders.add(Path(os.path.realpath(entry.path)).parent)
        for folder in folders:
            try:
                with os.scandir(folder) as scan:
                    stale = [
                        Path(e.path)
                        for e in scan
                        if e.name.startswith(TEMP_PREFIX)
                        and e.name.endswith(TEMP_SUFFIX)
                        and e.stat(follow_symlinks=False).st_mtime < self.started_wall
                    ]
            except OSError as error:
                log.debug("Could not look for temporary files in %s: %s", folder, error)
                continue
            for temp in stale:
                with contextlib.suppress(OSError):
                    temp.unlink()
                    log.warning("Removed %s, left by a run that was stopped while saving", temp)

    def _prune(self) -> None:
        """Forget photos under the scanned folders that are no longer there."""
        assert self.index is not None
        for root in self.job.roots:
            root = Path(os.path.abspath(root))
            if not root.is_dir():
                continue
            gone = [
                entry.path
                for entry in self.index.entries_under(root)
                if (self.job.recursive or entry.path.parent == root)
                and not os.path.lexists(entry.path)
            ]
            for path in gone:
                self.index.forget(path)
            if gone:
                log.info("Forgot %d photos no longer under %s", len(gone), root)
        self.index.commit()

    # ------------------------------------------------------------ scan threads

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        """Scan and decide, photo by photo, what the main thread has to do (own thread)."""
        reader: LibraryIndex | None = None
        try:
            if self.target is not None:
                reader = LibraryIndex.open(self.engine.index_path, readonly=True)
            target = make_store(self.job.store, self.job.xmp_name) if self.job.store else None
            stores = all_stores(self.job.xmp_name)
            for found in scan_library(self.job.roots, self.job.recursive):
                if self.stop.is_set():
                    return
                item = self._classify(found, reader, target, stores)
                if not self._put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, raised there
            self._put(_Crash(error))
        finally:
            if reader is not None:
                reader.close()
        self._put(_END)

    def _classify(
        self,
        found: FoundPhoto | ScanProblem,
        reader: LibraryIndex | None,
        target: CaptionStore | None,
        stores: list[CaptionStore],
    ) -> _Todo | _Skip | _Fail:
        if isinstance(found, ScanProblem):
            return _Fail(
                found.path, found.reason, None, photo=found.kind != "folder", problem=found
            )
        path, job = found.path, self.job
        identity = FileIdentity(found.size, found.mtime_ns)
        try:
            if target is None or reader is None:  # caption and print only
                if job.skip_captioned and (other := read_caption_any(path, stores)) is not None:
                    return _Skip(path, "has_caption", other.caption, other.store)
                return _Todo(path, identity, overwrite=False)
            row = reader.lookup(path)
            if (
                row is not None
                and row.status == "done"
                and row.same_file(identity.size, identity.mtime_ns)
            ):
                if not job.overwrite:
                    return _Skip(path, "done", row.caption, row.store)
                if row.model == self.model and target.read(path) == row.caption:
                    return _Skip(path, "done", row.caption, row.store)
                return _Todo(path, identity, overwrite=True)
            if job.skip_captioned and (other := read_caption_any(path, stores)) is not None:
                return self._adopt(path, identity, other.caption, other.store, row)
            stored = target.read(path)
            if stored is None:
                return _Todo(path, identity, overwrite=False)
            ours = (
                row is not None
                and row.model is not None
                and row.store == target.name
                and row.caption == stored
            )
            if ours and row is not None and row.status == "pending":
                # A run stopped between saving this caption and recording it: record it now.
                if job.overwrite and row.model != self.model:
                    return _Todo(path, identity, overwrite=True)
                return self._adopt(path, identity, stored, target.name, row)
            if ours:  # our own caption of a photo changed since: caption it again
                return _Todo(path, identity, overwrite=True)
            if job.overwrite:
                return _Todo(path, identity, overwrite=True)
            return self._adopt(path, identity, stored, target.name, row)
        except PhotoScribeError as error:
            # Without knowing what is stored, saving could overwrite it: leave the photo alone.
            return _Fail(path, str(error), identity)

    def _adopt(
        self,
        path: Path,
        identity: FileIdentity,
        caption: str,
        store: str,
        row: IndexEntry | None,
    ) -> _Skip:
        model = row.model if row is not None and row.caption == caption else None
        entry = IndexEntry(
            path, identity.size, identity.mtime_ns, "done", caption, store, None, model
        )
        return _Skip(path, "has_caption", caption, store, adopt=entry)

    def _count(self) -> None:
        """Count the photos the job covers, for progress and time left (own thread)."""
        n = 0
        for found in scan_library(self.job.roots, self.job.recursive, check_files=False):
            if self.stop.is_set():
                return
            if isinstance(found, FoundPhoto) or found.kind != "folder":
                n += 1
        self.total = n


# ---------------------------------------------------------------- rebuilding the index


@dataclass(frozen=True)
class RebuildSummary:
    """The outcome of rebuilding the index from the stores."""

    indexed: int  # photos with a caption, now recorded
    uncaptioned: int  # photos without a caption in any store
    failed: int  # photos whose stores could not be read
    problems: tuple[ScanProblem, ...]
    seconds: float
    cancelled: bool


def rebuild_index(
    roots: tuple[Path, ...],
    recursive: bool = True,
    *,
    index_path: Path | None = None,
    xmp_name: XmpName = "photo.jpg.xmp",
    cancel: threading.Event | None = None,
    on_event: EventHandler | None = None,
    lock_timeout: float | None = None,
) -> RebuildSummary:
    """Record in the index the captions the stores hold for the photos under ``roots``.

    The stores are the source of truth: each photo's caption is read from them (embedded,
    XMP sidecar, text sidecar, in that order) and its row replaced; rows of photos that no
    longer have a caption, or no longer exist, are removed. A damaged index file is moved aside
    first (an IndexReplaced event says so). Use it after the index was lost, or to make photos
    captioned by other programs searchable.
    """
    cancel = cancel or threading.Event()
    emit = on_event or _ignore
    path = Path(index_path) if index_path is not None else default_index_path()
    stores = all_stores(xmp_name)
    t0 = time.monotonic()
    indexed = uncaptioned = failed = 0
    problems: list[ScanProblem] = []
    index = open_index_for_writing(path, timeout=lock_timeout, emit=emit)
    last = time.monotonic()
    complete = False
    try:
        for found in scan_library(roots, recursive):
            if cancel.is_set():
                break
            if isinstance(found, ScanProblem):
                if found.kind == "folder":
                    problems.append(found)
                else:
                    failed += 1
                emit(found)
                continue
            try:
                stored = read_caption_any(found.path, stores)
            except PhotoScribeError as error:
                failed += 1
                emit(PhotoFailed(found.path, str(error)))
                continue
            row = index.lookup(found.path)
            if stored is None:
                uncaptioned += 1
                if row is not None and row.status != "failed":
                    index.forget(found.path)
            else:
                indexed += 1
                model = row.model if row is not None and row.caption == stored.caption else None
                index.put(
                    IndexEntry(
                        found.path,
                        found.size,
                        found.mtime_ns,
                        "done",
                        stored.caption,
                        stored.store,
                        None,
                        model,
                    )
                )
            if index.queued >= COMMIT_EVERY_ROWS:
                index.commit()
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                elapsed = last - t0
                done = indexed + uncaptioned + failed
                emit(RunProgress(done, None, 0, done, failed, elapsed, 0.0))
        else:
            complete = True
        index.commit()
        if complete:
            for root in roots:
                root = Path(os.path.abspath(root))
                if root.is_dir():
                    for entry in index.entries_under(root):
                        if (recursive or entry.path.parent == root) and not os.path.lexists(
                            entry.path
                        ):
                            index.forget(entry.path)
            index.commit()
    finally:
        index.close()
    return RebuildSummary(
        indexed, uncaptioned, failed, tuple(problems), time.monotonic() - t0, not complete
    )
