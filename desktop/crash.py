"""Unexpected exceptions: logged with their traceback to a file, then shown as a readable dialog."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import platformdirs
from PySide6.QtCore import QObject, Qt, Signal, Slot

from desktop.settings import APPLICATION, ORGANIZATION

log = logging.getLogger(__name__)

LOG_NAME = "photoscribe.log"

# Shows (summary, details) to the user; a QMessageBox in the app, a recorder in tests.
ShowError = Callable[[str, str], None]


def default_log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APPLICATION, ORGANIZATION))


def setup_logging(log_dir: Path | None = None, verbose: bool = False) -> Path | None:
    """Log to a rotating file in the platform log folder (and warnings to stderr).

    Returns the log file, or None when it cannot be created (then only stderr is used).
    """
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    folder = log_dir or default_log_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            folder / LOG_NAME,
            maxBytes=2_000_000,
            backupCount=3,
            encoding="utf-8",
            errors="backslashreplace",  # a file name that is not UTF-8 is logged, not an error
        )
    except OSError as error:
        log.warning("Cannot write the log file in %s: %s", folder, error)
        return None
    file_handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    )
    root.addHandler(file_handler)
    return folder / LOG_NAME


def describe(error: BaseException) -> str:
    """One readable line: the message, or the exception's kind when it has none."""
    text = str(error).strip()
    return text if text else type(error).__name__


class ExceptionHandler(QObject):
    """Catches exceptions nothing else handled, on any thread, and shows them on the GUI thread.

    ``install`` replaces sys.excepthook and threading.excepthook; ``uninstall`` restores them.
    Only one dialog is open at a time; further errors while it is open are only logged.
    """

    _raised = Signal(str, str)  # summary, details; queued to the GUI thread

    def __init__(
        self, show: ShowError, log_file: Path | None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._show = show
        self.log_file = log_file
        self._showing = False
        self._previous: tuple[object, object] | None = None
        # Queued even from the GUI thread: the dialog opens from the event loop, not from
        # inside whatever code raised.
        self._raised.connect(self._present, Qt.ConnectionType.QueuedConnection)

    def install(self) -> None:
        self._previous = (sys.excepthook, threading.excepthook)
        sys.excepthook = self.handle
        threading.excepthook = self._handle_thread

    def uninstall(self) -> None:
        if self._previous is not None:
            sys.excepthook, threading.excepthook = self._previous  # type: ignore[assignment]
            self._previous = None

    def handle(
        self,
        kind: type[BaseException],
        error: BaseException,
        tb: TracebackType | None,
    ) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, tb)
            return
        log.critical("Unexpected error", exc_info=(kind, error, tb))
        where = f" The details were saved in {self.log_file}." if self.log_file else ""
        summary = (
            f"Something went wrong: {describe(error)}.{where} PhotoScribe will keep running; "
            "if something looks wrong, save your work and restart it."
        )
        details = "".join(traceback.format_exception(kind, error, tb))
        self._raised.emit(summary, details)

    def _handle_thread(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            self.handle(args.exc_type, args.exc_value, args.exc_traceback)

    @Slot(str, str)
    def _present(self, summary: str, details: str) -> None:
        if self._showing:
            return
        self._showing = True
        try:
            self._show(summary, details)
        finally:
            self._showing = False
