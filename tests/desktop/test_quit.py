"""Quitting the real app with captions that cannot be saved ends the process (issue 27)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from core.index import LibraryIndex

ROOT = Path(__file__).resolve().parents[2]

# The real app (desktop.app.run_app, real dialogs), its saves refused as in a read-only folder
# (the tests may run as root, who may write anywhere). Once the folder is listed, every photo
# gets an unsaved caption and File > Quit is chosen; asked about unsaved captions, the user
# answers Save. Any message box shown after that would wait for a click that never comes.
APP = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    import core.engine.writer as writer_module
    from core.errors import ReadOnlyError
    from desktop.app import run_app
    from desktop.dialogs import Prompts
    from desktop.main_window import MainWindow

    folder = Path(sys.argv[1])

    def refuse(request):
        raise ReadOnlyError(request.photo, "not allowed to write here (Permission denied).")

    writer_module.save_caption = refuse
    Prompts.ask_unsaved = lambda self, parent, count, doing: "save"

    def quit_when_listed():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        photos = list(windows[0].photos.photos()) if windows else []
        if not windows or not photos or not all(p.loaded for p in photos):
            QTimer.singleShot(20, quit_when_listed)
            return
        window = windows[0]
        for photo in window.photos.photos():
            window.session.saver.set_draft(photo.path, f"a caption for {photo.path.stem}")
        print("unsaved:", len(window.photos.unsaved()), flush=True)
        window.commands.quit.trigger()

    QTimer.singleShot(0, quit_when_listed)
    code = run_app(str(folder))
    print("app returned", code, flush=True)
    sys.exit(code)
    """
)


def test_quitting_with_unsaved_captions_that_fail_ends_the_process(photo_dir, tmp_path):
    """Regression (issue 27, item 2): quitting with 23 unsaved captions and choosing Save
    closed the window but left 23 error boxes on an empty screen, and the process stayed alive
    for over 100 s."""
    home = tmp_path / "home"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": str(ROOT),
        "PHOTOSCRIBE_SETTINGS": str(home / "settings.ini"),
        "PHOTOSCRIBE_INDEX": str(home / "library.db"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
    }
    app = subprocess.Popen(
        [sys.executable, "-c", APP, str(photo_dir)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Generous for a loaded machine: the process needs no more than its start-up.
        output, _ = app.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        app.kill()
        output, _ = app.communicate()
        raise AssertionError(f"the app did not end after Quit:\n{output}") from None
    assert "unsaved: 3" in output, output
    assert app.returncode == 0, output
    assert "app returned 0" in output
    with LibraryIndex.open(home / "library.db", readonly=True) as index:
        kept = {entry.path.name: entry.caption for entry in index.unsaved_entries()}
    assert kept == {f"photo{i}.jpg": f"a caption for photo{i}" for i in range(3)}
