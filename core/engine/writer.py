"""The writer: one thread per process that saves captions and owns the only index connection.

Every caption write to a photo or a sidecar, the engine's and the user's alike, runs on this
thread in the order it was handed over, and every row of the library index is written through
its one connection (SQLite allows one writer; readers open their own read-only connections).
Callers hand over a snapshot (``SaveRequest``) and go on; the outcome comes back through a
Future and an optional callback, which runs on the writer thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeVar

from core.datatypes import CaptionResult
from core.engine.job import IndexReplaced
from core.errors import (
    CaptionExistsError,
    IndexDamagedError,
    LibraryIndexError,
    StorageError,
)
from core.index import (
    IndexEntry,
    LibraryIndex,
    UnsavedCaption,
    default_index_path,
    move_aside,
)
from core.storage import FileIdentity, SaveRequest, WriteResult, save_caption

log = logging.getLogger(__name__)

T = TypeVar("T")

COMMIT_EVERY_ROWS = 500  # rows of skips/adoptions/failures grouped into one index transaction
COMMIT_EVERY_S = 2.0


@dataclass(frozen=True, kw_only=True)
class SaveOutcome:
    """What became of one SaveRequest."""

    request: SaveRequest
    result: WriteResult | None = None
    error: str | None = None  # readable, names the file
    exists: bool = False  # refused: another caption is stored and overwrite was off
    identity: FileIdentity | None = None  # the photo after the write
    problem: str | None = None  # the error's kind (core.errors class name), for summaries

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def made(self) -> CaptionResult | None:
        """The model's result the saved caption came from (None for a typed caption)."""
        return self.request.made


class WriterClosedError(StorageError):
    """The writer was closed before this save could run."""


def open_index_for_writing(
    path: Path, *, replace_damaged: bool = True, timeout: float | None = None
) -> tuple[LibraryIndex, IndexReplaced | None]:
    """Open the index at ``path`` for writing; a damaged file is moved aside and replaced.

    The stores hold every caption, so nothing is lost by starting a new index: the next run
    recognises captioned photos from their stores instead of captioning them again.
    """
    try:
        return LibraryIndex.open(path, timeout=timeout), None
    except IndexDamagedError as error:
        if not replace_damaged or not path.exists():
            raise
        moved = move_aside(path)
        return LibraryIndex.open(path, timeout=timeout), IndexReplaced(path, moved, error.problem)


class _Task:
    def __init__(self, fn: Callable[[], object], future: Future) -> None:
        self.fn = fn
        self.future = future


_STOP = object()


class Writer:
    """The writer thread (started on first use) and the index connection it owns.

    ``save`` and ``save_batch`` write captions; ``record`` and ``forget`` queue index rows,
    committed in groups when the writer has nothing else to do; ``with_index`` runs any
    index work on the thread. ``flush`` waits for everything handed over so far; ``close``
    finishes the queue and stops. A BaseException on the thread (the process being killed)
    stops it at once: nothing more is written or committed, and every later call raises it.
    """

    def __init__(
        self,
        index_path: Path | None = None,
        *,
        lock_timeout: float | None = None,
        replace_damaged: bool = True,
        record_user_saves: bool = True,
    ) -> None:
        self.index_path = Path(index_path) if index_path is not None else default_index_path()
        self.lock_timeout = lock_timeout
        self.replace_damaged = replace_damaged
        self.record_user_saves = record_user_saves
        self._tasks: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._pending = 0
        self._count_lock = threading.Lock()
        # Only the writer thread touches what follows.
        self._index: LibraryIndex | None = None
        self._fatal: BaseException | None = None
        self._deferred: LibraryIndexError | None = None  # a background commit that failed
        self._last_commit = time.monotonic()
        # What our own writes turned each photo into: a request made before such a write
        # expects the old identity, and that change was ours, not another program's.
        self._successor: dict[tuple[Path, FileIdentity], FileIdentity] = {}

    # ---------------------------------------------------------------- any thread

    def save(
        self, request: SaveRequest, on_done: Callable[[SaveOutcome], None] | None = None
    ) -> Future[SaveOutcome]:
        """Save one caption (a user's save, recorded in the index as done)."""

        def work() -> SaveOutcome:
            outcome = self._save(request)
            if outcome.ok and self.record_user_saves:
                self._record_saved(outcome, immediately=True)
            # The user chose this text: whatever was kept for the photo before is superseded
            # when it is saved, and it is kept (it exists nowhere else) when it is not.
            self._note_unsaved(outcome, superseded=True)
            return outcome

        return self._submit(work, on_done)

    def save_batch(
        self,
        requests: Sequence[SaveRequest],
        on_done: Callable[[list[SaveOutcome]], None] | None = None,
    ) -> Future[list[SaveOutcome]]:
        """Save an engine batch: recorded as pending, written, then recorded as done.

        The pending rows are committed before any file is written, so a run killed in between
        leaves a trace the next run acts on (see core.engine.plan).
        """

        def work() -> list[SaveOutcome]:
            index = self._open()
            for request in requests:
                identity = request.expected
                if identity is not None:
                    index.put(_row(request, identity, "pending"))
            self._commit()
            outcomes = [self._save(request) for request in requests]
            kept_any = any(not o.ok and not o.exists for o in outcomes) or index.has_unsaved()
            for outcome in outcomes:
                if kept_any:
                    self._note_unsaved(outcome, superseded=False)
                if outcome.ok:
                    self._record_saved(outcome, immediately=False)
                elif outcome.exists:
                    # Another program captioned it since the scan looked: theirs stays, and
                    # the next run records it.
                    index.forget(outcome.request.photo)
                elif outcome.request.expected is not None:
                    expected = outcome.request.expected
                    index.put(
                        IndexEntry(
                            path=outcome.request.photo,
                            size=expected.size,
                            mtime_ns=expected.mtime_ns,
                            status="failed",
                            error=outcome.error,
                        )
                    )
            self._commit()
            return outcomes

        return self._submit(work, on_done)

    def discard_unsaved(self, photos: Sequence[Path]) -> Future[None]:
        """Forget the captions kept unsaved for ``photos`` (the user discarded them)."""

        def work() -> None:
            index = self._open()
            for photo in photos:
                index.drop_unsaved(photo)
            self._commit()

        return self._submit(work, None)

    def record(self, entry: IndexEntry) -> None:
        """Queue a row for the index (committed with others soon)."""
        self._submit(lambda: self._open().put(entry), None)

    def forget(self, photo: Path) -> None:
        """Queue the removal of a photo's row."""
        self._submit(lambda: self._open().forget(photo), None)

    def with_index(self, work: Callable[[LibraryIndex], T]) -> Future[T]:
        """Run ``work(index)`` on the writer thread; its queued changes are committed after."""

        def run() -> T:
            result = work(self._open())
            self._commit()
            return result

        return self._submit(run, None)

    def open_index(self) -> IndexReplaced | None:
        """Open the index now (waiting for it); says so when a damaged one was replaced.

        Raises LibraryIndexError (IndexLockedError, ...) when the index cannot be used.
        """
        return self._submit(self._open_index, None).result()

    def flush(self) -> None:
        """Wait until everything handed over so far is written and committed.

        Raises what stopped the thread, or a LibraryIndexError from a background commit.
        """
        self._submit(self._commit, None).result()
        error, self._deferred = self._deferred, None
        if error is not None:
            raise error

    @property
    def pending(self) -> int:
        """Tasks handed over and not finished."""
        with self._count_lock:
            return self._pending

    def close(self) -> None:
        """Finish every queued write (each is atomic), commit, close the index, stop."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._tasks.put(_STOP)
            thread.join()

    # ---------------------------------------------------------------- the thread

    def _submit(self, fn: Callable[[], T], on_done: Callable[[T], None] | None) -> Future[T]:
        future: Future[T] = Future()
        if on_done is not None:
            future.add_done_callback(lambda done: _deliver(done, on_done))
        with self._start_lock:
            if self._closed:
                future.set_exception(
                    WriterClosedError(None, "not saved: PhotoScribe is closing. Try again later.")
                )
                return future
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="writer", daemon=True)
                self._thread.start()
            with self._count_lock:
                self._pending += 1
            self._tasks.put(_Task(fn, future))
        return future

    def _loop(self) -> None:
        while True:
            task = self._tasks.get()
            if task is _STOP:
                break
            assert isinstance(task, _Task)
            try:
                if self._fatal is not None:
                    task.future.set_exception(self._fatal)
                    continue
                try:
                    result = task.fn()
                except BaseException as error:  # noqa: BLE001 - handed to whoever waits
                    if not isinstance(error, Exception):
                        self._die(error)
                    task.future.set_exception(error)
                    continue
                if self._tasks.empty() or self._due():
                    self._background_commit()
                task.future.set_result(result)
            finally:
                with self._count_lock:
                    self._pending -= 1
        if self._fatal is None:
            self._background_commit()
            if self._index is not None:
                self._index.close()
                self._index = None

    def _die(self, error: BaseException) -> None:
        """As if the process were killed now: nothing queued is committed."""
        self._fatal = error
        if self._index is not None:
            try:
                self._index.close(discard=True)
            except LibraryIndexError as close_error:
                log.debug("Index not closed: %s", close_error)
            self._index = None

    def _open_index(self) -> IndexReplaced | None:
        if self._index is not None:
            return None
        self._index, replaced = open_index_for_writing(
            self.index_path, replace_damaged=self.replace_damaged, timeout=self.lock_timeout
        )
        return replaced

    def _open(self) -> LibraryIndex:
        if self._index is None:
            replaced = self._open_index()
            if replaced is not None:
                log.warning("Library index %s replaced: %s", replaced.path, replaced.reason)
        assert self._index is not None
        return self._index

    def _due(self) -> bool:
        index = self._index
        return index is not None and (
            index.queued >= COMMIT_EVERY_ROWS
            or time.monotonic() - self._last_commit >= COMMIT_EVERY_S
        )

    def _commit(self) -> None:
        if self._index is not None:
            self._index.commit()
        self._last_commit = time.monotonic()

    def _background_commit(self) -> None:
        try:
            self._commit()
        except LibraryIndexError as error:
            log.warning("Library index changes not saved yet: %s", error)
            self._deferred = error

    def _save(self, request: SaveRequest) -> SaveOutcome:
        expected = request.expected
        seen: set[FileIdentity] = set()
        while expected is not None and (request.photo, expected) in self._successor:
            seen.add(expected)
            expected = self._successor[(request.photo, expected)]
            if expected in seen:
                break
        try:
            result = save_caption(_with_expected(request, expected))
        except CaptionExistsError as error:
            return SaveOutcome(request=request, error=str(error), exists=True)
        except StorageError as error:
            return SaveOutcome(request=request, error=str(error), problem=type(error).__name__)
        except Exception as error:  # noqa: BLE001 - one bad file never stops the others
            log.exception("Unexpected error saving the caption of %s", request.photo)
            return SaveOutcome(
                request=request,
                error=f"{request.photo}: unexpected error while saving ({error}); the details "
                "are in the log file.",
                problem=type(error).__name__,
            )
        after = result.photo_identity
        if after is None:
            try:
                after = FileIdentity.of_optional(request.photo)
            except StorageError:
                after = None
        if expected is not None and after is not None and after != expected:
            self._successor[(request.photo, expected)] = after
        return SaveOutcome(request=request, result=result, identity=after)

    def _note_unsaved(self, outcome: SaveOutcome, *, superseded: bool) -> None:
        """Keep a caption that could not be saved in the index; forget one saved since.

        A caption typed by a person is never replaced by a generated one, nor forgotten
        because a generated one was saved (``superseded`` False: an engine save).
        """
        request = outcome.request
        if outcome.exists:
            return  # another caption is stored, which stays: nothing of ours is lost
        try:
            index = self._open()
            held = None if superseded else index.unsaved(request.photo)
            typed = request.model is None and request.confidence is None
            text = request.caption.strip()
            if outcome.ok:
                if held is None or not held.typed or held.caption.strip() == text:
                    index.drop_unsaved(request.photo)
            elif text and (held is None or not held.typed or typed):
                index.keep_unsaved(
                    UnsavedCaption(
                        path=request.photo,
                        caption=text,
                        typed=typed,
                        store=request.store,
                        error=outcome.error,
                        model=request.model,
                        confidence=request.confidence,
                    )
                )
            if superseded:
                self._commit()
        except LibraryIndexError as error:
            if not superseded:
                raise
            log.warning("Unsaved caption of %s not noted in the index: %s", request.photo, error)

    def _record_saved(self, outcome: SaveOutcome, *, immediately: bool) -> None:
        """Note a saved caption in the index; the caption is safe in its store anyway."""
        assert outcome.result is not None
        identity = outcome.identity
        if identity is None:
            return
        try:
            self._open().put(_row(outcome.request, identity, "done", outcome.result))
            if immediately:
                self._commit()
        except LibraryIndexError as error:
            if not immediately:
                raise
            # Searching misses this caption until the next run finds it in its store.
            log.warning(
                "Caption of %s not noted in the library index: %s", outcome.request.photo, error
            )
            if self._index is not None:
                self._index.close(discard=True)
                self._index = None


def _row(
    request: SaveRequest,
    identity: FileIdentity,
    status: Literal["done", "pending"],
    result: WriteResult | None = None,
) -> IndexEntry:
    return IndexEntry(
        path=request.photo,
        size=identity.size,
        mtime_ns=identity.mtime_ns,
        status=status,
        caption=request.caption.strip(),
        store=result.store if result is not None else request.store,
        store_path=result.path if result is not None else None,
        model=request.model,
        confidence=request.confidence,
    )


def _with_expected(request: SaveRequest, expected: FileIdentity | None) -> SaveRequest:
    return request if expected == request.expected else replace(request, expected=expected)


def _deliver(future: Future[T], on_done: Callable[[T], None]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    try:
        on_done(future.result())
    except Exception:  # noqa: BLE001 - a callback's bug must not stop the writer
        log.exception("Error handling a saved caption")
