"""The window's status bar: messages, the batch's progress, photo counts, where the model runs."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QModelIndex, QObject, Qt, QTimer, Slot
from PySide6.QtWidgets import QLabel, QStatusBar

from core.datatypes import default_weights_path
from desktop.captioning import JobSummary, ModelInfo
from desktop.photos import PhotoListModel
from desktop.session import plural
from desktop.status import BatchProgress

NO_MODEL = "⚠ No caption model installed"
COUNTS_DELAY_MS = 200  # recounting waits this long, so rows changing quickly are counted once


def batch_report(summary: JobSummary) -> str:
    """One sentence on what a finished batch did."""
    parts = [f"Captioned {plural(summary.captioned, 'photo')}"]
    if summary.run is not None and (where := summary.run.saved_where()):
        parts.append(where)
    if summary.failed:
        parts.append(f"{summary.failed} failed (see Problems)")
    if summary.skipped:
        parts.append(f"{summary.skipped} skipped (already captioned)")
    text = ", ".join(parts) + "."
    return f"Cancelled. {text}" if summary.cancelled else text


class StatusLine(QObject):
    """Fills the status bar; the window tells it what happened."""

    def __init__(self, bar: QStatusBar, photos: PhotoListModel, parent: QObject | None = None):
        super().__init__(parent)
        self.bar = bar
        self.photos = photos
        self.folder_open = False
        self.progress = BatchProgress(bar)
        self.counts_label = QLabel(bar)
        self.counts_label.setObjectName("countsLabel")
        self.device_label = QLabel("Model: loads when you first caption", bar)
        self.device_label.setObjectName("deviceLabel")
        for widget in (self.progress, self.counts_label, self.device_label):
            bar.addPermanentWidget(widget)
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(COUNTS_DELAY_MS)
        self._counts_timer.timeout.connect(self.update_counts)
        photos.dataChanged.connect(self._rows_changed)
        photos.modelReset.connect(self.schedule_counts)

    def show_message(self, text: str, timeout_ms: int) -> None:
        if text:
            self.bar.showMessage(text, timeout_ms)
        else:
            self.bar.clearMessage()

    # ---------------------------------------------------------------- counts

    def schedule_counts(self, *_args: object) -> None:
        if not self._counts_timer.isActive():
            self._counts_timer.start()

    def _rows_changed(self, _top: QModelIndex, _bottom: QModelIndex, roles: list[int] = ()) -> None:
        if list(roles) != [Qt.ItemDataRole.DecorationRole]:  # more than a thumbnail arrived
            self.schedule_counts()

    def update_counts(self) -> None:
        if not self.folder_open:
            self.counts_label.setText("")
            return
        photos = list(self.photos.photos())
        captioned = sum(1 for p in photos if p.has_caption)
        unsaved = sum(1 for p in photos if p.unsaved)
        text = f"{plural(len(photos), 'photo')}, {captioned} captioned"
        self.counts_label.setText(f"{text}, {unsaved} unsaved" if unsaved else text)

    # ---------------------------------------------------------------- the model

    def show_model_waiting(self, installed: bool, devices: Iterable[str] | None) -> None:
        """Before the model is loaded: where it will run, or that there is none to load."""
        if not installed:
            self.show_no_model()
            return
        names = ", ".join(d.upper() for d in devices) if devices else "?"
        self.device_label.setText(f"Model: loads when you first caption ({names})")
        self.device_label.setToolTip("The caption model loads the first time you caption")

    def show_no_model(self) -> None:
        self.device_label.setText(NO_MODEL)
        self.device_label.setToolTip(
            f"No trained caption model is installed at {default_weights_path()}. Choose a "
            "model file in Settings, or see the README on training one."
        )

    @Slot()
    def model_loading(self) -> None:
        self.progress.set_message("Loading the caption model…")
        self.device_label.setText("Model: loading…")

    @Slot(object)
    def model_loaded(self, info: ModelInfo) -> None:
        self.device_label.setText(f"Model on {info.device_name}")
        self.device_label.setToolTip(str(info.path) if info.path else "")
        self.progress.set_message("Captioning…")
