"""What a reader process can be asked to do, by name (a table shared by core.isolation, which
sends requests, and core.reader_worker, which serves them, so neither imports the other)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# core.reader_worker's decoding, and the methods core.isolation.runs_in_reader marks (reading
# and writing embedded metadata).
TASKS: dict[str, Callable[..., Any]] = {}
