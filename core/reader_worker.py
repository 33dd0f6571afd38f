"""The reader process: decodes photos and reads or writes their metadata for core.isolation.

Runs in a child process, so a crash or a hang in a native library (libjpeg, libtiff, libheif,
libexiv2) ends only this process. Requests come in as (task, path, args) over a pipe; every
reply is ("ok", result) or ("error", error class, path, problem, hint) or ("bug", text).
Whatever the C libraries write to stderr goes to a log file the parent relays to its log.
"""

from __future__ import annotations

import faulthandler
import importlib
import logging
import os
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

import core.images  # noqa: F401 - registers the decoding tasks (picture, model_input)
from core.errors import PhotoScribeError
from core.reader_tasks import TASKS

# What a request may ask for (core.reader_tasks.TASKS): core.images' decoding, and the
# metadata methods core.storage registers when imported. Tests replace entries through the
# pool's ``setup`` hook (never reachable from the app or the command line) to make a reader
# crash.

log = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    """The reader process's entry: ``argv`` is the pipe's file descriptor, the log file and the
    optional setup hook (see ``core.isolation.ReaderPool``)."""
    fd, log_file, setup = argv
    serve(Connection(int(fd)), log_file, setup or None)


def serve(conn: Connection, log_file: str, setup: str | None) -> None:
    """Answer requests until the parent closes the pipe."""
    # The C libraries' messages, Python's warnings and a crash's traceback go to the log file
    # (opened for appending, so the parent can empty it), never to the user's terminal; stdout
    # too, since nothing here prints on purpose.
    fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 2)
    os.dup2(fd, 1)
    os.close(fd)
    sys.stderr = sys.stdout = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    faulthandler.enable(sys.stderr)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    import core.storage.embedded  # noqa: F401 - registers the metadata tasks

    if setup:
        module, _, function = setup.partition(":")
        getattr(importlib.import_module(module), function)()
    conn.send(("ready",))
    while True:
        try:
            task, path, args = conn.recv()
        except (EOFError, OSError):
            # The parent went away without stopping this reader (it stops readers by killing
            # them): nobody is left to relay the log file or to remove it.
            try:
                os.unlink(log_file)
            except OSError:
                pass
            return
        try:
            reply: tuple[Any, ...] = ("ok", TASKS[task](path, *args))
        except PhotoScribeError as error:
            reply = ("error", type(error), error.path, error.problem, error.cli_hint)
        except Exception:  # noqa: BLE001 - reported to the parent, which names the file
            reply = ("bug", traceback.format_exc(limit=8))
        sys.stderr.flush()
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return
