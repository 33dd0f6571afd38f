"""Where the app keeps its files and gets its model; tests point these at temporary places."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from core.datatypes import default_weights_path
from desktop.captioning import CaptionerFactory, load_captioner
from desktop.settings import APPLICATION, ORGANIZATION, AppSettings

log = logging.getLogger(__name__)

WEIGHTS_ENV = "PHOTOSCRIBE_WEIGHTS"  # a model file to use instead of the shipped one
SETTINGS_ENV = "PHOTOSCRIBE_SETTINGS"  # an INI file to keep settings in (portable use, tests)


def _cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APPLICATION, ORGANIZATION)) / "thumbnails"


def _data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APPLICATION, ORGANIZATION))


@dataclass(frozen=True, kw_only=True)
class AppEnvironment:
    settings_path: Path | None = None  # INI file; None: the platform's usual settings place
    cache_dir: Path = field(default_factory=_cache_dir)  # thumbnail cache
    data_dir: Path = field(default_factory=_data_dir)  # the copy of the sample photos
    weights: Path | None = None  # a model file that overrides the one chosen in Settings
    index_path: Path | None = None  # the library index; None: $PHOTOSCRIBE_INDEX, else user data
    captioner_factory: CaptionerFactory = load_captioner
    thumbnail_workers: int = 2
    log_file: Path | None = None  # shown in error messages

    @classmethod
    def from_environ(cls, log_file: Path | None = None) -> AppEnvironment:
        weights = os.environ.get(WEIGHTS_ENV) or None
        settings = os.environ.get(SETTINGS_ENV) or None
        return cls(
            settings_path=Path(settings) if settings else None,
            weights=Path(weights) if weights else None,
            log_file=log_file,
        )


@dataclass(frozen=True)
class Probe:
    """What the background check at start-up found."""

    devices: tuple[str, ...]  # usable compute devices, best first
    shipped_model: bool  # whether the model that ships with PhotoScribe is installed


def probe() -> Probe:
    """Run off the GUI thread: loads torch (slow the first time) to list the devices."""
    from core.devices import available_devices  # torch: never on the GUI thread

    return Probe(tuple(available_devices()), default_weights_path().is_file())


def chosen_weights(env: AppEnvironment, settings: AppSettings) -> Path | None:
    """The model file to load: the environment's override, else Settings'; None = shipped."""
    if env.weights is not None:
        return env.weights
    return Path(settings.weights).expanduser() if settings.weights else None
