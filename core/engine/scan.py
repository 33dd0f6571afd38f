"""The scan thread: walks the library and plans each photo; the count thread counts them."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from core import library
from core.engine.plan import Caption, PhotoFacts, ReadStores, Rules, Skip, plan
from core.engine.upkeep import read_stores, store_still_there, stores_by_kind
from core.errors import PhotoScribeError
from core.index import LibraryIndex
from core.library import FoundPhoto, ScanProblem
from core.storage import CaptionStore, FileIdentity, StoreKind, XmpName

log = logging.getLogger(__name__)

QUEUE_SIZE = 256  # planned photos waiting for the run loop; bounds the scan's lead


@dataclass(frozen=True)
class Todo:
    """A photo to caption, with its identity when it was planned (checked again on saving)."""

    path: Path
    identity: FileIdentity
    overwrite: bool


@dataclass(frozen=True)
class Failed:
    """A photo whose stores could not be read: left alone, reported."""

    path: Path
    reason: str
    identity: FileIdentity | None


@dataclass(frozen=True)
class Crashed:
    error: BaseException


class ScanEnd:
    """The scan went through everything."""


Planned = Todo | Skip | Failed | ScanProblem | Crashed | ScanEnd


def decide(
    found: FoundPhoto,
    rules: Rules,
    reader: LibraryIndex | None,
    stores: Mapping[StoreKind, CaptionStore],
) -> Todo | Skip | Failed:
    """Gather the facts about one photo (its row, then its stores as needed) and plan it."""
    path = found.path
    try:
        identity = FileIdentity(found.size, found.mtime_ns)
        row = reader.lookup(path) if reader is not None else None
        present = True
        if row is not None and row.status == "done" and row.same_file(found.size, found.mtime_ns):
            present = store_still_there(path, row, stores)
            if not present:
                log.info("The caption file of %s is gone; the index is brought up to date", path)
        facts = PhotoFacts(path, identity, row, present)
        decision = plan(facts, rules)
        while isinstance(decision, ReadStores):
            read = read_stores(path, decision.kinds, stores, required=rules.target)
            facts = PhotoFacts(path, identity, row, present, {**facts.stored, **read})
            decision = plan(facts, rules)
        if isinstance(decision, Caption):
            # The full identity (inode, first bytes) the save checks against.
            return Todo(path, FileIdentity.of(path), decision.overwrite)
        return decision
    except PhotoScribeError as error:
        # Without knowing what is stored, saving could overwrite it: leave the photo alone.
        return Failed(path, str(error), FileIdentity(found.size, found.mtime_ns))


class Scanner:
    """Runs the scan and the count on their own threads; the run loop reads ``items``."""

    def __init__(
        self,
        roots: tuple[Path, ...],
        recursive: bool,
        rules: Rules,
        xmp_name: XmpName,
        index_path: Path | None,
    ) -> None:
        self.roots = roots
        self.recursive = recursive
        self.rules = rules
        self.xmp_name = xmp_name
        self.index_path = index_path  # read-only lookups; None when the job saves nothing
        self.items: queue.Queue[Planned] = queue.Queue(QUEUE_SIZE)
        self.total: int | None = None  # set by the count thread
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target, name in ((self._produce, "library-scan"), (self._count, "library-count")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def take(self, timeout: float) -> Planned | None:
        """The next planned item, or None when none came within ``timeout`` seconds."""
        try:
            return self.items.get(timeout=timeout) if timeout > 0 else self.items.get_nowait()
        except queue.Empty:
            return None

    def _put(self, item: Planned) -> bool:
        while not self._stop.is_set():
            try:
                self.items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        reader: LibraryIndex | None = None
        stores = stores_by_kind(self.xmp_name)
        try:
            if self.index_path is not None:
                reader = LibraryIndex.open(self.index_path, readonly=True)
            for found in self._scan():
                if self._stop.is_set():
                    return
                item = (
                    found
                    if isinstance(found, ScanProblem)
                    else decide(found, self.rules, reader, stores)
                )
                if not self._put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the run loop, raised there
            self._put(Crashed(error))
            return
        finally:
            if reader is not None:
                reader.close()
        self._put(ScanEnd())

    def _scan(self) -> Iterator[FoundPhoto | ScanProblem]:
        return library.scan_library(self.roots, self.recursive)

    def _count(self) -> None:
        """Count the photos the job covers, for progress and time left."""
        n = 0
        for found in library.scan_library(self.roots, self.recursive, check_files=False):
            if self._stop.is_set():
                return
            if isinstance(found, FoundPhoto) or found.kind != "folder":
                n += 1
        self.total = n
