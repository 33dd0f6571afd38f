"""The inference thread: one long-lived worker that owns the Captioner and runs caption jobs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.errors import NoModelError, PhotoScribeError, StorageError
from core.storage import FileIdentity, StoredCaption, XmpName, all_stores, read_caption_any

if TYPE_CHECKING:
    from core.inference import Captioner, CaptionResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    """Which model file to load, on which device; a different choice reloads the model."""

    weights: Path | None = None  # None: the model shipped with PhotoScribe
    device: str = "auto"


@dataclass(frozen=True)
class CaptionOptions:
    """The user's decoding choices; becomes core's CaptionSettings on the inference thread.

    (CaptionSettings lives in core.inference, which imports torch; the GUI thread never does.)
    """

    beam_size: int = 3
    batch_size: int = 8
    n_candidates: int = 3


@dataclass(frozen=True)
class CaptionJob:
    """Everything the inference thread needs for one batch, as plain values."""

    job_id: int
    paths: tuple[Path, ...]
    options: CaptionOptions = CaptionOptions()
    model: ModelChoice = ModelChoice()
    skip_captioned: bool = True  # leave photos that already have a caption in any store
    xmp_name: XmpName = "photo.jpg.xmp"  # how XMP sidecars are named, to find their captions


@dataclass(frozen=True)
class PhotoOutcome:
    """One photo of a job: captioned (result), failed (result.error) or skipped (existing)."""

    job_id: int
    path: Path
    result: CaptionResult | None = None
    existing: StoredCaption | None = None  # set when skipped because it has a caption
    identity: FileIdentity | None = None  # the photo as it was when read for captioning


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


def load_captioner(choice: ModelChoice) -> Captioner:
    """The default factory: the real Captioner (imports torch, so only on the inference thread)."""
    from core.inference import Captioner

    return Captioner(choice.weights, device=choice.device)


class InferenceWorker(QObject):
    """Lives on the inference thread; loads the Captioner on first use and keeps it.

    Results go out as signals carrying paths and frozen values, never model indexes. The
    worker never touches widgets or the item model.
    """

    model_load_started = Signal()
    model_loaded = Signal(object)  # ModelInfo
    photo_done = Signal(object)  # PhotoOutcome
    job_finished = Signal(object)  # JobSummary

    def __init__(self, factory: CaptionerFactory = load_captioner) -> None:
        super().__init__()
        self._factory = factory
        self._captioner: Captioner | None = None
        self._choice: ModelChoice | None = None

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
        except (PhotoScribeError, ValueError) as error:  # a damaged model file, no such device
            summary = JobSummary(job.job_id, error=str(error))
        except Exception as error:  # noqa: BLE001 - reported to the user, never swallowed
            log.exception("Captioning job %d failed", job.job_id)
            summary = JobSummary(
                job.job_id, error=f"captioning stopped by an unexpected error: {error}"
            )
        self.job_finished.emit(summary)

    def _run(self, job: CaptionJob, cancel: threading.Event) -> JobSummary:
        from core.inference import CaptionSettings  # torch: inference thread only

        if cancel.is_set():
            return JobSummary(job.job_id, cancelled=True)
        captioner = self._ensure_model(job.model)
        settings = CaptionSettings(
            beam_size=job.options.beam_size,
            batch_size=job.options.batch_size,
            n_candidates=min(job.options.n_candidates, job.options.beam_size),
        )
        identities: dict[Path, FileIdentity | None] = {}
        counts = {"skipped": 0, "captioned": 0, "failed": 0}
        stores = all_stores(job.xmp_name)

        def to_caption() -> Iterator[Path]:
            # Runs lazily inside caption_paths, so the check happens just before each photo
            # is read and the identity is the one the caption was made from.
            for path in job.paths:
                if cancel.is_set():
                    return
                if job.skip_captioned:
                    try:
                        existing = read_caption_any(path, stores)
                    except StorageError:
                        existing = None  # captioning will report what is wrong with it
                    if existing is not None:
                        counts["skipped"] += 1
                        self.photo_done.emit(PhotoOutcome(job.job_id, path, existing=existing))
                        continue
                identities[path] = FileIdentity.of_optional(path)
                yield path

        for result in captioner.caption_paths(to_caption(), settings, cancel):
            if cancel.is_set():
                break
            counts["captioned" if result.ok else "failed"] += 1
            self.photo_done.emit(
                PhotoOutcome(
                    job.job_id,
                    result.path,
                    result=result,
                    identity=identities.pop(result.path, None),
                )
            )
        return JobSummary(job.job_id, cancelled=cancel.is_set(), **counts)


class CaptionService(QObject):
    """The GUI side of the inference thread: starts and cancels jobs, forwards current results.

    Results of a job that is no longer current (cancelled, or replaced) are dropped here; its
    job_finished still arrives, so the GUI knows when the inference thread has really stopped.
    """

    model_load_started = Signal()
    model_loaded = Signal(object)  # ModelInfo
    photo_done = Signal(object)  # PhotoOutcome of the current job
    job_finished = Signal(object)  # JobSummary of every job, cancelled ones included
    _job_requested = Signal(object, object)  # CaptionJob, threading.Event -> worker

    def __init__(
        self, factory: CaptionerFactory = load_captioner, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("inference")
        self._worker = InferenceWorker(factory)
        self._worker.moveToThread(self._thread)
        self._thread.finished.connect(self._worker.deleteLater)
        self._job_requested.connect(self._worker.run_job)
        self._worker.model_load_started.connect(self.model_load_started)
        self._worker.model_loaded.connect(self.model_loaded)
        self._worker.photo_done.connect(self._on_photo)
        self._worker.job_finished.connect(self._on_finished)
        self._thread.start()
        self._next_id = 1
        self._current: int | None = None
        self._cancel: threading.Event | None = None

    @property
    def busy(self) -> bool:
        """A job is current (running or queued) and not cancelled."""
        return self._current is not None

    def start(self, paths: tuple[Path, ...], **job_fields: Any) -> CaptionJob:
        """Queue a job for ``paths``; any current job is cancelled first."""
        self.cancel()
        job = CaptionJob(self._next_id, paths, **job_fields)
        self._next_id += 1
        self._current = job.job_id
        self._cancel = threading.Event()
        self._job_requested.emit(job, self._cancel)
        return job

    def cancel(self) -> None:
        """Stop the current job: the worker sees the token between batches and decoding steps."""
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
    def _on_photo(self, outcome: PhotoOutcome) -> None:
        if outcome.job_id == self._current:
            self.photo_done.emit(outcome)

    @Slot(object)
    def _on_finished(self, summary: JobSummary) -> None:
        if summary.job_id == self._current:
            self._current = None
            self._cancel = None
        self.job_finished.emit(summary)
