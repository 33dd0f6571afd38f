"""The desktop app's entry point: `run_app(folder)` sets up logging, Qt and the main window."""

from __future__ import annotations

import logging
import sys

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

import core
from desktop.crash import ExceptionHandler, setup_logging
from desktop.environment import AppEnvironment
from desktop.main_window import MainWindow
from desktop.samples import APP_ICON
from desktop.settings import APPLICATION, ORGANIZATION

log = logging.getLogger(__name__)


def show_crash_dialog(summary: str, details: str) -> None:
    box = QMessageBox(QApplication.activeWindow())
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle("PhotoScribe: unexpected error")
    box.setText(summary)
    box.setDetailedText(details)
    box.exec()


def make_application(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv or sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APPLICATION)
    app.setApplicationVersion(core.__version__)
    app.setDesktopFileName("photoscribe")
    app.setWindowIcon(QIcon(str(APP_ICON)))
    return app


def run_app(folder: str | None) -> int:
    """Open the main window (on ``folder``, if given) and run until it is closed."""
    log_file = setup_logging()
    app = make_application()
    handler = ExceptionHandler(show_crash_dialog, log_file)
    handler.install()
    log.info("PhotoScribe %s starting (log: %s)", core.__version__, log_file)
    window = MainWindow(AppEnvironment.from_environ(log_file))
    window.show()
    window.start(folder)
    try:
        return app.exec()
    finally:
        window.shutdown()  # already done by closeEvent unless the app was quit another way
        handler.uninstall()
