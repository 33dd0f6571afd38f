"""The `photoscribe` entry point: subcommands run headless in core, no arguments open the app."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.cli import main as cli_main
from core.isolation import READER_FLAG
from desktop.display_check import start_problem
from desktop.samples import BUNDLED_SAMPLES

SMOKE_GUI = "--smoke-gui"  # open the main window, report when it is painted, close it (packaging)
SMOKE_TIMEOUT_S = 120  # a window that has not appeared by then never will


def run_gui(folder: str | None) -> int:
    problem = start_problem()
    if problem is not None:
        print(problem.message, file=sys.stderr)
        return problem.exit_code
    # Imported here: Qt and the app are not loaded for headless subcommands.
    from desktop.app import run_app

    return run_app(folder)


@contextmanager
def _scratch_environment() -> Iterator[Path]:
    """Settings, logs, caches and data in a temporary folder: the user's own stay untouched."""
    with tempfile.TemporaryDirectory(prefix="photoscribe-smoke-") as scratch:
        root = Path(scratch)
        wanted = {
            "PHOTOSCRIBE_SETTINGS": str(root / "settings.ini"),
            "PHOTOSCRIBE_INDEX": str(root / "library.db"),
            # platformdirs on Linux and BSD; macOS and Windows keep their usual log folder.
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_CACHE_HOME": str(root / "cache"),
            "XDG_DATA_HOME": str(root / "data"),
            "XDG_STATE_HOME": str(root / "state"),
        }
        saved = {name: os.environ.get(name) for name in wanted}
        os.environ.update(wanted)
        try:
            yield root
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def smoke_gui() -> int:
    """Start the app as on a first run, wait until the main window is painted, then close it.

    Prints one JSON line: when the window was first painted (``shown_at``, seconds since the
    epoch, so that a caller can subtract its own launch time) and what it showed. Exit 0 when
    the window appeared and the app then quit cleanly. Without a display, run it with
    QT_QPA_PLATFORM=offscreen.
    """
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.app import make_application, run_app
    from desktop.main_window import MainWindow

    class FirstPaint(QObject):
        """Notes the first paint of a main window and then closes it, as a user would."""

        def __init__(self) -> None:
            super().__init__()
            self.shown_at: float | None = None
            self.window: MainWindow | None = None

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if (
                self.shown_at is None
                and event.type() == QEvent.Type.Paint
                and isinstance(watched, MainWindow)
            ):
                self.shown_at = time.time()
                self.window = watched
                QTimer.singleShot(0, watched.close)
            return False

    def give_up() -> None:
        print(f"photoscribe: no main window within {SMOKE_TIMEOUT_S} s", file=sys.stderr)
        QApplication.exit(3)

    with _scratch_environment():
        app = make_application()
        watcher = FirstPaint()
        app.installEventFilter(watcher)
        timeout = QTimer()
        timeout.setSingleShot(True)
        timeout.timeout.connect(give_up)
        timeout.start(SMOKE_TIMEOUT_S * 1000)
        try:
            code = run_app(None)
        finally:
            timeout.stop()
            app.removeEventFilter(watcher)
        closed_at = time.time()
    if watcher.shown_at is None or watcher.window is None:
        print("photoscribe: the main window was never shown", file=sys.stderr)
        return code or 1
    report = {
        "shown_at": watcher.shown_at,
        "closed_at": closed_at,
        "title": watcher.window.windowTitle(),
        "size": [watcher.window.width(), watcher.window.height()],
        "platform": QApplication.platformName(),
        "exit_code": code,
    }
    print(json.dumps(report), flush=True)
    return code


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == [READER_FLAG]:  # the packaged app started as an image reader (core.isolation)
        from core.reader_worker import main as reader_main

        reader_main(argv[1:])
        return 0
    if argv == [SMOKE_GUI]:
        return smoke_gui()
    return cli_main(argv, gui=run_gui, self_test_photos=(BUNDLED_SAMPLES,))


if __name__ == "__main__":
    sys.exit(main())
