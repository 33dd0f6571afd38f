"""The inference thread: one long-lived worker that owns the Captioner and runs the engine."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThread, Signal, Slot

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

SEND_EVERY_S = 0.1  # skips and progress are sent to the GUI thread at most this often
SEND_AT_MOST = 1000  # events in one signal at most


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
    events leave as ``events_ready`` signals, each carrying a JobEvents: at once for the
    events the user waits to see (a caption, a failure), gathered for the rest (a run over a
    big library skips thousands of photos a second, and one signal each would flood the GUI
    thread): skips and progress go at most every SEND_EVERY_S, progress also when a batch
    goes to the model or is saved, and whatever is gathered goes with the next caption,
    failure or the job's end. The worker never touches widgets or the
    item model.
    """

    model_load_started = Signal()
    model_loaded = Signal(object)  # ModelInfo
    events_ready = Signal(object)  # JobEvents, oldest first
    job_finished = Signal(object)  # JobSummary, after the job's last events

    def __init__(self, factory: CaptionerFactory = load_captioner, writer: Writer | None = None):
        super().__init__()
        self._factory = factory
        self._writer = writer
        self._captioner: Captioner | None = None
        self._choice: ModelChoice | None = None
        # Events gathered for the GUI thread. The engine's calls never overlap (it reports
        # from its own thread and the writer's, one at a time), so no lock.
        self._gathered: list[EngineEvent] = []
        self._sent_at = 0.0
        self._in_flight = 0  # as last sent

    def _deliver(self, job_id: int, event: EngineEvent) -> None:
        gathered = self._gathered
        if isinstance(event, RunProgress) and gathered and isinstance(gathered[-1], RunProgress):
            gathered[-1] = event  # only the latest counts matter
        else:
            gathered.append(event)
        now = time.monotonic()
        if (
            not isinstance(event, (PhotoSkipped, RunProgress))
            # A batch went to the model or was saved: the user waits to see that too.
            or (isinstance(event, RunProgress) and event.in_flight != self._in_flight)
            or now - self._sent_at >= SEND_EVERY_S
            or len(gathered) >= SEND_AT_MOST
        ):
            if isinstance(event, RunProgress):
                self._in_flight = event.in_flight
            self._send(job_id, now)

    def _send(self, job_id: int, now: float) -> None:
        if self._gathered:
            events, self._gathered = tuple(self._gathered), []
            self._sent_at = now
            self.events_ready.emit(JobEvents(job_id, events))

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
        try:
            run = engine.run(job.job, cancel, lambda event: self._deliver(job.job_id, event))
        finally:
            self._send(job.job_id, time.monotonic())  # the job's last events, before its end
        return JobSummary(job.job_id, run)


class CaptionService(QObject):
    """The GUI side of the inference thread: starts and cancels jobs, passes their events on.

    ``events_arrived`` carries JobEvents, the events of one job as the worker sends them (at
    once for captions and failures, gathered for skips and progress); the receiver decides
    what a cancelled job's late events still mean (a caption the engine saved is on disk
    whether or not the job was cancelled). ``job_finished`` comes for every job, cancelled
    ones included, after its last events, so the GUI knows when the inference thread has
    really stopped.
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
        # Queued (the worker's signals come from other threads): both arrive on the GUI
        # thread in the order sent, so a job's events come before its end.
        self._worker.events_ready.connect(self.events_arrived)
        self._worker.job_finished.connect(self._on_finished)
        self._thread.start()
        self._next_id = 1
        self._current: int | None = None
        self._cancel: threading.Event | None = None

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
        self._thread.quit()
        self._thread.wait()

    @Slot(object)
    def _on_finished(self, summary: JobSummary) -> None:
        if summary.job_id == self._current:
            self._current = None
            self._cancel = None
        self.job_finished.emit(summary)
