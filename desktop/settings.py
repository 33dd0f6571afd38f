"""The app's settings, declared once with types and defaults, kept in QSettings between runs."""

from __future__ import annotations

import logging
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal, get_args, get_origin

from PySide6.QtCore import QByteArray, QObject, QSettings, Signal

from core.datatypes import CHECK_BELOW, CaptionSettings, DeviceChoice, Precision, default_precision
from core.storage.base import StoreKind, XmpName

log = logging.getLogger(__name__)

ORGANIZATION = "PhotoScribe"
APPLICATION = "PhotoScribe"

MAX_BEAM = 10
MAX_BATCH = 128
MAX_CANDIDATES = 5


@dataclass(frozen=True, kw_only=True)
class AppSettings:
    """What the user chose in Settings and the menus; window geometry is kept apart."""

    store: StoreKind = "txt"  # where new captions are saved: text sidecar, XMP sidecar, embedded
    xmp_name: XmpName = "photo.jpg.xmp"  # XMP sidecar naming: darktable/digiKam or Lightroom
    overwrite: bool = False  # generated captions may replace captions already stored
    autosave: bool = True  # save generated captions as they arrive (else they wait for review)
    recaption: bool = False  # also caption photos that already have a caption
    recursive: bool = False  # show and caption the photos in subfolders too
    device: DeviceChoice = "auto"  # where the model runs
    # The image encoder's arithmetic: "fp32" (the same captions on every computer) unless
    # $PHOTOSCRIBE_PRECISION says otherwise; "auto" and "bf16" are faster on some CPUs.
    precision: Precision = field(default_factory=lambda: _default_precision())
    beam_size: int = 3  # 1 = greedy decoding; larger is slower and usually a little better
    batch_size: int = CaptionSettings().batch_size  # photos per step (see CaptionSettings)
    n_candidates: int = 3  # alternative captions offered per photo
    weights: str = ""  # model file; empty = the model shipped with PhotoScribe
    ask_before_writing_into_photos: bool = True  # the first write into photo files asks first
    # Generated captions the model is less sure of than this (a confidence from 0 to 1) are
    # marked "check this"; 0 marks none.
    review_below: float = CHECK_BELOW

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = _choices(f.name)
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(choices)}")
        if not 1 <= self.beam_size <= MAX_BEAM:
            raise ValueError(f"beam size must be between 1 and {MAX_BEAM}")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batch size must be between 1 and {MAX_BATCH}")
        if not 1 <= self.n_candidates <= MAX_CANDIDATES:
            raise ValueError(f"the number of candidates must be between 1 and {MAX_CANDIDATES}")
        if not 0.0 <= self.review_below <= 1.0:  # also refuses nan
            raise ValueError("the confidence below which captions are marked must be 0 to 1")

    def with_changes(self, **changes: object) -> AppSettings:
        return replace(self, **changes)


def _default_precision() -> Precision:
    try:
        return default_precision()
    except ValueError as error:  # a mistyped $PHOTOSCRIBE_PRECISION must not stop the app
        log.warning("%s; using fp32", error)
        return "fp32"


_HINTS = typing.get_type_hints(AppSettings)


def _choices(name: str) -> tuple[str, ...]:
    hint = _HINTS[name]
    return get_args(hint) if get_origin(hint) is Literal else ()


def _coerce(name: str, raw: object) -> object:
    """A stored value as the field's type; ValueError when it cannot be one."""
    hint = _HINTS[name]
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(f"not a yes/no value: {raw!r}")
    if hint is int:
        if isinstance(raw, bool):
            raise ValueError(f"not a number: {raw!r}")
        return int(str(raw).strip())
    if hint is float:
        if isinstance(raw, bool):
            raise ValueError(f"not a number: {raw!r}")
        return float(str(raw).strip())
    return str(raw)


@dataclass(frozen=True)
class WindowState:
    """Where the window was and how its panels were arranged; not a user choice."""

    geometry: QByteArray | None = None
    state: QByteArray | None = None
    splitter: QByteArray | None = None


class SettingsStore:
    """Loads and saves AppSettings, the window state and the last folder.

    ``path`` selects an INI file (tests, portable installs); without it the platform's usual
    place for the PhotoScribe organisation and application is used. A value that cannot be
    read falls back to its default and is logged; nothing is ever wiped.
    """

    def __init__(self, path: Path | None = None) -> None:
        if path is not None:
            self._qs = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self._qs = QSettings(
                QSettings.Format.IniFormat,
                QSettings.Scope.UserScope,
                ORGANIZATION,
                APPLICATION,
            )

    @property
    def location(self) -> str:
        return self._qs.fileName()

    def load(self) -> AppSettings:
        values: dict[str, object] = {}
        defaults = AppSettings()
        for f in fields(AppSettings):
            key = f"settings/{f.name}"
            if not self._qs.contains(key):
                continue
            raw = self._qs.value(key)
            try:
                value = _coerce(f.name, raw)
                replace(defaults, **{f.name: value})  # validates this one value
            except (ValueError, TypeError) as error:
                log.warning("Ignoring the stored setting %s=%r: %s", f.name, raw, error)
                continue
            values[f.name] = value
        return AppSettings(**values)

    def save(self, settings: AppSettings) -> None:
        for f in fields(settings):
            self._qs.setValue(f"settings/{f.name}", getattr(settings, f.name))
        self._qs.sync()

    def load_window_state(self) -> WindowState:
        def raw(key: str) -> QByteArray | None:
            value = self._qs.value(f"window/{key}")
            return value if isinstance(value, QByteArray) and not value.isEmpty() else None

        return WindowState(raw("geometry"), raw("state"), raw("splitter"))

    def save_window_state(self, state: WindowState) -> None:
        for key in ("geometry", "state", "splitter"):
            value = getattr(state, key)
            if value is not None:
                self._qs.setValue(f"window/{key}", value)
        self._qs.sync()

    @property
    def last_folder(self) -> Path | None:
        value = self._qs.value("window/last_folder")
        return Path(str(value)) if value else None

    @last_folder.setter
    def last_folder(self, folder: Path | None) -> None:
        self._qs.setValue("window/last_folder", str(folder) if folder else "")
        self._qs.sync()

    @property
    def folder_open_at_exit(self) -> Path | None:
        """The folder open when PhotoScribe last ended without closing properly, else None.

        Set when a folder opens, cleared at a clean quit: still set at start-up means the last
        session crashed (or was killed) while that folder was open.
        """
        value = self._qs.value("session/open_folder")
        return Path(str(value)) if value else None

    @folder_open_at_exit.setter
    def folder_open_at_exit(self, folder: Path | None) -> None:
        self._qs.setValue("session/open_folder", str(folder) if folder else "")
        self._qs.sync()  # on disk now: it is there for the start after a crash


class Settings(QObject):
    """The user's settings as one live object, the only holder of them in the app.

    ``current`` is the frozen AppSettings in force; ``update`` replaces it, saves it and sends
    ``changed`` to every part of the app that depends on a setting (the "check this"
    threshold of the photo list and the caption panel, the menus' check marks, the model
    status). Whatever reads a setting at the moment it acts (saving, captioning) reads
    ``current``, so no copy is ever out of date.
    """

    changed = Signal(object)  # AppSettings: the new value, already saved

    def __init__(self, store: SettingsStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._current = store.load()

    @property
    def current(self) -> AppSettings:
        return self._current

    def update(self, new: AppSettings) -> None:
        """Make ``new`` the settings in force, save them and tell every holder."""
        if new == self._current:
            return
        self._current = new
        self.store.save(new)
        self.changed.emit(new)

    def change(self, **changes: object) -> None:
        """Change some fields (``change(recursive=True)``)."""
        self.update(self._current.with_changes(**changes))
