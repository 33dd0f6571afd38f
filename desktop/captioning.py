"""The inference thread: one long-lived worker that owns the Captioner and runs the engine."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from core.datatypes import DeviceChoice, Precision
from core.engine import (
    EngineEvent,
    LibraryEngine,
    LibraryJob,
    PhotoSkipped,
    RunProgress,
    RunSummary,
    Writer,
)
from core.errors import NoModelError, PhotoScribeError

if TYPE_CHECKING:
    from core.inference import Captioner

log = logging.getLogger(__name__)

POLL_MS = 50  # how often the GUI thread collects skips and progress while a job runs


@dataclass(frozen=True)
class ModelChoice:
    """Which model file to load, on which device, in which precision; a different choice
    reloads the model."""

    weights: Path | None = None  # None: the model shipped with PhotoScribe
    device: DeviceChoice = "auto"
    precision: Precision | None = None  # None: the default (core.datatypes.default_precision)


@dataclass(frozen=True)
class CaptionJob:
    """One batch for the inference thread: the engine's job, the model to run it, an id.

    The batch runs on core's LibraryEngine, so it resumes where an interrupted one stopped
    (in the app or on the command line): photos captioned and saved before are skipped.
    """

    job_id: int
    job: LibraryJob
    model: ModelChoice = ModelChoice()


@dataclass(frozen=True)
class JobEvents:
    """Engine events of one job, oldest first, as the GUI thread receives them."""

    job_id: int
    events: tuple[EngineEvent, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What the status bar and the About box say about the loaded model."""

    device_name: str
    path: Path | None


@dataclass(frozen=True)
class JobSummary:
    """How a job ended: the engine's summary, or why it could not run."""

    job_id: int
    run: RunSummary | None = None  # None: it never ran (cancelled first, or an error)
    error: str | None = None  # the job could not run (no model, unavailable device, ...)
    no_model: bool = False  # error is "no caption model installed"

    @property
    def captioned(self) -> int:
        return self.run.captioned if self.run is not None else 0

    @property
    def skipped(self) -> int:
        return self.run.skipped if self.run is not None else 0

    @property
    def failed(self) -> int:
        return self.run.failed if self.run is not None else 0

    @property
    def cancelled(self) -> bool:
        return self.run.cancelled if self.run is not None else self.error is None


CaptionerFactory = Callable[[ModelChoice], "Captioner"]


def load_captioner(choice: ModelChoice) -> Captioner:
    """The default factory: the real Captioner (imports torch, so only on the inference thread)."""
    from core.inference import Captioner  # torch: kept off the GUI thread and out of start-up

    return Captioner(choice.weights, device=choice.device, precision=choice.precision)


class InferenceWorker(QObject):
    """Lives on the inference thread; loads the Captioner on first use and keeps it.

    Each job runs on a LibraryEngine with that Captioner, saving through the app's one
    writer thread (``writer``): the engine hands each batch over and goes on captioning. Its
    events wait in a list for ``take_events``: a run over a big library skips thousands of
    photos a second, and one signal each would flood the GUI thread. ``events_ready`` is sent
    for the events the user waits to see (a caption, a failure), at most once until
    ``take_events`` is called; skips and progress are collected by the GUI's polling
    (CaptionService). The worker never touches widgets or the item model.
    """

    model_load_started = Signal()
    model_loaded = Signal(object)  # ModelInfo
    events_ready = Signal()  # call take_events()
    job_finished = Signal(object)  # JobSummary, after the job's last events

    def __init__(self, factory: CaptionerFactory = load_captioner, writer: Writer | None = None):
        super().__init__()
        self._factory = factory
        self._writer = writer
        self._captioner: Captioner | None = None
        self._choice: ModelChoice | None = None
        self._lock = threading.Lock()
        self._events: list[tuple[int, list[EngineEvent]]] = []  # per job, oldest first
        self._notified = False

    def take_events(self) -> list[JobEvents]:
        """The events since the last call, oldest first, per job; safe from any thread."""
        with self._lock:
            events, self._events = self._events, []
            self._notified = False
        return [JobEvents(job_id, tuple(chunk)) for job_id, chunk in events]

    def _deliver(self, job_id: int, event: EngineEvent) -> None:
        with self._lock:
            if not self._events or self._events[-1][0] != job_id:
                self._events.append((job_id, []))
            chunk = self._events[-1][1]
            if isinstance(event, RunProgress) and chunk and isinstance(chunk[-1], RunProgress):
                chunk[-1] = event  # only the latest counts matter
            else:
                chunk.append(event)
            if self._notified or isinstance(event, (PhotoSkipped, RunProgress)):
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
            return JobSummary(job.job_id)
        captioner = self._ensure_model(job.model)
        engine = LibraryEngine(captioner, writer=self._writer)
        run = engine.run(job.job, cancel, lambda event: self._deliver(job.job_id, event))
        return JobSummary(job.job_id, run)


class CaptionService(QObject):
    """The GUI side of the inference thread: starts and cancels jobs, passes their events on.

    ``events_arrived`` carries JobEvents, the events of one job, at once for
    captions and failures and every POLL_MS for skips and progress; the receiver
    decides what a cancelled job's late events still mean (a caption the engine saved is on
    disk whether or not the job was cancelled). ``job_finished`` comes for every job,
    cancelled ones included, after its last events, so the GUI knows when the inference
    thread has really stopped.
    """

    model_load_started = Signal()
    model_loaded = Signal(object)  # ModelInfo
    events_arrived = Signal(object)  # JobEvents
    job_finished = Signal(object)  # JobSummary of every job, cancelled ones included
    _job_requested = Signal(object, object)  # CaptionJob, threading.Event -> worker

    def __init__(
        self,
        factory: CaptionerFactory = load_captioner,
        parent: QObject | None = None,
        writer: Writer | None = None,
    ) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("inference")
        self._worker = InferenceWorker(factory, writer)
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

    def start(self, job: LibraryJob, model: ModelChoice) -> CaptionJob:
        """Queue ``job`` to run with ``model``; any current job is cancelled first."""
        self.cancel()
        request = CaptionJob(self._next_id, job, model)
        self._next_id += 1
        self._current = request.job_id
        self._cancel = threading.Event()
        self._running += 1
        self._poll.start()
        self._job_requested.emit(request, self._cancel)
        return request

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
        for events in self._worker.take_events():
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
