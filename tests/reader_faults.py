"""Image readers that crash or hang on chosen files, for tests only.

``install`` is the ``setup`` hook a test gives ``core.isolation.ReaderPool``: it runs inside each
reader process and makes every reader task fail on files named ``segfault*`` (a segmentation
fault in C code), ``abort*`` (abort()) and ``hang*`` (never returns). The app and the command
line never pass a setup hook, so no user can reach this.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import reader_worker


def _faulty(task: Callable[..., Any]) -> Callable[..., Any]:
    def run(path: Path, *args: Any) -> Any:
        name = Path(path).name
        if name.startswith("segfault"):
            ctypes.string_at(0)  # reads address 0: SIGSEGV in C code, as a decoder bug would
        if name.startswith("abort"):
            os.abort()
        if name.startswith("hang"):
            time.sleep(3600)
        return task(path, *args)

    return run


def install() -> None:
    for name, task in list(reader_worker.TASKS.items()):
        reader_worker.TASKS[name] = _faulty(task)
