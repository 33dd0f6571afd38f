"""The app around the window: entry point, crash handling, About, the PySide6 guard, imports."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication

import core
import desktop.app
import desktop.launcher
from desktop.crash import ExceptionHandler, setup_logging
from desktop.main_window import MainWindow
from desktop.model_card import ModelCard, about_html, read_model_card
from desktop.tasks import TaskPool

REPO = Path(__file__).resolve().parents[2]


def test_run_app_opens_the_folder_and_exits_cleanly(
    qtbot, monkeypatch, tmp_path, photo_dir, tiny_checkpoint
):
    monkeypatch.setenv("PHOTOSCRIBE_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("PHOTOSCRIBE_WEIGHTS", str(tiny_checkpoint))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(desktop.app, "setup_logging", lambda: tmp_path / "photoscribe.log")
    seen: dict[str, object] = {}

    def close_when_ready() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        window = windows[-1]
        if window.photos.rowCount() < 3:
            QTimer.singleShot(50, close_when_ready)
            return
        seen.update(
            folder=window.session.folder,
            weights=window.env.weights,
            app=QApplication.applicationName(),
        )
        window.close()

    QTimer.singleShot(50, close_when_ready)
    assert desktop.app.run_app(str(photo_dir)) == 0
    assert seen == {"folder": photo_dir, "weights": tiny_checkpoint, "app": "PhotoScribe"}
    assert sys.excepthook is not None and not isinstance(
        getattr(sys.excepthook, "__self__", None), ExceptionHandler
    ), "the crash handler is removed again"
    assert (tmp_path / "settings.ini").is_file()


def test_unexpected_exceptions_are_logged_and_shown(qtbot, tmp_path):
    root = logging.getLogger()
    handlers = list(root.handlers)
    log_file = setup_logging(tmp_path / "logs")
    shown: list[tuple[str, str]] = []
    handler = ExceptionHandler(lambda summary, details: shown.append((summary, details)), log_file)
    handler.install()
    try:
        try:
            raise ValueError("the flux capacitor is empty")
        except ValueError as error:
            sys.excepthook(type(error), error, error.__traceback__)
        qtbot.waitUntil(lambda: len(shown) == 1)
        worker = threading.Thread(target=lambda: 1 / 0)
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: len(shown) == 2)
    finally:
        handler.uninstall()
        for extra in set(root.handlers) - set(handlers):
            extra.close()
            root.removeHandler(extra)
    summary, details = shown[0]
    assert "the flux capacitor is empty" in summary and str(log_file) in summary
    assert "Traceback" not in summary and "Traceback" in details
    assert "ZeroDivisionError" in shown[1][1] or "division" in shown[1][0]
    logged = log_file.read_text(encoding="utf-8")
    assert "the flux capacitor is empty" in logged and "Traceback" in logged


def test_task_errors_without_a_handler_reach_the_crash_handler(qtbot, monkeypatch):
    caught: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, tb: caught.append(error))
    pool = TaskPool("test", 1)
    results: list[int] = []
    pool.submit(lambda: 6 * 7, on_done=results.append)
    pool.submit(lambda: {}["missing"])
    qtbot.waitUntil(lambda: results == [42] and len(caught) == 1)
    assert isinstance(caught[0], KeyError)
    pool.shutdown()


def test_about_shows_version_model_card_and_licences(qtbot, window, tiny_checkpoint, prompts):
    window.show_about()
    qtbot.waitUntil(lambda: bool(prompts.abouts), timeout=10_000)
    html = prompts.abouts[-1]
    assert core.__version__ in html
    assert "random weights for tests" in html, "the training data from the model card"
    assert "GPL-3.0-or-later" in html and "LGPL" in html


def test_model_card_is_read_without_torch_and_reports_problems(tiny_checkpoint, tmp_path):
    card = read_model_card(tiny_checkpoint)
    assert card.problem is None and card.provenance == {"data": "random weights for tests"}
    assert read_model_card(tmp_path / "absent.safetensors").problem == "no model file is installed"
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    assert read_model_card(junk).problem is not None


def test_the_gui_starts_without_loading_torch():
    """Importing the app (and building a window) must not pay for torch on the GUI thread."""
    code = (
        "import sys; from desktop.app import make_application; "
        "from desktop.main_window import MainWindow; make_application(); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


class _Pinger(QObject):
    pinged = Signal(object)


def test_many_signals_do_not_exhaust_none_or_true():
    """PySide6 6.12.0 on Python 3.11 dropped a reference to True per emit and aborted; the
    dependency pin (pyproject.toml) keeps it out, and this shows the installed one is fine."""
    pinger = _Pinger()
    got: list[object] = []
    pinger.pinged.connect(got.append)
    for _ in range(200_000):
        pinger.pinged.emit(None)
    assert len(got) == 200_000


def test_the_photoscribe_command_opens_the_app_on_a_folder(monkeypatch, photo_dir):
    opened: list[str | None] = []
    monkeypatch.setattr(desktop.app, "run_app", lambda folder: opened.append(folder) or 0)
    monkeypatch.setattr(sys, "argv", ["photoscribe", str(photo_dir)])
    assert desktop.launcher.main() == 0
    monkeypatch.setattr(sys, "argv", ["photoscribe"])
    assert desktop.launcher.main() == 0
    assert opened == [str(photo_dir), None]


def test_the_model_cards_scores_are_named_as_papers_name_them(tmp_path):
    card = ModelCard(tmp_path / "m.safetensors", {"dev": {"Bleu_4": 0.2441, "CIDEr": 0.569}})
    page = about_html("1.0", card, "CPU")
    assert "BLEU-4" in page and "CIDEr-D" in page and "0.244" in page
    assert "Bleu_4" not in page


def test_the_main_window_keeps_layout_menus_and_dialogs_only():
    """Issue 23: MainWindow had 53 methods, nine of them only forwarding a call; the commands
    now go straight to the objects that do the work."""
    import ast
    import inspect

    from desktop import main_window

    tree = ast.parse(inspect.getsource(main_window))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MainWindow"]
    methods = [n for n in ast.walk(cls) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert len(methods) <= 30, [m.name for m in methods]


def test_at_800_by_600_the_search_box_is_not_cut_and_no_empty_problems_panel(
    qtbot, window, photo_dir
):
    """Issue 22 item 12: at 800x600 the search box was cut to "Sear..." and the empty
    Problems panel took a quarter of the height."""
    from tests.desktop.conftest import open_and_wait

    window.resize(800, 600)
    open_and_wait(qtbot, window, photo_dir)
    box = window.search
    hint = box.fontMetrics().horizontalAdvance(box.placeholderText())
    qtbot.waitUntil(lambda: box.width() >= hint + 20)
    assert box.isVisible() and box.visibleRegion().boundingRect().width() >= hint + 20
    assert not window.errors_dock.isVisible()
    window.resize(1280, 800)
    qtbot.waitUntil(
        lambda: window.toolbar.toolButtonStyle() == Qt.ToolButtonStyle.ToolButtonTextBesideIcon
    )
