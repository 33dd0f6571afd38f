"""Before Qt starts: can this computer show the app's window, and if not, what to do about it.

Qt's own messages for these cases are a crash (exit 134) that blames the wrong library and
suggests reinstalling; these checks say in one line what is wrong and what helps. They import
no Qt: a Qt that cannot start must not be loaded to find that out.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

EXIT_NO_DISPLAY = 2  # a usage error: the app was started where it cannot be shown
EXIT_MISSING_LIBRARY = 1

# The system libraries Qt's X11 (xcb) plugin loads, and the Debian/Ubuntu package of each.
XCB_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}


@dataclass(frozen=True)
class StartProblem:
    """Why the window cannot be shown: one line for the terminal, and the exit status."""

    message: str
    exit_code: int


def uses_x11(environ: Mapping[str, str], platform: str | None = None) -> bool:
    """Whether Qt will show windows through X11 (its xcb plugin) here."""
    if not (platform or sys.platform).startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return False  # Windows and macOS have their own window systems
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(";")[0].split(":")[0] == "xcb"
    return not environ.get("WAYLAND_DISPLAY")


def no_display(environ: Mapping[str, str], platform: str | None = None) -> StartProblem | None:
    """A problem when there is no graphical desktop to show the window on."""
    if not (platform or sys.platform).startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen and chosen.split(";")[0].split(":")[0] not in ("xcb", "wayland"):
        return None  # offscreen, vnc, eglfs: the user chose where windows go
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return StartProblem(
        "photoscribe: the app needs a graphical desktop and there is none here (no DISPLAY); "
        "`photoscribe caption PHOTO...` captions photos without one (see `photoscribe --help`).",
        EXIT_NO_DISPLAY,
    )


def xcb_plugin() -> Path | None:
    """Qt's X11 plugin in the installed PySide6, found without loading Qt."""
    try:
        import PySide6  # the package only: its __init__ loads no Qt library
    except ImportError:
        return None
    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def run_ldd(library: Path) -> str | None:
    """``ldd``'s report on ``library``; None when there is no ldd to ask."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        done = subprocess.run(
            [ldd, str(library)], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        log.info("Could not run ldd on %s: %s", library, error)
        return None
    return done.stdout


def can_load(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_libraries(
    plugin: Path,
    ldd: Callable[[Path], str | None] = run_ldd,
    loadable: Callable[[str], bool] = can_load,
) -> list[str]:
    """The libraries ``plugin`` needs that the system lacks, by ldd, else by trying each."""
    report = ldd(plugin)
    if report is not None:
        return [line.split("=>")[0].strip() for line in report.splitlines() if "not found" in line]
    return [name for name in XCB_PACKAGES if not loadable(name)]


def missing_library_problem(missing: list[str], has_apt: bool | None = None) -> StartProblem:
    if has_apt is None:
        has_apt = shutil.which("apt-get") is not None
    packages = sorted({XCB_PACKAGES[name] for name in missing if name in XCB_PACKAGES})
    libraries = ", ".join(missing)
    if packages and has_apt:
        advice = f"install it with: sudo apt-get install {' '.join(packages)}"
    elif packages:
        advice = f"install your system's package of it (on Debian or Ubuntu: {' '.join(packages)})"
    else:
        advice = "install your system's package that provides it"
    return StartProblem(
        f"photoscribe: Qt cannot open windows because a system library is missing ({libraries}); "
        f"{advice}",
        EXIT_MISSING_LIBRARY,
    )


def start_problem(environ: Mapping[str, str] | None = None) -> StartProblem | None:
    """Why the app's window cannot be shown here, or None when it can (as far as we can tell)."""
    environ = os.environ if environ is None else environ
    problem = no_display(environ)
    if problem is not None or not uses_x11(environ):
        return problem
    plugin = xcb_plugin()
    if plugin is None:
        return None
    missing = missing_libraries(plugin)
    return missing_library_problem(missing) if missing else None
