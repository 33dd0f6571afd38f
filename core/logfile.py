"""The command line's log file: what the image libraries say, and PhotoScribe's details, off the terminal."""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

import platformdirs

LOG_ENV = "PHOTOSCRIBE_LOG"  # a log file to use instead of the one in the user log folder
LOG_NAME = "photoscribe-cli.log"
_MARK = "photoscribe-cli-log"  # the handler's name, so that it is added once per process


def default_log_file() -> Path:
    """$PHOTOSCRIBE_LOG, else photoscribe-cli.log in the user log folder (beside the app's log)."""
    override = os.environ.get(LOG_ENV)
    if override:
        return Path(override)
    return platformdirs.user_log_path("PhotoScribe", "PhotoScribe") / LOG_NAME


def log_to_file() -> Path | None:
    """Send INFO and above to the log file as well as WARNING and above to the terminal.

    The terminal then shows PhotoScribe's own line per problem file; libtiff's, libjpeg's,
    libheif's and exiv2's messages (relayed from the image readers at INFO) are in the file.
    Returns the file, or None when it cannot be written (then only the terminal is used).
    """
    root = logging.getLogger()
    for handler in root.handlers:
        if handler.get_name() == _MARK:
            return Path(handler.baseFilename)  # type: ignore[attr-defined]
    file = default_log_file()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            file,
            maxBytes=2_000_000,
            backupCount=2,
            encoding="utf-8",
            errors="backslashreplace",  # a file name that is not UTF-8 is logged, not an error
        )
    except OSError as error:
        logging.getLogger(__name__).info("No log file in %s: %s", file.parent, error)
        return None
    handler.set_name(_MARK)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for other in root.handlers:  # the terminal keeps the level it was given
        if type(other) is logging.StreamHandler and other.level == logging.NOTSET:
            other.setLevel(root.level)
    root.addHandler(handler)
    root.setLevel(min(root.level, logging.INFO))
    return file
