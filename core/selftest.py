"""`photoscribe --self-test`: checks, without a display, that an installation works end to end."""

from __future__ import annotations

import importlib
import logging
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

import core
from core.datatypes import CaptionSettings, default_weights_path
from core.errors import PhotoScribeError

if TYPE_CHECKING:
    from core.inference import Captioner

# Torch, the image libraries and exiv2 are imported by the checks, not at the top: a library
# missing from a broken bundle is then reported as a failed check instead of a traceback.
LIBRARIES = ("numpy", "PIL", "torch", "safetensors", "pi_heif", "exiv2")
# Only a CUDA build of torch needs torchvision (nvJPEG decodes JPEGs on the GPU); the CPU build
# of the app leaves it out.
CUDA_LIBRARIES = ("torchvision",)

log = logging.getLogger(__name__)

# The folder that holds the `core` package: the packaged app's `_internal` folder (PyInstaller),
# the source tree, or site-packages. The packaged app keeps its test photos in "selftest" there
# (packaging/photoscribe.spec puts them); other photo folders are named by the caller (the
# app's entry point passes its sample photos), since core never looks into desktop or tests.
APP_ROOT = Path(core.__file__).resolve().parent.parent
PACKAGED_DIR = APP_ROOT / "selftest"
PLACEHOLDER_MARK = "PLACEHOLDER"  # packaging/placeholder_weights.py puts it in the provenance

T = TypeVar("T")


class SelfTestFailed(Exception):
    """A check failed; the message says what went wrong and, where it can, what to do."""


@dataclass(frozen=True)
class SelfTestPhotos:
    photo: Path  # a JPEG to caption, and to write a caption into (a copy of it)
    heic: Path | None  # a HEIC photo to decode; None: only the HEIF decoder is looked for


def is_frozen() -> bool:
    """True inside the packaged (PyInstaller) app."""
    return bool(getattr(sys, "frozen", False))


def find_test_photos(frozen: bool, folders: Sequence[Path] = ()) -> SelfTestPhotos:
    """A JPEG and (if there is one) a HEIC photo to test with, from ``folders`` and, in the
    packaged app, its own test photos; the packaged app must carry both."""
    places = [*folders, PACKAGED_DIR]
    jpegs = [p for folder in places if folder.is_dir() for p in sorted(folder.glob("*.jpg"))]
    heics = [p for folder in places if folder.is_dir() for p in sorted(folder.glob("*.heic"))]
    looked = ", ".join(str(folder) for folder in places)
    if frozen and not heics:
        raise SelfTestFailed(f"the app carries no HEIC test photo (looked in {looked})")
    if not jpegs:
        what = "the app carries no sample photos" if frozen else "no photo to test with"
        raise SelfTestFailed(f"{what} (looked in {looked})")
    return SelfTestPhotos(jpegs[0], heics[0] if heics else None)


def check_program(frozen: bool) -> str:
    """Versions, and (packaged) that the code runs from the bundle, not from a source tree."""
    if frozen:
        bundle = Path(getattr(sys, "_MEIPASS", APP_ROOT)).resolve()
        if not Path(core.__file__).resolve().is_relative_to(bundle):
            raise SelfTestFailed(f"core was loaded from {core.__file__}, outside the app {bundle}")
    return f"PhotoScribe {core.__version__}, Python {platform.python_version()}, " + (
        f"{platform.system()} {platform.machine()}"
    )


def check_libraries() -> str:
    """Every library the app needs imports (in a bundle: was packed and finds its own files)."""
    versions = {}
    for name in LIBRARIES:
        module = importlib.import_module(name)
        versions[name] = getattr(module, "__version__", "?")
    import torch  # loaded just above; named here for its build details

    for name in CUDA_LIBRARIES if torch.version.cuda else ():
        module = importlib.import_module(name)
        versions[name] = getattr(module, "__version__", "?")
    cuda = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    listed = ", ".join(f"{name} {version}" for name, version in versions.items())
    return f"{listed} (torch: {cuda})"


def check_heic(heic: Path | None) -> str:
    """pi-heif's libheif is loaded and has an HEVC decoder; the HEIC photo decodes."""
    import pi_heif

    from core.images import open_image

    info = pi_heif.libheif_info()
    decoders = info.get("decoders", {})
    if not decoders:
        raise SelfTestFailed(f"libheif {info.get('libheif')} has no HEIC decoder")
    if heic is None:
        return f"libheif {info.get('libheif')} with {', '.join(decoders)} (no HEIC photo here)"
    image = open_image(heic, draft_size=None)
    return f"decoded {heic.name} ({image.width}x{image.height}) with libheif {info.get('libheif')}"


def load_model(weights: Path | None, device: str) -> tuple[str, Captioner]:
    from core.inference import Captioner

    path = weights if weights is not None else default_weights_path()
    t = time.perf_counter()
    captioner = Captioner(weights, device=device)
    detail = (
        f"{path} ({path.stat().st_size / 1e6:.1f} MB) on {captioner.device_name}, "
        f"precision {captioner.precision}, "
        f"loaded in {time.perf_counter() - t:.1f} s"
    )
    if PLACEHOLDER_MARK in str(captioner.checkpoint.provenance.get("data", "")):
        detail += "; WARNING: placeholder weights, not the trained model"
    return detail, captioner


def caption_photo(captioner: Captioner, photo: Path) -> tuple[str, str]:
    t = time.perf_counter()
    result = captioner.caption_file(photo, CaptionSettings(beam_size=3, batch_size=1))
    if not result.ok:
        raise SelfTestFailed(f"{photo.name} could not be captioned: {result.error}")
    if not result.caption:
        raise SelfTestFailed(f"the model made an empty caption for {photo.name}")
    return f'{photo.name}: "{result.caption}" in {time.perf_counter() - t:.1f} s', result.caption


def write_and_read_back(photo: Path, caption: str, folder: Path) -> str:
    """Store the caption inside a copy of the photo (exiv2) and in an XMP sidecar; read both."""
    from core.storage import EmbeddedStore, FileIdentity, XmpSidecarStore
    from core.storage.pixels import image_data_digest

    copy = folder / photo.name
    shutil.copyfile(photo, copy)
    before = copy.read_bytes()
    embedded = EmbeddedStore()
    embedded.write(copy, caption, expected=FileIdentity.of(copy))
    stored = embedded.read(copy)
    if stored != caption:
        raise SelfTestFailed(f"wrote {caption!r} into {copy.name} but read back {stored!r}")
    if image_data_digest(copy.read_bytes(), "jpeg") != image_data_digest(before, "jpeg"):
        raise SelfTestFailed(f"writing the caption changed the image data of {copy.name}")
    sidecar = XmpSidecarStore()
    written = sidecar.write(copy, caption)
    if sidecar.read(copy) != caption:
        raise SelfTestFailed(f"the caption in {written.path.name} did not read back")
    left = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if left != sorted([copy.name, written.path.name]):
        raise SelfTestFailed(f"unexpected files left after writing: {left}")
    return f"inside a copy of {photo.name} and in {written.path.name}; image data unchanged"


class _Report:
    """Prints one line per check: "ok" with what was found, or "FAIL" with why."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def line(self, text: str) -> None:
        self.out.write(text.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
        self.out.flush()

    def step(self, name: str, check: Callable[[], tuple[str, T]]) -> T:
        try:
            detail, value = check()
        except SelfTestFailed as exc:
            self.line(f"FAIL {name}: {exc}")
            raise
        except PhotoScribeError as exc:
            self.line(f"FAIL {name}: {exc}")
            raise SelfTestFailed(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - a broken bundle shows up as any error at all
            self.line(f"FAIL {name}: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            raise SelfTestFailed(f"{name}: {type(exc).__name__}: {exc}") from exc
        self.line(f"ok   {name}: {detail}")
        return value


def run_self_test(
    weights: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    frozen: bool | None = None,
    device: str = "auto",
    photo_folders: Sequence[Path] = (),
) -> int:
    """Run every check; 0 when all pass, 1 (with the reason on ``err``) when one fails.

    ``weights`` None tests the model shipped with the app, as a user's installation would use.
    ``photo_folders`` are where to find photos to test with (the app's sample photos).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    frozen = is_frozen() if frozen is None else frozen
    report = _Report(out)
    where = "packaged app" if frozen else "from source"
    report.line(f"PhotoScribe {core.__version__} self-test ({where}, {APP_ROOT})")
    t0 = time.perf_counter()
    try:
        report.step("program", lambda: (check_program(frozen), None))
        report.step("libraries", lambda: (check_libraries(), None))
        photos = report.step("photos", lambda: _found(find_test_photos(frozen, photo_folders)))
        report.step("devices", lambda: (", ".join(_devices()), None))
        captioner = report.step("model", lambda: load_model(weights, device))
        caption = report.step("caption", lambda: caption_photo(captioner, photos.photo))
        report.step("HEIC", lambda: (check_heic(photos.heic), None))
        with tempfile.TemporaryDirectory(prefix="photoscribe-selftest-") as folder:
            report.step(
                "save", lambda: (write_and_read_back(photos.photo, caption, Path(folder)), None)
            )
    except SelfTestFailed as exc:
        err.write(f"photoscribe: self-test failed: {exc}\n")
        err.flush()
        return 1
    report.line(f"self-test passed in {time.perf_counter() - t0:.1f} s")
    return 0


def _devices() -> list[str]:
    from core.devices import available_devices

    return available_devices()


def _found(photos: SelfTestPhotos) -> tuple[str, SelfTestPhotos]:
    heic = photos.heic.name if photos.heic else "none"
    return f"{photos.photo} (HEIC: {heic})", photos
