"""Fixtures for the desktop tests: a main window on temporary folders with the tiny checkpoint."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from torch import nn

from desktop.captioning import ModelChoice
from desktop.dialogs import ExportRequest, Prompts, RefusalsChoice, UnsavedChoice
from desktop.environment import AppEnvironment
from desktop.main_window import MainWindow
from desktop.originals import WriteIntoPhotosChoice
from desktop.settings import AppSettings

DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass
class FakePrompts(Prompts):
    """Answers every question without a dialog and records what the window said."""

    unsaved_answer: UnsavedChoice = "discard"
    write_into_photos_answer: WriteIntoPhotosChoice = "yes"
    asked_write_into_photos: int = 0
    folder: Path | None = None
    settings: AppSettings | None = None
    export_request: ExportRequest | None = None
    asked_unsaved: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    abouts: list[str] = field(default_factory=list)
    refusals: list = field(default_factory=list)  # desktop.saving.Refusals shown
    refusals_answer: RefusalsChoice = "keep"

    def ask_unsaved(self, parent, count, doing) -> UnsavedChoice:
        self.asked_unsaved.append((count, doing))
        return self.unsaved_answer

    def show_refusals(self, parent, refusals) -> RefusalsChoice:
        self.refusals.append(refusals)
        return self.refusals_answer

    def ask_write_into_photos(self, parent) -> WriteIntoPhotosChoice:
        self.asked_write_into_photos += 1
        return self.write_into_photos_answer

    def show_error(self, parent, title, text, details="") -> None:
        self.errors.append((title, text))

    def choose_folder(self, parent, start):
        return self.folder

    def edit_settings(self, parent, settings, devices):
        return self.settings

    def choose_export(self, parent, folder, recursive):
        return self.export_request

    def show_about(self, parent, html) -> None:
        self.abouts.append(html)


def cpu_captioner(choice: ModelChoice):
    """The real Captioner, always on the CPU so the tests behave the same everywhere."""
    from core.inference import Captioner

    return Captioner(choice.weights, device="cpu")


class CheapBackbone(nn.Module):
    """Stands in for EfficientNet-B0: same output shape, a tiny fraction of the work."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.proj = nn.Conv2d(3, 1280, 1)

    def forward(self, x):
        return self.proj(self.pool(x))  # (B, 1280, 7, 7)


def fast_captioner(choice: ModelChoice):
    """The tiny checkpoint's decoder with a cheap image encoder, for batches of hundreds."""
    captioner = cpu_captioner(choice)
    captioner.model.backbone = CheapBackbone().eval()
    return captioner


@pytest.fixture
def prompts() -> FakePrompts:
    return FakePrompts()


@pytest.fixture
def env(tmp_path_factory, tiny_checkpoint: Path) -> AppEnvironment:
    # Not under tmp_path: photo_dir is tmp_path, and the app's own files are not photos.
    home = tmp_path_factory.mktemp("app")
    return AppEnvironment(
        settings_path=home / "settings" / "photoscribe.ini",
        cache_dir=home / "cache",
        data_dir=home / "data",
        weights=tiny_checkpoint,
        captioner_factory=cpu_captioner,
    )


@pytest.fixture
def make_window(qtbot, env: AppEnvironment, prompts: FakePrompts) -> Iterator[Callable]:
    windows: list[MainWindow] = []

    def make(**changes) -> MainWindow:
        window = MainWindow(replace(env, **changes), prompts)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.shutdown()


@pytest.fixture
def window(make_window) -> MainWindow:
    return make_window()


def open_and_wait(qtbot, window: MainWindow, folder: Path, timeout: int = 30_000) -> None:
    """Open ``folder`` and wait until every photo's stored caption has been looked up.

    The look-ups may first start a reader process (core.isolation): on a busy one-core
    machine that alone can take seconds, hence the generous default.
    """
    window.open_folder(folder)
    qtbot.waitUntil(
        lambda: window.photos.rowCount() > 0 and all(p.loaded for p in window.photos.photos()),
        timeout=timeout,
    )


def wait_idle(qtbot, window: MainWindow, timeout: int = 60_000) -> None:
    """Wait until every batch asked for has finished and every queued write has been reported.

    Batches are counted (when asked for, and when the inference thread has stopped) rather
    than judged by ``batches.running``, which is also False before a batch has begun.
    """
    session = window.session
    batches = session.batches
    qtbot.waitUntil(
        lambda: (
            batches.batches_finished == batches.batches_started
            and not batches.running
            and session.writer.pending == 0
            and not any(p.saving or p.working for p in window.photos.photos())
        ),
        timeout=timeout,
    )


def copy_photos(source: Path, target: Path, count: int) -> list[Path]:
    """``count`` photos in ``target``: copies of the JPEGs in ``source`` (hard links if it can)."""
    target.mkdir(parents=True, exist_ok=True)
    originals = sorted(source.glob("*.jpg"))
    made = []
    for i in range(count):
        out = target / f"img{i:05d}.jpg"
        try:
            out.hardlink_to(originals[i % len(originals)])
        except OSError:
            shutil.copy(originals[i % len(originals)], out)
        made.append(out)
    return made
