"""The inference thread: one long-lived worker that owns the Captioner and runs the engine."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from core.datatypes import CaptionSettings, DeviceChoice
from core.engine import (
    EngineEvent,
    LibraryEngine,
    LibraryJob,
    PhotoCaptioned,
    PhotoSkipped,
    RunProgress,
    RunSummary,
)
from core.errors import NoModelError, PhotoScribeError, StorageError
from core.index import default_index_path
from core.storage import (
    CaptionStore,
    FileIdentity,
    StoreKind,
    WriteResult,
    XmpName,
    make_store,
)
from desktop.writer import WriteRequest

if TYPE_CHECKING:
    from core.inference import Captioner

log = logging.getLogger(__name__)

POLL_MS = 50  # how often the GUI thread collects skips and progress while a job runs


@dataclass(frozen=True)
class ModelChoice:
    """Which model file to load, on which device; a different choice reloads the model."""

    weights: Path | None = None  # None: the model shipped with PhotoScribe
    device: DeviceChoice = "auto"


@dataclass(frozen=True)
class CaptionJob:
    """Everything the inference thread needs for one batch, as plain values.

    The batch runs on core's LibraryEngine, so it resumes where an interrupted one stopped
    (in the app or on the command line): photos captioned and saved before are skipped.
    """

    job_id: int
    roots: tuple[Path, ...]  # the open folder, or the photos picked
    recursive: bool = False  # with a folder: its subfolders too
    settings: CaptionSettings = CaptionSettings()
    model: ModelChoice = ModelChoice()
    store: StoreKind | None = "txt"  # where each caption is saved; None: it waits for review
    xmp_name: XmpName = "photo.jpg.xmp"  # XMP sidecar naming, also to find existing captions
    overwrite: bool = False  # replace captions that this model did not write
    skip_captioned: bool = True  # leave photos that already have a caption in any store
    index_path: Path | None = None  # the library index; None: default_index_path()


@dataclass(frozen=True)
class JobEvent:
    """One event of the engine's run for a job, as the GUI thread receives it."""

    job_id: int
    event: EngineEvent
    identity: FileIdentity | None = None  # PhotoCaptioned: the photo after its caption was saved


@dataclass(frozen=True)
class ModelInfo:
    """What the status bar and the About box say about the loaded model."""

    device_name: str
    path: Path | None


@dataclass(frozen=True)
class JobSummary:
    job_id: int
    captioned: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: bool = False
    error: str | None = None  # the job could not run (no model, unavailable device, ...)
    no_model: bool = False  # error is "no caption model installed"


CaptionerFactory = Callable[[ModelChoice], "Captioner"]
WriteFunction = Callable[[WriteRequest], WriteResult]
"""Saves one caption and returns where it went; raises CaptionExistsError or StorageError."""


def load_captioner(choice: ModelChoice) -> Captioner:
    """The default factory: the real Captioner (imports torch, so only on the inference thread)."""
    from core.inference import Captioner  # torch: kept off the GUI thread and out of start-up

    return Captioner(choice.weights, device=choice.device)


def write_here(request: WriteRequest) -> WriteResult:
    """A WriteFunction that writes on the calling thread (for a worker without the app)."""
    store = make_store(request.store, request.xmp_name)
    return store.write(
        request.photo, request.caption, expected=request.expected, overwrite=request.overwrite
    )


class InferenceWorker(QObject):
    """Lives on the inference thread; loads the Captioner on first use and keeps it.

    Each job runs on a LibraryEngine with that Captioner. Its events wait in a list for
    ``take_events``: a run over a big library skips thousands of photos a second, and one
    signal each would flood the GUI thread. ``events_ready`` is sent for the events the user
    waits to see (a caption, a failure), at most once until ``take_events`` is called; skips
    and progress are collected by the GUI's polling (CaptionService). The worker never
    touches widgets or the item model.
    """

    model_load_started = Signal()
    model_loaded = Signal(object)  # ModelInfo
    events_ready = Signal()  # call take_events()
    job_finished = Signal(object)  # JobSummary, after the job's last events

    def __init__(
        self, factory: CaptionerFactory = load_captioner, write: WriteFunction = write_here
    ) -> None:
        super().__init__()
        self._factory = factory
        self._write = write
        self._captioner: Captioner | None = None
        self._choice: ModelChoice | None = None
        self._lock = threading.Lock()
        self._events: list[JobEvent] = []
        self._notified = False

    def take_events(self) -> list[JobEvent]:
        """The events since the last call, oldest first; safe to call from any thread."""
        with self._lock:
            events, self._events = self._events, []
            self._notified = False
        return events

    def _deliver(self, item: JobEvent) -> None:
        with self._lock:
            last = self._events[-1] if self._events else None
            if (
                isinstance(item.event, RunProgress)
                and last is not None
                and isinstance(last.event, RunProgress)
                and last.job_id == item.job_id
            ):
                self._events[-1] = item  # only the latest counts matter
            else:
                self._events.append(item)
            if self._notified or isinstance(item.event, (PhotoSkipped, RunProgress)):
                return
            self._notified = True
        self.events_ready.emit()

    def _ensure_model(self, choice: ModelChoice) -> Captioner:
        if self._captioner is None or self._choice != choice:
            self._captioner = None  # free the old model before loading another
            self.model_load_started.emit()
            self._captioner = self._factory(choice)
            self._choice = choice
            checkpoint = self._captioner.checkpoint
            self.model_loaded.emit(ModelInfo(self._captioner.device_name, checkpoint.path))
        return self._captioner

    @Slot(object, object)
    def run_job(self, job: CaptionJob, cancel: threading.Event) -> None:
        summary = JobSummary(job.job_id)
        try:
            summary = self._run(job, cancel)
        except NoModelError as error:
            summary = JobSummary(job.job_id, error=str(error), no_model=True)
        except (PhotoScribeError, ValueError) as error:  # a damaged model, the index in use, ...
            summary = JobSummary(job.job_id, error=str(error))
        except Exception as error:  # noqa: BLE001 - reported to the user, never swallowed
            log.exception("Captioning job %d failed", job.job_id)
            summary = JobSummary(
                job.job_id, error=f"captioning stopped by an unexpected error: {error}"
            )
        self.job_finished.emit(summary)

    def _run(self, job: CaptionJob, cancel: threading.Event) -> JobSummary:
        if cancel.is_set():
            return JobSummary(job.job_id, cancelled=True)
        captioner = self._ensure_model(job.model)
        saved: dict[Path, FileIdentity | None] = {}  # identity after our write, until reported

        def save(
            store: CaptionStore,
            photo: Path,
            caption: str,
            expected: FileIdentity,
            overwrite: bool,
        ) -> WriteResult:
            # The engine's save hook: the write goes to the writer thread like every other.
            request = WriteRequest(
                photo,
                caption,
                store.name,  # type: ignore[arg-type]  # a CaptionStore's name is a StoreKind
                xmp_name=job.xmp_name,
                overwrite=overwrite,
                expected=expected,
                generated=True,
                record=False,  # the engine records it in the index itself
            )
            result = self._write(request)
            try:
                saved[photo] = result.photo_identity or FileIdentity.of_optional(photo)
            except StorageError:
                saved[photo] = None
            return result

        def on_event(event: EngineEvent) -> None:
            identity = saved.pop(event.path, None) if isinstance(event, PhotoCaptioned) else None
            self._deliver(JobEvent(job.job_id, event, identity))

        engine = LibraryEngine(
            captioner, index_path=job.index_path or default_index_path(), save=save
        )
        library_job = LibraryJob(
            roots=job.roots,
            recursive=job.recursive,
            store=job.store,
            xmp_name=job.xmp_name,
            overwrite=job.overwrite,
            skip_captioned=job.skip_captioned,
            settings=job.settings,
        )
        summary: RunSummary = engine.run(library_job, cancel=cancel, on_event=on_event)
        return JobSummary(
            job.job_id,
            captioned=summary.captioned,
            failed=summary.failed,
            skipped=summary.skipped,
            cancelled=summary.cancelled,
        )


class CaptionService(QObject):
    """The GUI side of the inference thread: starts and cancels jobs, passes their events on.

    ``events_arrived`` carries lists of JobEvent, each tagged with its job, at once for
    captions and failures and every POLL_MS for skips and progress; the receiver
    decides what a cancelled job's late events still mean (a caption the engine saved is on
    disk whether or not the job was cancelled). ``job_finished`` comes for every job,
    cancelled ones included, after its last events, so the GUI knows when the inference
    thread has really stopped.
    """

    model_load_started = Signal()
    model_loaded = Signal(object)  # ModelInfo
    events_arrived = Signal(object)  # list[JobEvent]
    job_finished = Signal(object)  # JobSummary of every job, cancelled ones included
    _job_requested = Signal(object, object)  # CaptionJob, threading.Event -> worker

    def __init__(
        self,
        factory: CaptionerFactory = load_captioner,
        parent: QObject | None = None,
        write: WriteFunction = write_here,
    ) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("inference")
        self._worker = InferenceWorker(factory, write)
        self._worker.moveToThread(self._thread)
        self._thread.finished.connect(self._worker.deleteLater)
        self._job_requested.connect(self._worker.run_job)
        self._worker.model_load_started.connect(self.model_load_started)
        self._worker.model_loaded.connect(self.model_loaded)
        self._worker.events_ready.connect(self._take_events)
        self._worker.job_finished.connect(self._on_finished)
        self._thread.start()
        self._next_id = 1
        self._current: int | None = None
        self._cancel: threading.Event | None = None
        self._running = 0  # jobs sent to the worker whose job_finished has not come back
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._take_events)

    @property
    def busy(self) -> bool:
        """A job is current (running or queued) and not cancelled."""
        return self._current is not None

    def start(self, roots: tuple[Path, ...], **job_fields: Any) -> CaptionJob:
        """Queue a job for ``roots``; any current job is cancelled first."""
        self.cancel()
        job = CaptionJob(self._next_id, roots, **job_fields)
        self._next_id += 1
        self._current = job.job_id
        self._cancel = threading.Event()
        self._running += 1
        self._poll.start()
        self._job_requested.emit(job, self._cancel)
        return job

    def cancel(self) -> None:
        """Stop the current job: the engine sees the token between photos and decoding steps."""
        if self._cancel is not None:
            self._cancel.set()
        self._current = None
        self._cancel = None

    def shutdown(self) -> None:
        """Cancel, let the worker finish the step in progress, and stop the thread."""
        self.cancel()
        self._poll.stop()
        self._thread.quit()
        self._thread.wait()

    @Slot()
    def _take_events(self) -> None:
        events = self._worker.take_events()
        if events:
            self.events_arrived.emit(events)

    @Slot(object)
    def _on_finished(self, summary: JobSummary) -> None:
        self._take_events()  # the job's last events come before its end
        self._running -= 1
        if self._running == 0:
            self._poll.stop()
        if summary.job_id == self._current:
            self._current = None
            self._cancel = None
        self.job_finished.emit(summary)
