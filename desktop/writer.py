"""The writer thread: every caption write to a photo or sidecar goes through this one thread."""

from __future__ import annotations

import logging
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from core.errors import CaptionExistsError, LibraryIndexError, StorageError
from core.index import IndexEntry, LibraryIndex
from core.storage import FileIdentity, StoreKind, WriteResult, XmpName, make_store
from desktop.tasks import TaskPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteRequest:
    """A snapshot of what to write: the caption text, where, and the photo we expect to find."""

    photo: Path
    caption: str
    store: StoreKind
    xmp_name: XmpName = "photo.jpg.xmp"
    overwrite: bool = False
    expected: FileIdentity | None = None  # the photo when its caption was read or made
    generated: bool = False  # made by the model (not typed by the user)
    record: bool = True  # note it in the library index (the engine records its own writes)


@dataclass(frozen=True)
class WriteOutcome:
    request: WriteRequest
    result: WriteResult | None = None
    error: str | None = None  # readable, names the file
    exists: bool = False  # refused because another caption is stored and overwrite was off

    @property
    def ok(self) -> bool:
        return self.result is not None


class CaptionWriter(QObject):
    """Queues WriteRequests on a single thread, so writes never race and run in order.

    ``submit`` reports each outcome with the ``written`` signal on the GUI thread;
    ``write_and_wait`` is for the inference thread, whose library engine saves each caption
    through this thread and waits for it. With ``index_path`` the captions saved by
    ``submit`` are also noted in the library index, so that searching finds them.
    """

    written = Signal(object)  # WriteOutcome, on the GUI thread

    def __init__(self, parent: QObject | None = None, index_path: Path | None = None) -> None:
        super().__init__(parent)
        self._pool = TaskPool("writer", 1, self)
        self._index_path = index_path
        self._index: LibraryIndex | None = None  # opened on the writer thread when first needed
        # What our own writes turned each photo into: a request made before such a write
        # expects the old identity, and that change was ours, not another program's.
        self._successor: dict[tuple[Path, FileIdentity], FileIdentity] = {}

    def submit(self, request: WriteRequest) -> None:
        self._pool.submit(self._write, request, on_done=self.written.emit)

    def write_and_wait(self, request: WriteRequest) -> WriteResult:
        """Write on the writer thread and wait for it; call from a worker thread, never the GUI.

        Raises like CaptionStore.write: CaptionExistsError when another caption is stored and
        ``overwrite`` is off, another StorageError (naming the file) when it cannot be saved.
        That is the contract of core.engine's ``save`` function. No ``written`` signal.
        """
        future = self._pool.submit(self._store, request, on_error=_reported_by_caller)
        try:
            return future.result()
        except CancelledError:
            raise StorageError(
                request.photo, "not saved: PhotoScribe is closing. Caption it again later."
            ) from None

    @property
    def pending(self) -> int:
        return self._pool.pending

    def shutdown(self) -> None:
        """Finish every queued write (each is atomic), then stop the thread."""
        self._pool.submit(self._close_index, on_error=_reported_by_caller)
        self._pool.shutdown(wait=True)

    # ---------------------------------------------------------------- on the writer thread

    def _write(self, request: WriteRequest) -> WriteOutcome:
        try:
            return WriteOutcome(request, result=self._store(request))
        except CaptionExistsError as error:
            return WriteOutcome(request, error=str(error), exists=True)
        except StorageError as error:
            return WriteOutcome(request, error=str(error))

    def _store(self, request: WriteRequest) -> WriteResult:
        expected = request.expected  # only this thread touches _successor
        seen: set[FileIdentity] = set()
        while expected is not None and (request.photo, expected) in self._successor:
            seen.add(expected)
            expected = self._successor[(request.photo, expected)]
            if expected in seen:
                break
        try:
            store = make_store(request.store, request.xmp_name)
            result = store.write(
                request.photo, request.caption, expected=expected, overwrite=request.overwrite
            )
        except StorageError:
            raise
        except Exception as error:  # noqa: BLE001 - one bad file never stops the others
            log.exception("Unexpected error saving the caption of %s", request.photo)
            raise StorageError(
                request.photo,
                f"unexpected error while saving ({error}); the details are in the log file.",
            ) from error
        after = result.photo_identity
        if expected is not None and after is not None and after != expected:
            self._successor[(request.photo, expected)] = after
        if request.record:
            self._record(request, result)
        return result

    def _record(self, request: WriteRequest, result: WriteResult) -> None:
        """Note a saved caption in the library index; the caption is safe in its store anyway."""
        if self._index_path is None:
            return
        identity = result.photo_identity or FileIdentity.of_optional(request.photo)
        if identity is None:
            return
        try:
            if self._index is None:
                self._index = LibraryIndex.open(self._index_path)
            self._index.put(
                IndexEntry(
                    request.photo,
                    identity.size,
                    identity.mtime_ns,
                    "done",
                    request.caption.strip(),
                    result.store,
                    result.path,
                )
            )
            self._index.commit()
        except LibraryIndexError as error:
            # Searching misses this caption until the next caption run finds it in its store.
            log.warning("Caption of %s not noted in the library index: %s", request.photo, error)
            self._close_index()

    def _close_index(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            try:
                index.close()
            except LibraryIndexError as error:
                log.warning("Library index not closed cleanly: %s", error)


def _reported_by_caller(error: BaseException) -> None:
    """on_error for work whose caller waits for the result and sees the error itself."""
