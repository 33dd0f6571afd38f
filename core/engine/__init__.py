"""The library engine: captions whole libraries resumably, for the command line and the app.

- ``plan``: what to do with each photo, decided from its index row and stored captions (pure).
- ``scan``: the scan and count threads that gather those facts and plan each photo.
- ``run``: ``LibraryEngine``, whose loop pulls planned photos and finished batches
  (``core.batches``) and hands each batch's saves to the writer.
- ``writer``: the one writer thread per process, which saves and owns the index connection.
- ``rebuild``: the index rebuilt from the stores; ``upkeep``: what the run and rebuild share.
"""

from core.engine.job import (
    EngineEvent,
    EventHandler,
    IndexReplaced,
    LibraryJob,
    PhotoCaptioned,
    PhotoFailed,
    PhotoForReview,
    PhotoSkipped,
    RunProgress,
    RunSummary,
    SkipReason,
)
from core.engine.rebuild import RebuildSummary, rebuild_index
from core.engine.run import LibraryEngine
from core.engine.versions import caption_version, model_version
from core.engine.writer import SaveOutcome, Writer, open_index_for_writing

__all__ = [
    "EngineEvent",
    "EventHandler",
    "IndexReplaced",
    "LibraryEngine",
    "LibraryJob",
    "PhotoCaptioned",
    "PhotoFailed",
    "PhotoForReview",
    "PhotoSkipped",
    "RebuildSummary",
    "RunProgress",
    "RunSummary",
    "SaveOutcome",
    "SkipReason",
    "Writer",
    "caption_version",
    "model_version",
    "open_index_for_writing",
    "rebuild_index",
]
