"""Files that crashed or hung PhotoScribe's image reader, remembered so they are not retried."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import core

log = logging.getLogger(__name__)

QUARANTINE_FILE_NAME = "unreadable-files.json"
MAX_ENTRIES = 2000  # the oldest are forgotten first: a later try costs one more worker restart


@dataclass(frozen=True)
class Quarantined:
    """Why a file is not read again, and what it looked like when it crashed the reader."""

    reason: str
    size: int
    mtime_ns: int
    version: str  # the PhotoScribe that crashed on it; a later one tries again
    when: float  # seconds since the epoch


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


class Quarantine:
    """The files in ``file`` (JSON), keyed by absolute path; an entry counts only while the file
    keeps its size and modification time and PhotoScribe its version.

    Shared by the threads of one process; another process (the command line beside the app)
    may write the same file, so it is read again whenever it changed on disk.
    """

    def __init__(self, file: Path) -> None:
        self.file = file
        self._lock = threading.Lock()
        self._entries: dict[str, Quarantined] = {}
        self._seen: tuple[int, int] | None = None  # the file's (size, mtime) when last read

    def reason(self, path: Path) -> str | None:
        """Why ``path`` is not to be read again, or None when it may be read."""
        key = _key(path)
        with self._lock:
            self._reload()
            entry = self._entries.get(key)
        if entry is None or entry.version != core.__version__:
            return None
        if _stat(path) != (entry.size, entry.mtime_ns):
            return None
        return entry.reason

    def add(self, path: Path, reason: str) -> None:
        """Remember ``path`` as it is now; logged, never raised, when the file cannot be written."""
        stat = _stat(path)
        if stat is None:
            return
        with self._lock:
            self._reload()
            self._entries[_key(path)] = Quarantined(
                reason, stat[0], stat[1], core.__version__, time.time()
            )
            while len(self._entries) > MAX_ENTRIES:
                oldest = min(self._entries, key=lambda k: self._entries[k].when)
                del self._entries[oldest]
            self._save()

    def _reload(self) -> None:
        now = _stat(self.file)
        if now == self._seen:
            return
        self._seen = now
        self._entries = {}
        if now is None:
            return
        try:
            raw = json.loads(self.file.read_text(encoding="utf-8"))
            self._entries = {k: Quarantined(**v) for k, v in raw.get("files", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError) as error:
            log.warning("Ignoring the list of unreadable files %s: %s", self.file, error)

    def _save(self) -> None:
        data = {"files": {k: vars(v) for k, v in self._entries.items()}}
        tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, self.file)
            self._seen = _stat(self.file)
        except OSError as error:
            log.warning("Could not remember the unreadable files in %s: %s", self.file, error)


def _key(path: Path) -> str:
    return os.path.abspath(os.fsdecode(path))


def default_quarantine_file() -> Path:
    """Beside the library index ($PHOTOSCRIBE_INDEX or the user data folder)."""
    from core.index import default_index_path  # sqlite and platformdirs, only when needed

    return default_index_path().with_name(QUARANTINE_FILE_NAME)
