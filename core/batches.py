"""Photos decoded ahead on a thread pool and captioned a batch at a time, when asked for.

The one decode-ahead loop: the library engine's run (the app and `photoscribe caption`) and
``Captioner.caption_paths`` (``--self-test``, evaluation, benchmarks) both caption through
``Batches``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from core.datatypes import Candidate, CaptionResult, CaptionSettings
from core.errors import PhotoScribeError

if TYPE_CHECKING:  # torch: loaded by the run on the thread that owns the model
    import torch

    from core.images import EncodedJpeg

log = logging.getLogger(__name__)


class HasPath(Protocol):
    """What is captioned: a photo's path, with whatever the caller keeps beside it."""

    @property
    def path(self) -> Path: ...


T = TypeVar("T", bound=HasPath)

Captioned = tuple[tuple[Candidate, ...], float]
"""One photo's captions, best first, and the confidence of the best."""
CaptionBatch = Callable[["torch.Tensor", CaptionSettings, threading.Event], list[Captioned]]
"""What turns a batch of decoded photos into their captions (Captioner.caption_batch)."""


class Batches(Generic[T]):
    """The photos handed to the model, in order; the run loop pulls finished batches.

    ``add`` starts decoding a photo on the pool at once; ``take`` waits for the oldest
    ``batch_size`` photos, runs the model on them and returns each with its result (a bad
    file gives an error result, the others go on). At most ``window`` photos are held: the
    run loop takes a batch when ``full``. Returns None from ``take`` when cancelled.
    """

    def __init__(
        self,
        caption: CaptionBatch,
        settings: CaptionSettings,
        cancel: threading.Event,
        *,
        device: torch.device | str = "cpu",
        workers: int = 2,
    ) -> None:
        """caption: the model's one call (Captioner.caption_batch); device: where the model
        runs, which decides how photos are read; workers: decoding threads."""
        # Imported here, not at the top: the app imports the engine at start-up, and torch,
        # numpy and the image decoders load only when a run starts.
        from core.images import read_for_device, stack_on_device
        from core.isolation import reader_pool

        # On CUDA the workers only read JPEG bytes and the batch is decoded on the GPU; on other
        # devices they decode to the model's input size (core.images.read_for_device).
        self._device = device
        self._load = lambda path: read_for_device(path, self._device)
        self._stack = stack_on_device
        self.caption = caption
        self.settings = settings
        self.cancel = cancel
        # The decoding itself runs in reader processes (core.isolation), one per decode thread
        # and one for the thumbnails and metadata the app and the writer read meanwhile.
        pool = reader_pool()
        pool.reserve(workers + 1)
        pool.warm()
        self.window = settings.batch_size * 2 + workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
        self._pending: deque[tuple[T, Future[torch.Tensor]]] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        return len(self._pending) >= self.window

    @property
    def ready(self) -> bool:
        """A whole batch is waiting."""
        return len(self._pending) >= self.settings.batch_size

    def add(self, item: T) -> None:
        self._pending.append((item, self._pool.submit(self._load, item.path)))

    def take(self) -> list[tuple[T, CaptionResult]] | None:
        """The next batch's results: files no decoder reads first, then the captions, each in
        the order added; None when cancelled before the model started on the batch. A batch the
        model has started is finished even when the cancel comes meanwhile (it takes at most
        one batch's time), so the photos being captioned are not thrown away."""
        done: list[tuple[T, CaptionResult]] = []
        items: list[T] = []
        images: list[torch.Tensor | EncodedJpeg] = []  # what read_for_device gave
        while self._pending and len(images) < self.settings.batch_size:
            if self.cancel.is_set():  # before waiting on another decode
                return None
            item, future = self._pending.popleft()
            path = item.path
            try:
                images.append(future.result())
                items.append(item)
            except PhotoScribeError as error:
                done.append((item, CaptionResult(path=path, error=str(error))))
            except Exception as error:  # noqa: BLE001 - one bad file never stops a batch
                log.exception("unexpected error decoding %s", path)
                done.append(
                    (item, CaptionResult(path=path, error=f"{path}: unexpected error ({error})"))
                )
        if self.cancel.is_set():
            return None
        if not images:
            return done
        batch, failed = self._stack(images, self._device)
        for i, error in failed:  # read, but no decoder could make a picture of it
            done.append((items[i], CaptionResult(path=items[i].path, error=str(error))))
        dropped = {i for i, _ in failed}
        items = [item for i, item in enumerate(items) if i not in dropped]
        if not items:
            return done
        captioned = self.caption(batch, self.settings, threading.Event())  # never set: finish
        for item, (found, confidence) in zip(items, captioned, strict=True):
            best = found[0] if found else Candidate(caption="", score=-math.inf)
            result = CaptionResult(
                path=item.path,
                caption=best.caption,
                score=best.score,
                candidates=found,
                confidence=confidence,
            )
            done.append((item, result))
        return done

    def close(self) -> None:
        """Drop what is still waiting and stop the decoding threads."""
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
