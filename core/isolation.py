"""Photos decoded, and their metadata read and written, in reader processes a crash cannot spread from.

A segmentation fault, an abort or a hang in libjpeg, libtiff, libheif or libexiv2 on one file
ends only the reader process working on it (``core.reader_worker``): the caller gets a
ReaderCrashedError naming the file, a fresh reader takes the next file, and the file is
remembered (``core.quarantine``) so that it is not read again on every start. A small pool of
long-lived readers answers over pipes; the calling threads (decode, thumbnails, the writer)
block on their reply with the GIL released, so decoding also runs on several cores at once.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from core.errors import ReaderCrashedError, ReaderError
from core.quarantine import Quarantine, default_quarantine_file
from core.reader_tasks import TASKS

if TYPE_CHECKING:
    pass

_Method = TypeVar("_Method", bound=Callable[..., Any])

log = logging.getLogger(__name__)
# What the C libraries write to stderr, relayed from the readers: the log file, not the terminal.
libraries_log = logging.getLogger("photoscribe.libraries")

# Readers get their end of the pipe as an inherited file descriptor (pass_fds), which Windows
# does not have; there the work runs in the calling process, as before the readers.
CAN_ISOLATE = os.name == "posix"
READER_FLAG = "--photoscribe-reader"  # how the packaged app is asked to be a reader
# The reader's first lines: the parent's import path, then core.reader_worker serves.
_BOOT = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from core.reader_worker import main; main(sys.argv[2:])"
)
START_TIMEOUT_S = 60.0  # a reader not ready by then (a very busy machine) is given up
HANG_TIMEOUT_S = 30.0  # no camera file takes that long; a reader still busy then is stuck
DEFAULT_READERS = 2
MAX_READERS = 8
_POLL_S = 0.25  # how often a waiting caller looks whether the pool is closing
_LOG_KEEP_BYTES = 1 << 20  # at most this much of what a reader wrote is relayed per file
_HUNG: tuple[Any, ...] = ("hung",)
# Signals that another program sends, not that a file causes: no reason to remember the file.
_STOPPED_FROM_OUTSIDE = {
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
}
_SIGNALS = {
    "SIGSEGV": "a segmentation fault",
    "SIGABRT": "an abort",
    "SIGBUS": "a bus error",
    "SIGFPE": "an arithmetic fault",
    "SIGILL": "an illegal instruction",
    "SIGKILL": "killed, perhaps for using too much memory",
}


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return _SIGNALS.get(name, name)
    return f"exit code {exitcode}"


class _Reader:
    """One reader process, its pipe and its log file."""

    def __init__(self, setup: str | None) -> None:
        # A plain child process started from the executable (never forked: the app and the
        # command line have threads, and perhaps CUDA, by now), and not multiprocessing's spawn,
        # which would import the parent's main module (a script, pytest, the app) again.
        fd, self.log_file = tempfile.mkstemp(prefix="photoscribe-reader-", suffix=".log")
        os.close(fd)
        ours, theirs = socket.socketpair()
        args = [str(theirs.fileno()), self.log_file, setup or ""]
        if getattr(sys, "frozen", False):  # the packaged app: its launcher serves readers
            command = [sys.executable, READER_FLAG, *args]
        else:
            command = [sys.executable, "-c", _BOOT, json.dumps(sys.path), *args]
        try:
            with open(self.log_file, "ab") as log_out:
                self.process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log_out,
                    stderr=log_out,
                    pass_fds=(theirs.fileno(),),
                    close_fds=True,
                    # Ctrl+C, Ctrl+Z and a closed terminal are for the parent, which stops
                    # the readers itself; a reader ended by them would look like a crash.
                    start_new_session=True,
                )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.ready = False  # it says so once its decoders are loaded

    def relay_log(self, path: Path | None) -> None:
        """What the reader's C libraries wrote while working on ``path``, into the log."""
        try:
            size = os.path.getsize(self.log_file)
            if size == 0:
                return
            with open(self.log_file, "rb") as file:
                text = file.read(_LOG_KEEP_BYTES).decode("utf-8", "replace")
            os.truncate(self.log_file, 0)  # the reader appends (O_APPEND): it writes at 0 next
        except OSError:
            return
        for line in text.splitlines():
            if line.strip():
                # The reader's own relay of exiv2 (core.storage.metadata) names this logger
                # already: once per line is enough.
                line = line.removeprefix(f"{libraries_log.name}: ")
                libraries_log.info("%s: %s", path or "reader", line.rstrip())

    def stop(self) -> int | None:
        """End the process (at once: it may be stuck in C code); its exit code."""
        if self.process.poll() is None:
            self.process.kill()  # before the pipe closes: a reader seeing it close cleans up
        self.conn.close()
        try:
            return self.process.wait(5)
        except subprocess.TimeoutExpired:
            return None

    def last_words(self) -> str:
        """The end of what the reader wrote (why it did not start)."""
        try:
            with open(self.log_file, errors="replace") as file:
                return file.read()[-2000:].strip()
        except OSError:
            return ""

    def remove_log(self) -> None:
        try:
            os.unlink(self.log_file)
        except OSError:
            pass


class ReaderPool:
    """Up to ``size`` reader processes, started when first needed and restarted after a crash.

    ``call`` runs a ``TASKS`` entry on one file, from any thread.
    ``timeout_s`` is how long one file may take before its reader counts as hung. ``setup``
    ("module:function") runs in every reader before its first request: tests use it to make
    readers crash; the app and the command line never pass it.
    """

    def __init__(
        self,
        size: int = DEFAULT_READERS,
        timeout_s: float = HANG_TIMEOUT_S,
        quarantine: Callable[[], Quarantine | None] | None = None,
        setup: str | None = None,
    ) -> None:
        self.size = size
        self.timeout_s = timeout_s
        self.setup = setup
        self._quarantine_for = quarantine or _default_quarantine
        self._cond = threading.Condition()
        self._idle: list[_Reader] = []
        self._count = 0  # readers started and not stopped, idle or busy
        self._busy: set[_Reader] = set()
        self._closed = False

    def reserve(self, size: int) -> None:
        """Allow at least ``size`` readers (a run with that many decode threads)."""
        with self._cond:
            self.size = max(self.size, min(size, MAX_READERS))
            self._cond.notify_all()

    def warm(self) -> None:
        """Start the readers now, so that the first photo does not wait for one to start."""
        started = []
        with self._cond:
            missing = 0 if self._closed else self.size - self._count
            self._count += missing
        try:
            for _ in range(missing):
                started.append(_Reader(self.setup))
        except OSError as error:
            log.warning("Could not start an image reader: %s", error)
        with self._cond:
            self._count -= missing - len(started)
            self._idle.extend(started)
            self._cond.notify_all()

    def call(self, task: str, path: Path, *args: Any) -> Any:
        """``task`` on ``path`` in a reader; raises what the task raised, or ReaderCrashedError."""
        path = Path(path)
        if not CAN_ISOLATE:  # Windows (and tests that patch a task): the work runs here
            return TASKS[task](path, *args)  # registered by the module that asks for it
        quarantine = self._quarantine_for()
        remembered = quarantine.reason(path) if quarantine is not None else None
        if remembered is not None:
            raise ReaderCrashedError(
                path,
                f"{remembered} (remembered from an earlier try; PhotoScribe tries this file "
                "again when it changes or after an update)",
            )
        reply = self._ask(task, path, args)
        if isinstance(reply, str):  # the reader crashed or hung on this file
            reason = (
                f"PhotoScribe's image reader crashed on this file ({reply}); it was left untouched"
            )
            log.info("%s: %s", path, reason)
            if quarantine is not None:
                quarantine.add(path, reason)
            raise ReaderCrashedError(path, reason)
        if reply[0] == "ok":
            return reply[1]
        if reply[0] == "error":
            error_class, error_path, problem, hint = reply[1:]
            raise error_class(error_path, problem, cli_hint=hint)
        # The file's one line is the error below; the traceback is for the log file.
        log.info("Unexpected error in the image reader on %s:\n%s", path, reply[1])
        raise ReaderError(path, "unexpected error in PhotoScribe's image reader (see the log file)")

    def _ask(self, task: str, path: Path, args: tuple[Any, ...]) -> tuple[Any, ...] | str:
        """The reader's reply, or how it ended when it crashed or hung (that reader is gone)."""
        reader = self._ready_reader(path)
        try:
            reader.conn.send((task, path, args))
        except (OSError, ValueError):  # it died while idle (killed from outside): once more
            self._discard(reader)
            reader = self._ready_reader(path)
            reader.conn.send((task, path, args))
        try:
            reply = self._wait(reader, path, self.timeout_s)
        except BaseException:
            self._discard(reader)
            raise
        if reply is None:
            code = self._discard(reader, path)
            if code is not None and -code in _STOPPED_FROM_OUTSIDE:
                raise ReaderError(
                    path,
                    f"not read: PhotoScribe's image reader was stopped ({_how_it_ended(code)})",
                )
            return _how_it_ended(code)
        if reply is _HUNG:
            self._discard(reader, path)
            return f"it stopped responding: no result after {self.timeout_s:g} s"
        reader.relay_log(path)
        self._release(reader)
        return reply

    def _ready_reader(self, path: Path) -> _Reader:
        """An idle reader, started if need be; one that does not start is not this file's fault."""
        reader = self._acquire(path)
        if reader.ready:
            return reader
        try:
            hello = self._wait(reader, path, START_TIMEOUT_S)
        except BaseException:
            self._discard(reader)
            raise
        if hello == ("ready",):
            reader.ready = True
            return reader
        code = reader.stop()
        log.error(
            "An image reader did not start (%s): %s", _how_it_ended(code), reader.last_words()
        )
        self._discard(reader)
        raise ReaderError(
            path, "PhotoScribe's image reader could not be started (see the log file)"
        )

    def _wait(self, reader: _Reader, path: Path, timeout_s: float) -> tuple[Any, ...] | None:
        """The reader's next message; None when it died, _HUNG after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return _HUNG
            if reader.conn.poll(min(left, _POLL_S)):
                try:
                    return reader.conn.recv()
                except (EOFError, OSError):
                    if self._closed:  # killed by close(), not by this file
                        raise ReaderError(path, "not read: PhotoScribe is closing") from None
                    return None
            if self._closed:
                raise ReaderError(path, "not read: PhotoScribe is closing")

    def _acquire(self, path: Path) -> _Reader:
        with self._cond:
            while True:
                if self._closed:
                    raise ReaderError(path, "not read: PhotoScribe is closing")
                if self._idle:
                    reader = self._idle.pop()
                    self._busy.add(reader)
                    return reader
                if self._count < self.size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            reader = _Reader(self.setup)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._busy.add(reader)
        return reader

    def _release(self, reader: _Reader) -> None:
        with self._cond:
            self._busy.discard(reader)
            if self._closed:
                self._count -= 1
            else:
                self._idle.append(reader)
            self._cond.notify()
        if self._closed:
            reader.stop()
            reader.remove_log()

    def _discard(self, reader: _Reader, path: Path | None = None) -> int | None:
        """Stop a reader for good (its last words to the log); its exit code."""
        code = reader.stop()
        reader.relay_log(path)
        reader.remove_log()
        with self._cond:
            self._busy.discard(reader)
            self._count -= 1
            self._cond.notify()
        return code

    def close(self) -> None:
        """Stop every reader; calls still waiting raise ReaderError."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            busy = list(self._busy)
            self._cond.notify_all()
        for reader in idle:
            reader.stop()
            reader.remove_log()
        for reader in busy:  # their callers see the pipe close and stop waiting
            if reader.process.poll() is None:
                reader.process.kill()


def _default_quarantine() -> Quarantine | None:
    file = default_quarantine_file()
    with _LOCK:
        known = _QUARANTINES.get(file)
        if known is None:
            known = _QUARANTINES[file] = Quarantine(file)
        return known


def runs_in_reader(
    task: str, *, collect: Callable[[], AbstractContextManager[list]] | None = None
) -> Callable[[_Method], _Method]:
    """Make a method ``(self, path, *args)`` run in a reader process, as ``task``.

    The object itself goes to the reader too (it must pickle). With ``collect`` (a context
    manager giving a list, such as core.storage.metadata.exiv2_calls) the method's last
    argument is that list, filled in the reader (libexiv2's complaints about the file); the
    caller's list stays empty.
    """

    def decorate(method: _Method) -> _Method:
        def in_reader(path: Path, owner: Any, *args: Any) -> Any:
            if collect is None:
                return method(owner, path, *args)
            with collect() as messages:
                return method(owner, path, *args, messages)

        TASKS[task] = in_reader

        @functools.wraps(method)
        def call(self: Any, path: Path, *args: Any) -> Any:
            if collect is not None:
                args = args[:-1]
            return reader_pool().call(task, path, self, *args)

        return call  # type: ignore[return-value]

    return decorate


_LOCK = threading.Lock()
_QUARANTINES: dict[Path, Quarantine] = {}
_POOL: ReaderPool | None = None


def reader_pool() -> ReaderPool:
    """The process's pool of readers (one for the app, one for the command line)."""
    global _POOL
    with _LOCK:
        if _POOL is None or _POOL._closed:
            _POOL = ReaderPool()
        return _POOL


def close_reader_pool() -> None:
    """Stop the readers (at quit; also at interpreter exit)."""
    with _LOCK:
        pool = _POOL
    if pool is not None:
        pool.close()


atexit.register(close_reader_pool)
