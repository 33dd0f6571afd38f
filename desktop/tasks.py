"""The one helper that runs work off the GUI thread and hands its result back to the GUI thread."""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)

T = TypeVar("T")


class TaskPool(QObject):
    """A named pool of worker threads whose results come back as calls on the GUI thread.

    ``submit(fn, on_done=..., on_error=...)`` runs ``fn`` on a worker thread; when it returns,
    ``on_done(result)`` runs on the thread that owns the pool (the GUI thread). An exception
    goes to ``on_error`` when given, else to ``sys.excepthook`` (logged and shown to the user),
    so it is never lost. ``post(callback, value)`` lets long-running work deliver partial
    results the same way. After ``shutdown`` nothing new runs and nothing more is delivered.
    """

    _call_requested = Signal(object)  # a zero-argument callable to run on the owner's thread

    def __init__(
        self, name: str, max_workers: int, parent: QObject | None = None, daemon: bool = False
    ) -> None:
        """daemon: the threads do not hold the process at exit, for work that may never
        return (looking into a folder on a network share that does not answer); Python waits
        for the others' running tasks before the process ends."""
        super().__init__(parent)
        self.name = name
        self._executor: ThreadPoolExecutor | _DaemonExecutor = (
            _DaemonExecutor(max_workers, name)
            if daemon
            else ThreadPoolExecutor(max_workers, thread_name_prefix=name)
        )
        self._closed = threading.Event()
        self._pending = 0
        self._lock = threading.Lock()
        # Queued even from the GUI thread: a task that finished before ``submit`` returned must
        # not call back into the caller in the middle of it (the caller has not finished
        # setting up what the callback expects).
        self._call_requested.connect(self._run_call, Qt.ConnectionType.QueuedConnection)

    def submit(
        self,
        fn: Callable[..., T],
        *args: Any,
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Future[T]:
        if self._closed.is_set():  # the app is closing: nothing new starts
            log.debug("%s pool is shut down; not running %r", self.name, fn)
            skipped: Future[T] = Future()
            skipped.cancel()
            return skipped
        with self._lock:
            self._pending += 1
        future = self._executor.submit(fn, *args)

        def finished(done: Future[T]) -> None:
            with self._lock:
                self._pending -= 1
            if done.cancelled():
                return
            error = done.exception()
            if error is None:
                if on_done is not None:
                    self._post(lambda: on_done(done.result()))
            elif on_error is not None:
                self._post(lambda: on_error(error))
            else:
                self._post(lambda: _report_unexpected(error))

        future.add_done_callback(finished)
        return future

    def post(self, callback: Callable[[T], None], value: T) -> None:
        """From a worker thread: call ``callback(value)`` on the GUI thread soon."""
        self._post(lambda: callback(value))

    @property
    def pending(self) -> int:
        """Tasks submitted and not yet finished."""
        with self._lock:
            return self._pending

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop accepting work; with ``wait``, return once running (and queued) tasks end."""
        self._closed.set()
        self._executor.shutdown(wait=wait, cancel_futures=cancel_pending)

    def _post(self, call: Callable[[], None]) -> None:
        if not self._closed.is_set():
            self._call_requested.emit(call)

    @Slot(object)
    def _run_call(self, call: Callable[[], None]) -> None:
        if not self._closed.is_set():
            call()


def _report_unexpected(error: BaseException) -> None:
    sys.excepthook(type(error), error, error.__traceback__)


class _DaemonExecutor:
    """ThreadPoolExecutor's ``submit`` and ``shutdown`` on daemon threads (started as work
    comes, up to ``max_workers``): a task that never returns does not keep the process alive."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max_workers = max_workers
        self._name = name
        self._work: queue.SimpleQueue[tuple[Future, Callable[..., Any], tuple] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        # Threads free for a task not yet handed one (ThreadPoolExecutor's idle semaphore): a
        # task submitted while it is 0 starts a thread, up to max_workers.
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._work.put((future, fn, args))
            if self._idle == 0 and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._run, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._idle = max(self._idle - 1, 0)
        return future

    def _run(self) -> None:
        while True:
            item = self._work.get()
            if item is None:  # shut down: pass it on to the next thread
                self._work.put(None)
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as error:  # handed to the caller, as the executor does
                    future.set_exception(error)
                else:
                    future.set_result(result)
                    del result
            # Waiting for the next task keeps nothing of this one (its callbacks hold objects).
            del item, future, fn, args
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        self._work.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
