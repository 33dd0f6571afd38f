"""The app's side of the writer thread: saves handed over as snapshots, outcomes as a signal."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from core.engine import SaveOutcome, Writer
from core.storage import SaveRequest

log = logging.getLogger(__name__)


class CaptionWriter(QObject):
    """Owns the process's one core Writer: every caption write and every index row goes
    through its thread, the engine's (handed over by the inference thread) and the user's.

    ``save`` reports each outcome with the ``written`` signal on the GUI thread.
    """

    written = Signal(object)  # SaveOutcome, on the GUI thread

    def __init__(self, parent: QObject | None = None, index_path: Path | None = None) -> None:
        super().__init__(parent)
        self.core = Writer(index_path)

    def save(self, request: SaveRequest) -> None:
        """Queue a save of ``request`` (a snapshot); ``written`` says how it went."""
        self.core.save(request, on_done=self._done)

    def _done(self, outcome: SaveOutcome) -> None:  # on the writer thread
        self.written.emit(outcome)

    @property
    def pending(self) -> int:
        return self.core.pending

    def shutdown(self) -> None:
        """Finish every queued write (each is atomic), then stop the thread."""
        self.core.close()
