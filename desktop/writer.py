"""The writer thread: every caption write to a photo or sidecar goes through this one thread."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from core.errors import CaptionExistsError, StorageError
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
    """Queues WriteRequests on a single thread, so writes never race and run in order."""

    written = Signal(object)  # WriteOutcome, on the GUI thread

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = TaskPool("writer", 1, self)
        # What our own writes turned each photo into: a request made before such a write
        # expects the old identity, and that change was ours, not another program's.
        self._successor: dict[tuple[Path, FileIdentity], FileIdentity] = {}

    def submit(self, request: WriteRequest) -> None:
        self._pool.submit(self._write, request, on_done=self.written.emit)

    @property
    def pending(self) -> int:
        return self._pool.pending

    def shutdown(self) -> None:
        """Finish every queued write (each is atomic), then stop the thread."""
        self._pool.shutdown(wait=True)

    def _write(self, request: WriteRequest) -> WriteOutcome:
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
        except CaptionExistsError as error:
            return WriteOutcome(request, error=str(error), exists=True)
        except StorageError as error:
            return WriteOutcome(request, error=str(error))
        except Exception as error:  # noqa: BLE001 - one bad file never stops the others
            log.exception("Unexpected error saving the caption of %s", request.photo)
            return WriteOutcome(
                request,
                error=f"{request.photo}: unexpected error while saving ({error}); "
                "the details are in the log file.",
            )
        after = result.photo_identity
        if expected is not None and after is not None and after != expected:
            self._successor[(request.photo, expected)] = after
        return WriteOutcome(request, result=result)
