"""Dialogs (settings, export, about) and Prompts, the one place the window asks the user things."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from core.datatypes import DEVICE_CHOICES, PRECISIONS
from core.export import HF_METADATA_NAME, ExportFormat
from core.storage import store_info
from desktop.originals import WriteIntoPhotosChoice, ask_write_into_photos
from desktop.saving import Refusals
from desktop.settings import MAX_BATCH, MAX_BEAM, MAX_CANDIDATES, AppSettings

log = logging.getLogger(__name__)

UnsavedChoice = Literal["save", "discard", "cancel"]
RefusalsChoice = Literal["sidecars", "keep"]

XMP_NAME_CHOICES = (
    ("photo.jpg.xmp", "photo.jpg.xmp (darktable, digiKam)"),
    ("photo.xmp", "photo.xmp (Lightroom)"),
)
DEVICE_LABELS = {"auto": "Automatic (best available)", "cpu": "CPU", "cuda": "CUDA (NVIDIA GPU)"}
DEVICE_LABELS["mps"] = "MPS (Apple GPU)"
PRECISION_LABELS = {
    "fp32": "Exact (fp32): the same captions on every computer",
    "auto": "Fastest for this device (bf16 or fp16)",
    "bf16": "bf16",
}
EXPORT_CHOICES: tuple[tuple[ExportFormat, str, str], ...] = (
    ("csv", "CSV spreadsheet (file_name, caption, store)", "captions.csv"),
    ("json", "JSON array", "captions.json"),
    ("jsonl", "JSON Lines", "captions.jsonl"),
    ("hf", "Hugging Face ImageFolder (metadata.jsonl)", HF_METADATA_NAME),
)
EXPORT_FILTERS: dict[ExportFormat, str] = {  # what the save dialog lists for each format
    "csv": "CSV files (*.csv)",
    "json": "JSON files (*.json)",
    "jsonl": "JSON Lines files (*.jsonl)",
    "hf": "JSON Lines files (*.jsonl)",
}
FILE_DIALOG_SIZE = (900, 540)  # room for the name, size, type and date columns
FILE_DIALOG_PLACES = 170  # width of the list of places (Computer, home) in Qt's own dialog


def file_dialog(parent: QWidget | None, title: str, start: Path) -> QFileDialog:
    """A file dialog big enough to read; where Qt draws its own, columns fit their contents."""
    dialog = QFileDialog(parent, title, str(start))
    dialog.resize(*FILE_DIALOG_SIZE)
    for splitter in dialog.findChildren(QSplitter):  # the places beside the files, readable
        splitter.setSizes([FILE_DIALOG_PLACES, FILE_DIALOG_SIZE[0] - FILE_DIALOG_PLACES])
    for view in dialog.findChildren(QTreeView):  # Qt's own dialog, not the desktop's
        header = view.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    return dialog


def export_file_dialog(parent: QWidget | None, folder: Path, fmt: ExportFormat) -> QFileDialog:
    """Where to export: offers the format's own extension, and adds it when left out."""
    default_name = next(name for key, _, name in EXPORT_CHOICES if key == fmt)
    dialog = file_dialog(parent, "Export Captions To", folder / default_name)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setFileMode(QFileDialog.FileMode.AnyFile)
    dialog.setNameFilters([EXPORT_FILTERS[fmt], "All files (*)"])
    dialog.setDefaultSuffix(Path(default_name).suffix.lstrip("."))
    dialog.selectFile(str(folder / default_name))
    return dialog


@dataclass(frozen=True)
class ExportRequest:
    fmt: ExportFormat
    out: Path
    recursive: bool
    bom: bool = False


class SettingsDialog(QDialog):
    """Edits a copy of AppSettings; ``result_settings`` is the user's choice after OK."""

    def __init__(
        self, settings: AppSettings, devices: tuple[str, ...] | None, parent: QWidget | None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("PhotoScribe Settings")
        self._initial = settings
        form = QFormLayout()

        self.store = QComboBox(self)
        for kind in ("txt", "xmp", "embed"):  # simplest first
            self.store.addItem(store_info(kind).label, kind)
        self.store.setCurrentIndex(self.store.findData(settings.store))
        self.store.setToolTip("Where saved captions go. Every store is read when looking for one.")
        form.addRow("Save captions as:", self.store)

        self.xmp_name = QComboBox(self)
        for key, label in XMP_NAME_CHOICES:
            self.xmp_name.addItem(label, key)
        self.xmp_name.setCurrentIndex(self.xmp_name.findData(settings.xmp_name))
        form.addRow("XMP sidecar name:", self.xmp_name)

        self.overwrite = QCheckBox("Generated captions may replace captions already saved", self)
        self.overwrite.setChecked(settings.overwrite)
        form.addRow("", self.overwrite)
        self.autosave = QCheckBox("Save generated captions straight away", self)
        self.autosave.setToolTip(
            "Off: generated captions wait, marked unsaved, until you review and save them"
        )
        self.autosave.setChecked(settings.autosave)
        form.addRow("", self.autosave)

        self.device = QComboBox(self)
        have = set(devices or ())
        for key in DEVICE_CHOICES:
            label = DEVICE_LABELS[key]
            if devices is not None and key != "auto" and key not in have:
                label += " — not available here"
            self.device.addItem(label, key)
        self.device.setCurrentIndex(self.device.findData(settings.device))
        form.addRow("Device:", self.device)
        available = ", ".join(d.upper() for d in devices) if devices else "checking…"
        form.addRow("", QLabel(f"Available on this computer: {available}", self))

        self.precision = QComboBox(self)
        for key in PRECISIONS:
            self.precision.addItem(PRECISION_LABELS[key], key)
        self.precision.setCurrentIndex(self.precision.findData(settings.precision))
        self.precision.setToolTip(
            "Reduced precision is about 10% faster on CPUs with bf16 instructions, but its "
            "captions differ for about one photo in six between kinds of CPU"
        )
        form.addRow("Precision:", self.precision)

        self.beam = QSpinBox(self)
        self.beam.setRange(1, MAX_BEAM)
        self.beam.setValue(settings.beam_size)
        self.beam.setToolTip("1 is fastest (greedy); 3 is usually best")
        form.addRow("Beam size:", self.beam)
        self.batch = QSpinBox(self)
        self.batch.setRange(1, MAX_BATCH)
        self.batch.setValue(settings.batch_size)
        self.batch.setToolTip("Photos per step; larger is faster on a GPU and uses more memory")
        form.addRow("Batch size:", self.batch)
        self.candidates = QSpinBox(self)
        self.candidates.setRange(1, MAX_CANDIDATES)
        self.candidates.setValue(settings.n_candidates)
        form.addRow("Suggestions per photo:", self.candidates)
        self.review_below = QSpinBox(self)
        self.review_below.setRange(0, 100)
        self.review_below.setSuffix("%")
        self.review_below.setSpecialValueText("Never")
        self.review_below.setValue(round(settings.review_below * 100))
        self.review_below.setToolTip(
            "Captions the model is less sure of than this are marked “Check this” in the grid "
            "and beside the caption; View ▸ Least Sure First puts them first"
        )
        form.addRow("Mark “Check this” below:", self.review_below)

        self.weights = QLineEdit(settings.weights, self)
        self.weights.setPlaceholderText("The model shipped with PhotoScribe")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse_weights)
        row = QHBoxLayout()
        row.addWidget(self.weights, 1)
        row.addWidget(browse)
        form.addRow("Model file:", row)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults,
            self,
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        restore = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        restore.clicked.connect(lambda: self._load(AppSettings()))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _load(self, settings: AppSettings) -> None:
        self.store.setCurrentIndex(self.store.findData(settings.store))
        self.xmp_name.setCurrentIndex(self.xmp_name.findData(settings.xmp_name))
        self.overwrite.setChecked(settings.overwrite)
        self.autosave.setChecked(settings.autosave)
        self.device.setCurrentIndex(self.device.findData(settings.device))
        self.precision.setCurrentIndex(self.precision.findData(settings.precision))
        self.beam.setValue(settings.beam_size)
        self.batch.setValue(settings.batch_size)
        self.candidates.setValue(settings.n_candidates)
        self.review_below.setValue(round(settings.review_below * 100))
        self.weights.setText(settings.weights)

    def _browse_weights(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Choose a caption model", self.weights.text(), "Models (*.safetensors)"
        )
        if name:
            self.weights.setText(name)

    def _review_below(self) -> float:
        """The threshold chosen; one set more finely (in the settings file) stays as it is
        unless the user changed it here."""
        initial = self._initial.review_below
        percent = self.review_below.value()
        return initial if percent == round(initial * 100) else percent / 100

    def result_settings(self) -> AppSettings:
        return self._initial.with_changes(
            store=self.store.currentData(),
            xmp_name=self.xmp_name.currentData(),
            overwrite=self.overwrite.isChecked(),
            autosave=self.autosave.isChecked(),
            device=self.device.currentData(),
            precision=self.precision.currentData(),
            beam_size=self.beam.value(),
            batch_size=self.batch.value(),
            n_candidates=self.candidates.value(),
            review_below=self._review_below(),
            weights=self.weights.text().strip(),
        )


class ExportDialog(QDialog):
    """Chooses the export format and whether subfolders are included."""

    def __init__(self, folder: Path, recursive: bool, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export Captions")
        self.folder = folder
        self.format = QComboBox(self)
        for key, label, _ in EXPORT_CHOICES:
            self.format.addItem(label, key)
        self.recursive = QCheckBox("Include subfolders", self)
        self.recursive.setChecked(recursive)
        self.bom = QCheckBox("Add a byte-order mark (for Excel)", self)
        self.format.currentIndexChanged.connect(self._format_changed)
        form = QFormLayout()
        form.addRow("Format:", self.format)
        form.addRow("", self.recursive)
        form.addRow("", self.bom)
        note = QLabel(
            f"Exports the captions saved for the photos in <b>{folder.name}</b>. "
            "Unsaved changes are not included.",
            self,
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export…")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self._format_changed()

    def _format_changed(self) -> None:
        self.bom.setEnabled(self.format.currentData() == "csv")

    def chosen(self) -> tuple[ExportFormat, str, bool, bool]:
        fmt: ExportFormat = self.format.currentData()
        default_name = next(name for key, _, name in EXPORT_CHOICES if key == fmt)
        return fmt, default_name, self.recursive.isChecked(), self.bom.isChecked() and fmt == "csv"


class AboutDialog(QDialog):
    def __init__(self, html: str, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About PhotoScribe")
        self.browser = QTextBrowser(self)
        self.browser.setOpenExternalLinks(True)
        self.browser.setHtml(html)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(560, 520)


class Prompts:
    """Every question and message box the main window shows; tests substitute their own."""

    def ask_unsaved(self, parent: QWidget, count: int, doing: str) -> UnsavedChoice:
        box = QMessageBox(parent)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Unsaved captions")
        photos = "1 photo has" if count == 1 else f"{count} photos have"
        box.setText(f"{photos} unsaved caption changes.")
        box.setInformativeText(f"Save them before {doing}?")
        box.setStandardButtons(
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel
        )
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        if answer == QMessageBox.StandardButton.Save:
            return "save"
        if answer == QMessageBox.StandardButton.Discard:
            return "discard"
        return "cancel"

    def show_refusals(self, parent: QWidget, refusals: Refusals) -> RefusalsChoice:
        """One box for every caption of a Save All (or a batch) that could not be saved."""
        box = QMessageBox(parent)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Captions not saved")
        box.setText(refusals.text())
        box.setInformativeText(refusals.advice())
        box.setDetailedText(refusals.details)
        sidecars = None
        if refusals.into_photos:
            sidecars = box.addButton("Save as XMP Sidecars", QMessageBox.ButtonRole.AcceptRole)
        keep = box.addButton("Keep Unsaved", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(sidecars or keep)
        box.exec()
        return "sidecars" if sidecars is not None and box.clickedButton() is sidecars else "keep"

    def ask_write_into_photos(self, parent: QWidget) -> WriteIntoPhotosChoice:
        return ask_write_into_photos(parent)

    def show_error(self, parent: QWidget | None, title: str, text: str, details: str = "") -> None:
        box = QMessageBox(parent)
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle(title)
        box.setText(text)
        if details:
            box.setDetailedText(details)
        box.exec()

    def choose_folder(self, parent: QWidget, start: Path | None) -> Path | None:
        dialog = file_dialog(parent, "Open a Photo Folder", start or Path.home())
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        if dialog.exec() != QDialog.DialogCode.Accepted or not dialog.selectedFiles():
            return None
        return Path(dialog.selectedFiles()[0])

    def edit_settings(
        self, parent: QWidget, settings: AppSettings, devices: tuple[str, ...] | None
    ) -> AppSettings | None:
        dialog = SettingsDialog(settings, devices, parent)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.result_settings()

    def choose_export(self, parent: QWidget, folder: Path, recursive: bool) -> ExportRequest | None:
        dialog = ExportDialog(folder, recursive, parent)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        fmt, _default_name, recursive, bom = dialog.chosen()
        save = export_file_dialog(parent, folder, fmt)
        if save.exec() != QDialog.DialogCode.Accepted or not save.selectedFiles():
            return None
        return ExportRequest(fmt, Path(save.selectedFiles()[0]), recursive, bom)

    def show_about(self, parent: QWidget, html: str) -> None:
        AboutDialog(html, parent).exec()
