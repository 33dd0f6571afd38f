"""The run: one loop that takes planned photos from the scan, batches from the model, and
hands each batch's saves to the writer while the model goes on with the next."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from core.batches import Batches
from core.datatypes import CaptionResult
from core.engine.job import (
    EventHandler,
    LibraryJob,
    PhotoCaptioned,
    PhotoFailed,
    PhotoForReview,
    PhotoSkipped,
    RunProgress,
    RunSummary,
    ignore,
)
from core.engine.plan import Rules, Skip
from core.engine.scan import Crashed, Failed, ScanEnd, Scanner, Todo
from core.engine.upkeep import prune_missing, remove_stale_temp_files
from core.engine.versions import caption_version
from core.engine.writer import SaveOutcome, Writer
from core.index import IndexEntry, default_index_path
from core.library import ScanProblem
from core.storage import FileIdentity, SaveRequest

if TYPE_CHECKING:  # core.inference loads torch; the app imports the engine at start-up
    from core.inference import Captioner

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.25
MAX_BATCHES_SAVING = 2  # batches handed to the writer and not back yet, before the loop waits


class LibraryEngine:
    """Captions libraries with one Captioner; use it from one thread at a time.

    Typical use, from the thread that owns the captioner::

        engine = LibraryEngine(captioner)  # index in the user data folder
        job = LibraryJob(roots=(folder,), recursive=True, store="xmp")
        summary = engine.run(job, cancel=token, on_event=handler)

    ``on_event`` is called with plain frozen dataclasses, never two calls at once: on the
    calling thread, and on the writer thread for the photos of a batch as soon as the writer
    has saved them (so what is reported keeps up with what is on disk while the model works
    on the next batch); it must not block for long. Saving and recording go through ``writer``, the process's one writer
    thread (the app passes its own; without one, each run starts and stops its own).

    A run can be stopped at any moment, even by killing the process: the next run of the
    same job continues where it stopped. Per batch of photos the writer records the captions
    as pending in the index, writes them to the store, then marks them done, so no photo is
    captioned twice and nothing is half-written.
    """

    def __init__(
        self,
        captioner: Captioner,
        index_path: Path | None = None,
        *,
        writer: Writer | None = None,
        replace_damaged_index: bool = True,
        lock_timeout: float | None = None,
    ) -> None:
        self.captioner = captioner
        self.writer = writer
        if writer is not None:
            self.index_path = writer.index_path
        else:
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
        own = None
        writer = self.writer
        if job.store is not None and writer is None:
            writer = own = Writer(
                self.index_path,
                lock_timeout=self.lock_timeout,
                replace_damaged=self.replace_damaged_index,
            )
        try:
            return _Run(self, job, cancel or threading.Event(), on_event or ignore, writer).go()
        finally:
            if own is not None:
                own.close()


class _Run:
    """One LibraryEngine.run, on the caller's thread."""

    def __init__(
        self,
        engine: LibraryEngine,
        job: LibraryJob,
        cancel: threading.Event,
        emit: EventHandler,
        writer: Writer | None,
    ) -> None:
        self.engine = engine
        self.job = job
        self.cancel = cancel
        self.emit = emit
        self.writer = writer if job.store is not None else None
        self.model = caption_version(engine.captioner, job.settings)
        self.rules = Rules(job.store, job.overwrite, job.skip_captioned, job.recaption, self.model)
        # Batches handed to the writer, each with an event set once its photos are reported.
        self.saving: deque[tuple[Future[list[SaveOutcome]], threading.Event]] = deque()
        # The counts and the events: the calling thread's and the writer thread's, one at a time.
        self.lock = threading.RLock()
        self.report_error: BaseException | None = None  # raised by on_event on the writer thread
        self.at_model = 0  # photos of the batch the model is working on
        self.at_writer = 0  # photos handed to the writer, not reported yet
        self.scanner: Scanner | None = None
        self.captioned = self.skipped = self.failed = self.for_review = self.in_sidecars = 0
        self.failures: list[PhotoFailed] = []
        self.problems: list[ScanProblem] = []
        self.t0 = time.monotonic()
        self.started_wall = time.time()
        self.last_progress = 0.0

    def go(self) -> RunSummary:
        writer = self.writer
        if writer is not None:
            replaced = writer.open_index()
            if replaced is not None:
                self.emit(replaced)
            started = self.started_wall
            writer.with_index(lambda index: remove_stale_temp_files(index, started)).result()
        self.scanner = scanner = Scanner(
            self.job.roots,
            self.job.recursive,
            self.rules,
            self.job.xmp_name,
            self.engine.index_path if writer is not None else None,
        )
        captioner = self.engine.captioner
        batches: Batches[Todo] = Batches(
            captioner.caption_batch,
            self.job.settings,
            self.cancel,
            device=captioner.device,
            workers=captioner.decode_workers,
        )
        complete = False
        scanner.start()
        try:
            complete = self._loop(scanner, batches)
            while batches and not self.cancel.is_set():
                self._take(batches, scanner)
        finally:
            scanner.stop()
            batches.close()
        self._wait_for_saves(everything=True)
        if writer is not None:
            if complete and not self.cancel.is_set():
                roots, recursive = self.job.roots, self.job.recursive
                writer.with_index(lambda index: prune_missing(index, roots, recursive)).result()
            writer.flush()
        with self.lock:
            self._progress(scanner, force=True)
        return RunSummary(
            captioned=self.captioned,
            skipped=self.skipped,
            failed=self.failed,
            failures=tuple(self.failures),
            problems=tuple(self.problems),
            seconds=time.monotonic() - self.t0,
            cancelled=self.cancel.is_set(),
            store=self.job.store,
            index_path=self.engine.index_path if writer is not None else None,
            model=self.model,
            for_review=self.for_review,
            in_sidecars=self.in_sidecars,
        )

    def _loop(self, scanner: Scanner, batches: Batches[Todo]) -> bool:
        """Until the scan ends: plan, caption and save; True when the scan went through all."""
        while not self.cancel.is_set():
            self._wait_for_saves(everything=False)
            if batches.full:
                self._take(batches, scanner)
                continue
            item = scanner.take(timeout=0 if batches.ready else 0.1)
            if item is None:
                if batches.ready:  # the scan is slower than the model: caption meanwhile
                    self._take(batches, scanner)
                continue
            if isinstance(item, ScanEnd):
                return True
            if isinstance(item, Crashed):
                raise item.error
            with self.lock:
                self._planned(item, batches, scanner)
        return False

    def _planned(
        self, item: Todo | Skip | Failed | ScanProblem, batches: Batches[Todo], scanner: Scanner
    ) -> None:
        if isinstance(item, Todo):
            batches.add(item)
        elif isinstance(item, Skip):
            self.skipped += 1
            if item.record is not None and self.writer is not None:
                self.writer.record(item.record)
            self.emit(
                PhotoSkipped(item.path, item.reason, item.caption, item.store, item.confidence)
            )
        elif isinstance(item, Failed):
            self._failed(item.path, item.reason, item.identity)
        elif item.kind == "folder":
            self.problems.append(item)
            self.emit(item)
        else:  # a photo the scan could not read, or a root that is not there
            self._failed(item.path, item.reason, None)
        self._progress(scanner)

    def _take(self, batches: Batches[Todo], scanner: Scanner) -> None:
        """Caption the next batch; it is reported as in flight while the model works on it."""
        with self.lock:
            self.at_model = min(len(batches), self.job.settings.batch_size)
            self._progress(scanner, force=True)
        try:
            batch = batches.take()
        finally:
            with self.lock:
                self.at_model = 0
        self._captioned(batch, scanner)

    def _captioned(self, batch: list[tuple[Todo, CaptionResult]] | None, scanner: Scanner) -> None:
        """Hand a batch's captions to the writer (or, saving nothing, report them)."""
        if batch is None:
            return  # cancelled before the batch reached the model: nothing of it was made
        with self.lock:
            requests = self._made(batch)
            self.at_writer += len(requests)
        if requests and self.writer is not None:
            reported = threading.Event()
            future = self.writer.save_batch(requests)
            self.saving.append((future, reported))
            future.add_done_callback(lambda done: self._batch_saved(done, reported))
        self._wait_for_saves(everything=False)
        with self.lock:
            self._progress(scanner)

    def _made(self, batch: list[tuple[Todo, CaptionResult]]) -> list[SaveRequest]:
        """Report what needs no saving; the save requests for the rest."""
        requests: list[SaveRequest] = []
        for todo, result in batch:
            path = result.path
            if not result.ok:
                self._failed(path, result.error or f"{path}: failed", todo.identity)
            elif not result.caption:
                self._failed(
                    path, f"{path}: the model gave no caption for this photo.", todo.identity
                )
            elif self._too_unsure(result):
                self.for_review += 1
                assert self.job.min_confidence is not None
                self.emit(
                    PhotoForReview(path, result.caption, result.confidence, self.job.min_confidence)
                )
            elif self.job.store is None:
                self.captioned += 1
                self.emit(
                    PhotoCaptioned(
                        path=path,
                        caption=result.caption,
                        score=result.score,
                        candidates=result.candidates,
                        store=None,
                        saved_to=None,
                        confidence=result.confidence,
                    )
                )
            else:
                requests.append(
                    SaveRequest(
                        photo=path,
                        caption=result.caption,
                        store=self.job.store,
                        xmp_name=self.job.xmp_name,
                        overwrite=todo.overwrite or self.job.overwrite,  # --overwrite: stores agree
                        expected=todo.identity,
                        model=self.model,
                        confidence=result.confidence,
                        alternatives=tuple(
                            c.caption for c in result.candidates if c.caption != result.caption
                        ),
                        made=result,
                    )
                )
        return requests

    def _too_unsure(self, result: CaptionResult) -> bool:
        """Below the job's minimum confidence (an unknown confidence is below any minimum)."""
        least = self.job.min_confidence
        if least is None:
            return False
        return result.confidence is None or result.confidence < least

    def _batch_saved(self, future: Future[list[SaveOutcome]], reported: threading.Event) -> None:
        """On the writer thread, as soon as a batch is saved: report its photos."""
        try:
            if future.cancelled() or future.exception() is not None:
                return  # the calling thread raises what stopped the writer
            with self.lock:
                for outcome in future.result():
                    self.at_writer -= 1
                    self._saved(outcome)
                if self.scanner is not None:
                    self._progress(self.scanner, force=True)
        except BaseException as error:  # noqa: BLE001 - raised again on the calling thread
            self.report_error = error
        finally:
            reported.set()

    def _wait_for_saves(self, *, everything: bool) -> None:
        """Forget the batches whose photos are reported; wait when too many are still saving."""
        while self.saving:
            future, reported = self.saving[0]
            if not reported.is_set() and not everything and len(self.saving) <= MAX_BATCHES_SAVING:
                return
            reported.wait()
            self.saving.popleft()
            future.result()  # raises what stopped the writer (an index error)
            if self.report_error is not None:
                raise self.report_error

    def _saved(self, outcome: SaveOutcome) -> None:
        path, result = outcome.request.photo, outcome.made
        assert result is not None, "the engine saves only what the model made"
        if outcome.exists and self.job.recaption:
            # A caption is stored and may not be replaced: the new one is a suggestion.
            self.captioned += 1
            self.emit(
                PhotoCaptioned(
                    path=path,
                    caption=outcome.request.caption,
                    score=result.score,
                    candidates=result.candidates,
                    store=None,
                    saved_to=None,
                    message="this photo already has a caption, which stays; the new one is a suggestion.",
                    confidence=result.confidence,
                )
            )
        elif outcome.exists:
            self.skipped += 1
            self.emit(PhotoSkipped(path, "has_caption"))
        elif outcome.result is None:
            self._failed(
                path,
                outcome.error or f"{path}: not saved",
                None,
                caption=result.caption,
                problem=outcome.problem,
            )
        else:
            saved = outcome.result
            self.captioned += 1
            if saved.store != self.job.store:  # into the photos was asked; beside them it went
                self.in_sidecars += 1
            self.emit(
                PhotoCaptioned(
                    path=path,
                    caption=outcome.request.caption,
                    score=result.score,
                    candidates=result.candidates,
                    store=saved.store,
                    saved_to=saved.path,
                    message=saved.message,
                    identity=outcome.identity,
                    confidence=result.confidence,
                    stores_agree=outcome.request.overwrite,
                )
            )

    def _failed(
        self,
        path: Path,
        reason: str,
        identity: FileIdentity | None,
        caption: str | None = None,
        problem: str | None = None,
    ) -> None:
        """Count and report a failure; with ``identity``, also record it in the index (a
        failed save is recorded by the writer, so it comes without one)."""
        with self.lock:
            self.failed += 1
            failure = PhotoFailed(path, reason, caption, problem)
            self.failures.append(failure)
            if self.writer is not None and identity is not None:
                self.writer.record(
                    IndexEntry(
                        path=path,
                        size=identity.size,
                        mtime_ns=identity.mtime_ns,
                        status="failed",
                        error=reason,
                    )
                )
            self.emit(failure)

    def _progress(self, scanner: Scanner, force: bool = False) -> None:
        """Counts so far (the lock held), at most every PROGRESS_EVERY_S unless ``force``."""
        now = time.monotonic()
        if not force and now - self.last_progress < PROGRESS_EVERY_S:
            return
        self.last_progress = now
        elapsed = now - self.t0
        self.emit(
            RunProgress(
                done=self.captioned + self.skipped + self.failed + self.for_review,
                total=scanner.total,
                captioned=self.captioned,
                skipped=self.skipped,
                failed=self.failed,
                elapsed=elapsed,
                rate=self.captioned / elapsed if elapsed > 0 else 0.0,
                in_flight=self.at_model + self.at_writer,
            )
        )
