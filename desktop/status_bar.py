"""The window's status bar: messages, the batch's progress, photo counts, where the model runs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QModelIndex, QObject, Qt, QTimer, Slot
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from core.datatypes import default_weights_path
from desktop.captioning import JobSummary, ModelInfo
from desktop.environment import AppEnvironment, Probe, chosen_weights, probe
from desktop.session import FolderSession
from desktop.settings import AppSettings, Settings
from desktop.status import BatchProgress, format_duration, plural
from desktop.tasks import TaskPool

log = logging.getLogger(__name__)

NO_MODEL = "⚠ No caption model installed"
COUNTS_DELAY_MS = 200  # recounting waits this long, so rows changing quickly are counted once
MESSAGE_ROOM_PX = 24  # the status bar's margins and spacing around a message, roughly


def batch_report(summary: JobSummary) -> str:
    """One sentence on what a finished batch did."""
    parts = [f"Captioned {plural(summary.captioned, 'photo')}"]
    if summary.run is not None and (where := summary.run.saved_where()):
        parts.append(where)
    if summary.failed:
        parts.append(f"{summary.failed} failed (see Problems)")
    if summary.skipped:
        parts.append(f"{summary.skipped} skipped (already captioned)")
    text = ", ".join(parts)
    run = summary.run
    if run is not None and summary.captioned and run.seconds > 0:
        text += f" in {format_duration(run.seconds)} ({run.images_per_second:.1f} images/s)"
    return f"Cancelled. {text}." if summary.cancelled else f"{text}."


class StatusLine(QObject):
    """Fills the status bar from the session's signals: messages, the batch's progress (its
    Cancel button cancels the batch), the photo counts, and the model: where it will run (a
    check on ``tasks`` at start-up), loading, loaded."""

    def __init__(
        self,
        bar: QStatusBar,
        session: FolderSession,
        settings: Settings,
        env: AppEnvironment,
        tasks: TaskPool,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.bar = bar
        self.photos = photos = session.photos
        self.env = env
        self.settings = settings
        self.folder_open = False
        self.devices: tuple[str, ...] | None = None  # found by the start-up check
        self.shipped_model: bool | None = None
        self.model_info: ModelInfo | None = None
        self.progress = BatchProgress(bar)
        self.counts_label = QLabel(bar)
        self.counts_label.setObjectName("countsLabel")
        self.device_label = QLabel("Model: loads when you first caption", bar)
        self.device_label.setObjectName("deviceLabel")
        for widget in (self.progress, self.counts_label, self.device_label):
            bar.addPermanentWidget(widget)
        # Labels hidden to make room for the message shown now (shown again when it goes).
        self._stepped_aside: list[QLabel] = []
        bar.messageChanged.connect(self._message_changed)
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(COUNTS_DELAY_MS)
        self._counts_timer.timeout.connect(self.update_counts)
        photos.dataChanged.connect(self._rows_changed)
        photos.modelReset.connect(self.schedule_counts)
        session.opened.connect(self._folder_opened)
        session.message_posted.connect(self.show_message)
        for poster in (session.saver, session.batches):
            poster.message_posted.connect(self.show_message)
        batches = session.batches
        batches.batch_started.connect(self._batch_started)
        batches.photos_finished.connect(self.progress.advance)
        batches.batch_total_changed.connect(self.progress.set_total)
        batches.in_flight_changed.connect(self.progress.set_in_flight)
        batches.batch_cancelled.connect(self.progress.cancelling)
        batches.batch_finished.connect(self._batch_finished)
        self.progress.cancel_requested.connect(batches.cancel)
        session.captioning.model_load_started.connect(self.model_loading)
        session.captioning.model_loaded.connect(self.model_loaded)
        settings.changed.connect(self._settings_changed)
        tasks.submit(probe, on_done=self._probed, on_error=self._probe_failed)

    def show_message(self, text: str, timeout_ms: int) -> None:
        if text:
            self._give_back_room()  # a shorter message may not need it
            self.bar.showMessage(text, timeout_ms)
            self._make_room(text)
        else:
            self.bar.clearMessage()

    def _make_room(self, text: str) -> None:
        """QStatusBar cuts a message off where the permanent widgets begin: in a narrow window
        the model's label, then the photo counts, step aside while a message needs the room."""
        need = self.bar.fontMetrics().horizontalAdvance(text) + MESSAGE_ROOM_PX
        for label in (self.device_label, self.counts_label):
            if need <= self._room():
                return
            if not label.isHidden():
                label.hide()
                self._stepped_aside.append(label)

    def _room(self) -> int:
        """The width left of the status bar's widgets that stay while a message shows."""
        children = self.bar.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
        spacing = self.bar.layout().spacing() if self.bar.layout() is not None else 0
        taken = sum(w.sizeHint().width() + max(spacing, 0) for w in children if not w.isHidden())
        return self.bar.width() - taken

    @Slot(str)
    def _message_changed(self, text: str) -> None:
        if not text:
            self._give_back_room()

    def _give_back_room(self) -> None:
        while self._stepped_aside:
            self._stepped_aside.pop().show()

    # ---------------------------------------------------------------- the batch

    @Slot(int)
    def _batch_started(self, total: int) -> None:
        # The model loads once; later batches start captioning at once.
        self.progress.start(total, "Captioning…" if self.model_info is not None else "Starting…")

    @Slot(object)
    def _batch_finished(self, summary: JobSummary) -> None:
        self.progress.finish()
        if summary.no_model:
            self.show_no_model()
        elif not summary.error:
            self.show_message(batch_report(summary), 10000)

    # ---------------------------------------------------------------- counts

    def _folder_opened(self, _folder: Path) -> None:
        self.folder_open = True

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

    def _probed(self, found: Probe) -> None:
        self.devices = found.devices
        self.shipped_model = found.shipped_model
        self._show_model_status()

    def _probe_failed(self, error: BaseException) -> None:
        log.warning("Could not check the compute devices: %s", error)

    def _settings_changed(self, _settings: AppSettings) -> None:
        self._show_model_status()  # another model file may have been chosen

    def _show_model_status(self) -> None:
        if self.model_info is not None:
            return  # loaded: the label says where
        installed = (
            chosen_weights(self.env, self.settings.current) is not None or self.shipped_model
        )
        self.show_model_waiting(installed is not False, self.devices)

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
        self.model_info = info
        self.device_label.setText(f"Model on {info.device_name}")
        self.device_label.setToolTip(str(info.path) if info.path else "")
        self.progress.set_message("Captioning…")
