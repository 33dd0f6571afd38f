"""The errors panel (file and reason per failure) and the batch progress shown in the status bar."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


def split_error(path: Path, message: str) -> str:
    """The reason alone: core's messages start with the file's path, shown in its own column."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def plural(n: int, word: str) -> str:
    """Counts for messages ("1 photo", "2 photos"): the one way every message counts things."""
    return f"{n} {word}{'' if n == 1 else 's'}"


class ErrorsPanel(QWidget):
    """A table of problems, newest last; double-clicking a row selects that photo."""

    photo_activated = Signal(object)  # path
    cleared = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, 2, self)
        self.table.setObjectName("errorsTable")
        self.table.setHorizontalHeaderLabels(["File", "Problem"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 220)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.cellDoubleClicked.connect(self._activated)
        self.summary = QLabel("No problems.", self)
        clear = QPushButton("Clear", self)
        clear.setToolTip("Forget the problems listed here")
        clear.clicked.connect(self.clear)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.table)

    def add(self, path: Path | None, message: str) -> None:
        """List a problem; a photo listed before keeps only its newest one."""
        if path is not None:
            for old in reversed(range(self.table.rowCount())):
                if self.table.item(old, 0).data(Qt.ItemDataRole.UserRole) == path:
                    self.table.removeRow(old)
        row = self.table.rowCount()
        self.table.insertRow(row)
        name = QTableWidgetItem(path.name if path is not None else "")
        name.setData(Qt.ItemDataRole.UserRole, path)
        name.setToolTip(str(path) if path is not None else "")
        reason_text = split_error(path, message) if path is not None else message
        reason = QTableWidgetItem(reason_text)
        reason.setToolTip(reason_text)
        self.table.setItem(row, 0, name)
        self.table.setItem(row, 1, reason)
        self.table.scrollToBottom()
        self.summary.setText(f"{plural(row + 1, 'problem')}.")

    def remove(self, path: Path) -> None:
        """``path`` is fine now (its caption was saved): it is no longer a problem."""
        for row in reversed(range(self.table.rowCount())):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == path:
                self.table.removeRow(row)
        count = self.table.rowCount()
        self.summary.setText(f"{plural(count, 'problem')}." if count else "No problems.")
        if not count:
            self.cleared.emit()

    @property
    def count(self) -> int:
        return self.table.rowCount()

    def rows(self) -> list[tuple[str, str]]:
        """(file name, problem) per row, for tests and copying."""
        return [
            (self.table.item(r, 0).text(), self.table.item(r, 1).text())
            for r in range(self.table.rowCount())
        ]

    def clear(self) -> None:
        self.table.setRowCount(0)
        self.summary.setText("No problems.")
        self.cleared.emit()

    def _activated(self, row: int, _column: int) -> None:
        path = self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)
        if path is not None:
            self.photo_activated.emit(path)


PROBLEMS_HEIGHT = 170  # the Problems panel's height when it first opens


class ProblemsDock(QDockWidget):
    """The Problems panel docked at the bottom of ``window``: it opens when a problem comes,
    and closes when none is left (a photo saved since, Clear, another folder); the View menu
    still shows it on demand."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__("Problems", window)
        self.setObjectName("errorsDock")
        self.window_ = window
        self.panel = ErrorsPanel(self)
        self.setWidget(self.panel)
        self.sized = False  # its size was restored from the last session, or set once
        self.panel.cleared.connect(self.hide)

    def remove(self, path: Path) -> None:
        self.panel.remove(path)

    def add(self, path: Path | None, message: str) -> None:
        self.panel.add(path, message)
        if not self.isVisible():
            self.show()
            if not self.sized:  # a few rows, not half the window
                QTimer.singleShot(0, self._size)  # once it is laid out
                self.sized = True

    def _size(self) -> None:
        self.window_.resizeDocks([self], [PROBLEMS_HEIGHT], Qt.Orientation.Vertical)


MIN_SECONDS = 3.0  # a rate measured over less time says more about batching than speed
MIN_PHOTOS = 3  # nor is a rate over fewer captioned photos worth showing
WINDOW_SECONDS = 30.0  # the rate is measured over about this much of the recent past
SMOOTHING = 0.3  # weight of a new measurement in the rate shown (exponential smoothing)
BURST_SECONDS = 0.05  # photos finished this close to the first one came out of the same batch


@dataclass(kw_only=True)
class RateMeter:
    """Images per second and time left for a batch, once there is enough to go on.

    Photos finish in bursts (a whole batch at once), so the rate is measured from the end of
    the first burst over a window of the recent past, only after a few seconds and photos,
    and smoothed so that the time left does not jump about.
    """

    total: int
    done: int = 0
    started: float | None = None  # time of the first finished (captioned) photo
    counted: int = 0  # photos captioned since then
    samples: deque[tuple[float, int]] = field(default_factory=deque)  # (time, counted)
    smoothed: float | None = None  # the rate shown

    def advance(self, now: float | None = None, captioned: bool = True, count: int = 1) -> None:
        now = time.monotonic() if now is None else now
        self.done += count
        if not captioned or count <= 0:
            return  # a skipped photo takes no model time; it would inflate the rate
        if self.started is None:
            self.started = now
            count -= 1
        self.counted += count
        if len(self.samples) <= 1 and now - self.started <= BURST_SECONDS:
            self.samples.clear()  # still the first burst: the rate is measured from its end
        self.samples.append((now, self.counted))
        while len(self.samples) > 2 and self.samples[1][0] <= now - WINDOW_SECONDS:
            self.samples.popleft()
        measured = self._measure(now)
        if measured is not None:
            old = self.smoothed
            self.smoothed = measured if old is None else old + SMOOTHING * (measured - old)

    def _measure(self, now: float) -> float | None:
        if self.started is None or not self.samples:
            return None
        since, counted_then = self.samples[0]
        photos, elapsed = self.counted - counted_then, now - since
        if self.counted < MIN_PHOTOS or now - self.started < MIN_SECONDS or elapsed <= 0:
            return None
        return photos / elapsed

    def rate(self) -> float | None:
        """Photos per second; None until it means something."""
        return self.smoothed

    def seconds_left(self) -> float | None:
        rate = self.rate()
        if rate is None or rate <= 0:
            return None
        return max(self.total - self.done, 0) / rate


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ElidedLabel(QLabel):
    """One line of text that gives way on a narrow window: cut at the end with "…" (the whole
    text in its tooltip) instead of pushing its neighbours, or being clipped at the start."""

    def minimumSizeHint(self) -> QSize:
        return QSize(
            self.fontMetrics().horizontalAdvance("Captioning…"), super().minimumSizeHint().height()
        )

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        shown = self.fontMetrics().elidedText(
            self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width()
        )
        painter.drawText(self.contentsRect(), int(self.alignment()), shown)


class BatchProgress(QWidget):
    """done/total, images/s and time left, with the Cancel button that becomes "Cancelling…"."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar(self)
        self.bar.setObjectName("batchProgress")
        self.bar.setMinimumWidth(130)  # "120 / 3000" fits; at 800 pixels the label needs the room
        self.bar.setFormat("%v / %m")
        self.label = ElidedLabel(self)
        self.label.setObjectName("batchRate")
        self.label.setAlignment(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop captioning (Esc); captions already saved stay")
        self.cancel_button.clicked.connect(self._cancel_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self.meter = RateMeter(total=0)
        self.in_flight = 0  # photos at the model or being saved
        self.hide()

    def start(self, total: int, message: str = "Starting…") -> None:
        self.meter = RateMeter(total=total)
        self.in_flight = 0
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(0)
        self.label.setText(message)
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.show()

    def set_message(self, message: str) -> None:
        self.label.setText(message)

    def advance(self, captioned: int = 1, skipped: int = 0) -> None:
        """``captioned`` photos (or failed ones) and ``skipped`` photos more are done."""
        if skipped:
            self.meter.advance(captioned=False, count=skipped)
        if captioned:
            self.meter.advance(captioned=True, count=captioned)
        self.bar.setValue(min(self.meter.done, self.bar.maximum()))
        self._show_state()

    def set_in_flight(self, count: int) -> None:
        """``count`` photos are at the model or being saved: the batch in flight is shown."""
        if count != self.in_flight:
            self.in_flight = count
            self._show_state()

    def set_total(self, total: int) -> None:
        """The number of photos the batch covers, once known (the engine counts them)."""
        if total > 0 and total != self.meter.total:
            self.meter.total = total
            self.bar.setMaximum(total)
            self.bar.setValue(min(self.meter.done, total))

    def _show_state(self) -> None:
        """What is being captioned now, then the rate and the time left once they are known."""
        done, total = self.meter.done, self.meter.total
        if self.in_flight and total:
            last = min(done + self.in_flight, total)
            doing = (
                f"Captioning {done + 1}–{last} of {total}"
                if last > done + 1
                else (f"Captioning {last} of {total}")
            )
        else:
            doing = "Captioning…"
        rate = self.meter.rate()
        left = self.meter.seconds_left()
        if rate is None:
            self.label.setText(f"{doing}, estimating the time left")
        elif left is None:
            self.label.setText(f"{doing}, {rate:.1f} images/s")
        else:
            self.label.setText(f"{doing}, {rate:.1f} images/s, {format_duration(left)} left")

    def cancelling(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")

    def finish(self) -> None:
        self.hide()

    def _cancel_clicked(self) -> None:
        self.cancel_requested.emit()
