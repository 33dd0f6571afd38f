"""What the packaged app carries and what it leaves out; read by photoscribe.spec and check_bundle.py.

Paths are relative to the bundle's contents folder (`_internal/` on Linux and Windows), with
forward slashes; patterns are fnmatch patterns over those paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch

# The Qt modules the app imports; every other PySide6 module stays out of the bundle.
QT_MODULES_USED = ("QtCore", "QtGui", "QtWidgets")

# Qt modules left out even when PySide6 (the full wheel, not Essentials) has them installed.
QT_MODULES_UNUSED = (
    "Qt3DAnimation", "Qt3DCore", "Qt3DExtras", "Qt3DInput", "Qt3DLogic", "Qt3DRender",
    "QtBluetooth", "QtCharts", "QtConcurrent", "QtDataVisualization", "QtDBus", "QtDesigner",
    "QtGraphs", "QtGraphsWidgets", "QtHelp", "QtHttpServer", "QtLocation", "QtMultimedia",
    "QtMultimediaWidgets", "QtNetwork", "QtNetworkAuth", "QtNfc", "QtOpenGL", "QtOpenGLWidgets",
    "QtPdf", "QtPdfWidgets", "QtPositioning", "QtPrintSupport", "QtQml", "QtQuick", "QtQuick3D",
    "QtQuickControls2", "QtQuickTest", "QtQuickWidgets", "QtRemoteObjects", "QtScxml",
    "QtSensors", "QtSerialBus", "QtSerialPort", "QtSpatialAudio", "QtSql", "QtStateMachine",
    "QtSvg", "QtSvgWidgets", "QtTest", "QtTextToSpeech", "QtUiTools", "QtWebChannel",
    "QtWebEngineCore", "QtWebEngineQuick", "QtWebEngineWidgets", "QtWebSockets", "QtWebView",
    "QtXml",
)  # fmt: skip

# Python packages the app never imports at run time: training, tests, build tools, and the
# optional extras of torch that plain inference does not need (triton only serves
# torch.compile; a CPU build of torch has none of it either).
PYTHON_EXCLUDES = (
    "training", "tests", "setuptools", "pkg_resources",
    "matplotlib", "pycocoevalcap", "pycocotools", "skimage", "scipy", "pandas", "tensorboard",
    "triton", "torch.utils.tensorboard", "torch.testing._internal.opinfo",
    "pytest", "_pytest", "pytestqt", "pluggy", "ruff", "importlinter", "grimp",
    "PyInstaller", "pyinstaller_hooks_contrib", "_pyinstaller_hooks_contrib",
    "IPython", "jupyter_client", "notebook", "tkinter", "_tkinter",
)  # fmt: skip

# Collected files that no user needs: headers, static libraries, build files, tests, stubs.
DATA_EXCLUDES = (
    "*.h", "*.hpp", "*.cuh", "*.inl", "*.a", "*.lib", "*.cmake", "*.pyi", "*.pc",
    "*/include/*", "*/cmake/*", "*/pkgconfig/*", "*/__pycache__/*",
    "*/tests/*", "*/test/*", "torch/share/*", "torch/bin/protoc*",
    # torch's own C++ test programs and test libraries (torch_shm_manager, its one helper
    # program, stays).
    "torch/bin/test_*", "torch/bin/*Test", "torch/bin/*.pt", "torch/bin/*.ptl",
    "torch/bin/upgrader_models/*", "libtorchbind_test.so", "libjitbackend_test.so",
    "libbackend_with_compiler.so", "libaoti_custom_ops.so",
)  # fmt: skip

# Left out of a bundle built over a CPU torch: torchvision only decodes JPEGs on an NVIDIA GPU
# (nvJPEG), which a CPU build never uses, so it stays out even when the venv has it.
CPU_PYTHON_EXCLUDES = ("torchvision",)

# Qt plugins for embedded and remote displays and their libraries, never used by a desktop app;
# Qt's translations (the app is in English and loads none); and the GTK platform theme: it would
# load the user's GTK into the app, so Qt uses the xdg-desktop-portal theme and its own style.
# What only these plugins linked (GTK, Pango, Cairo, ...) drops out with them: the spec keeps a
# library from the build machine only while a kept file needs it (see photoscribe.spec).
BINARY_EXCLUDES = (
    "libqvnc*", "libqlinuxfb*", "libqeglfs*", "libqminimalegl*", "libqvkkhrdisplay*",
    "libQt6EglFs*", "libQt6EglFSDeviceIntegration*",
    "*/Qt/plugins/egldeviceintegrations/*", "*/Qt/plugins/generic/*", "*/Qt/translations/*",
    "libqgtk3.so",
)  # fmt: skip


@dataclass(frozen=True)
class SystemLibraries:
    """Libraries the bundle leaves to the user's system on purpose, and why."""

    what: str
    sonames: tuple[str, ...]  # fnmatch patterns over DT_NEEDED names
    debian: tuple[str, ...]  # the Debian/Ubuntu packages that provide them
    why: str


# The written list: everything else that a bundled file links is bundled (check_bundle.py fails
# otherwise). Each entry is on every Linux desktop, X11 or Wayland, GNOME, KDE, Xfce or other,
# and is better taken from the system than from the build machine. packaging/test_fresh_system.sh
# installs exactly these packages (and an X server) into a bare Debian to prove the bundle needs
# nothing more; the README's "Install and uninstall" names them.
SYSTEM_LIBRARIES = (
    SystemLibraries(
        "glibc",
        ("libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
         "libresolv.so.2", "libanl.so.1", "ld-linux-*.so.*", "libcrypt.so.1"),
        ("libc6", "libcrypt1"),
        "The C library and its loader belong to the system and must match each other and the "
        "kernel; no program can bring its own. The bundle's wheels need glibc 2.28 or newer "
        "(manylinux_2_28); check_bundle.py reports the newest symbol version any file needs.",
    ),
    SystemLibraries(
        "the GCC runtime",
        ("libstdc++.so.6", "libgcc_s.so.1"),
        ("libstdc++6", "libgcc-s1"),
        "Part of every base system (apt, systemd and Mesa link it). A bundled copy from an older "
        "build machine would be found first by the system's graphics driver too (Mesa's LLVM needs "
        "the newest one) and break it; the system's copy is always the newest there is.",
    ),
    SystemLibraries(
        "OpenGL and EGL (libglvnd) and the kernel graphics interface",
        ("libGL.so.1", "libEGL.so.1", "libGLX.so.0", "libGLdispatch.so.0", "libOpenGL.so.0",
         "libdrm.so.2"),
        ("libgl1", "libegl1", "libglx0", "libglvnd0", "libopengl0", "libdrm2"),
        "They dispatch to the installed graphics driver (Mesa or NVIDIA) and must match it and "
        "the kernel; a bundled copy breaks hardware acceleration. Every desktop has them.",
    ),
    SystemLibraries(
        "the X11 core client libraries",
        ("libX11.so.6", "libX11-xcb.so.1", "libxcb.so.1"),
        ("libx11-6", "libx11-xcb1", "libxcb1"),
        "Every X11 program, the graphics driver and the X server's own tools use them; two "
        "copies of libxcb in one process (ours and Mesa's) corrupt the connection. Present on "
        "Wayland desktops too (XWayland). The xcb extension and xcb-util libraries Qt needs "
        "besides (libxcb-cursor, -icccm, -keysyms, ...) are bundled: many installs lack them.",
    ),
    SystemLibraries(
        "the keyboard-layout library",
        ("libxkbcommon.so.0", "libxkbcommon-x11.so.0"),
        ("libxkbcommon0", "libxkbcommon-x11-0"),
        "It reads the system's keyboard layouts (/usr/share/X11/xkb), which follow its version; "
        "the X11 half shares internal structures with the main library, so both come from one "
        "place. Every Wayland compositor and X11 desktop (GTK, Qt, the window manager) links them.",
    ),
    SystemLibraries(
        "fonts",
        ("libfontconfig.so.1", "libfreetype.so.6"),
        ("libfontconfig1", "libfreetype6"),
        "Fontconfig reads the system's font configuration (/etc/fonts), whose format follows the "
        "system's fontconfig; with them Qt finds and renders the user's own fonts.",
    ),
    SystemLibraries(
        "D-Bus",
        ("libdbus-1.so.3",),
        ("libdbus-1-3",),
        "The client library of the desktop's message bus (accessibility, the desktop portal, "
        "input methods); every desktop runs D-Bus and has it.",
    ),
    SystemLibraries(
        "GLib",
        ("libglib-2.0.so.0", "libgthread-2.0.so.0"),
        ("libglib2.0-0",),
        "Qt's event loop runs on it. Every desktop has it (GNOME and GTK are built on it, Qt "
        "and KDE link it), and modules the desktop loads into programs expect the system's "
        "copy; its ABI has been stable since 2.0, so the system's copy always serves.",
    ),
    SystemLibraries(
        "the Wayland client libraries",
        ("libwayland-client.so.0", "libwayland-cursor.so.0", "libwayland-egl.so.1"),
        ("libwayland-client0", "libwayland-cursor0", "libwayland-egl1"),
        "Only Qt's Wayland plugin loads them, on a Wayland desktop, which always has them (the "
        "compositor and the graphics driver's EGL use the same ones). On an X11 desktop Qt uses "
        "its X11 plugin and never loads them.",
    ),
    SystemLibraries(
        "the NVIDIA driver",
        ("libcuda.so.1", "libnvidia-ml.so.1"),
        (),
        "Only on a machine with an NVIDIA GPU, where the driver installs it: it must match the "
        "kernel module. torch loads it when it looks for a GPU and runs on the CPU without it.",
    ),
)  # fmt: skip

# Libraries from the build machine that the bundle carries: what Qt's X11 plugin, its GLX
# integration and Python's own modules link beyond the list above, with the Debian package that
# provides each. build.sh installs the missing ones (or names them) before PyInstaller runs;
# check_bundle.py fails when a library is neither bundled nor on the list, naming its package.
BUILD_MACHINE_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
}


def system_library(soname: str) -> SystemLibraries | None:
    """The entry of SYSTEM_LIBRARIES that leaves ``soname`` to the user's system, if any."""
    for entry in SYSTEM_LIBRARIES:
        if any(fnmatch(soname, p) for p in entry.sonames):
            return entry
    return None


def system_packages() -> list[str]:
    """The Debian packages of the written list, in its order."""
    return [pkg for entry in SYSTEM_LIBRARIES for pkg in entry.debian]


# Libraries of a CUDA torch that are loaded with dlopen, so that PyInstaller's dependency
# analysis does not see them: every installed one must be bundled.
CUDA_DLOPENED = ("libnvrtc-builtins.so.*", "libcudnn_*.so.*")

# The files of a CUDA build of torch; a bundle built over a CPU torch has none of them.
CUDA_LIBRARIES = (
    "libcudart.so*", "libcublas*.so*", "libcudnn*.so*", "libcufft*.so*", "libcurand.so*",
    "libcusolver*.so*", "libcusparse*.so*", "libnccl.so*", "libnvrtc*.so*", "libnvJitLink.so*",
    "libnvshmem*.so*", "libcufile*.so*", "libcupti.so*", "libtorch_cuda*.so", "libc10_cuda.so",
    "cudart64_*.dll", "cublas*64_*.dll", "cudnn*64_*.dll", "cufft*64_*.dll", "curand64_*.dll",
    "cusolver*64_*.dll", "cusparse64_*.dll", "nvrtc64_*.dll", "torch_cuda.dll", "c10_cuda.dll",
)  # fmt: skip

# What the app cannot work without; each pattern must match at least one file in the bundle.
REQUIRED = {
    "the shipped model": ("core/weights/photoscribe-b0.safetensors",),
    "the app icon": ("desktop/resources/photoscribe.svg",),
    "the sample photos": ("desktop/resources/samples/*.jpg",),
    "the sample photos' licences": ("desktop/resources/samples/README.md",),
    "the HEIC test photo": ("selftest/astronaut.heic",),
    "Qt's X11 platform plugin": ("*/plugins/platforms/libqxcb.so", "*/plugins/platforms/*.dll",
                                 "*/plugins/platforms/libqcocoa.dylib"),
    "Qt's Wayland platform plugin": ("*/plugins/platforms/libqwayland*.so",
                                     "*/plugins/platforms/*.dll",
                                     "*/plugins/platforms/libqcocoa.dylib"),
    "Qt's offscreen platform plugin": ("*/plugins/platforms/libqoffscreen*",
                                       "*/plugins/platforms/qoffscreen*"),
    "Qt's SVG icon engine": ("*/plugins/iconengines/*qsvgicon*",),
    "libexiv2 (from the exiv2 package)": ("exiv2.libs/libexiv2*", "exiv2/lib/exiv2*.dll",
                                          "exiv2/.dylibs/libexiv2*", "libexiv2*"),
    "libheif (from pi-heif)": ("pi_heif.libs/libheif*", "pi_heif/.dylibs/libheif*",
                               "pi_heif.libs/heif*.dll", "libheif*"),
    "pi-heif's HEVC decoder": ("pi_heif.libs/libde265*", "pi_heif/.dylibs/libde265*",
                               "pi_heif.libs/*de265*.dll", "libde265*"),
    "torch's CPU library": ("torch/lib/libtorch_cpu*", "torch/lib/torch_cpu.dll"),
}  # fmt: skip

# What a bundle built over a CUDA torch needs besides: torchvision decodes JPEGs on the GPU.
REQUIRED_CUDA = {
    "torchvision's operators": ("torchvision/_C*.so", "torchvision/_C*.pyd"),
}

# What a bundle built over a CPU torch must not carry (beyond CUDA_LIBRARIES).
FORBIDDEN_CPU = ("torchvision/*", "torchvision.libs/*")

# Parts of the bundle that must never be there (beyond CUDA_LIBRARIES on a CPU build).
FORBIDDEN = (
    "torch/include/*", "*.h", "*.hpp", "*.cuh", "*.a", "*.cmake",
    "triton/*", "matplotlib/*", "scipy/*", "skimage/*", "pycocotools/*", "training/*", "tests/*",
    "*/Qt/lib/libQt6WebEngine*", "*/Qt/lib/libQt6Quick*", "*/Qt/lib/libQt6Qml*",
    "*/Qt/lib/libQt63D*", "*/Qt/lib/libQt6Multimedia*", "*/Qt/qml/*", "*/Qt/resources/qtwebengine*",
    "*/Qt/translations/*", "*/platformthemes/libqgtk3.so",
    "libgtk-*.so*", "libgdk-*.so*",  # GTK never goes in (see BINARY_EXCLUDES)
)  # fmt: skip

# Python modules that must not be inside the app's module archive.
FORBIDDEN_MODULES = tuple(
    name for name in PYTHON_EXCLUDES if not name.startswith("torch.")
) + tuple(f"PySide6.{name}" for name in QT_MODULES_UNUSED)


def matches(path: str, patterns: tuple[str, ...]) -> bool:
    """True when ``path`` (forward slashes) matches one of ``patterns``."""
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch(path, p) or ("/" not in p and fnmatch(name, p)) for p in patterns)


def is_cuda_library(path: str) -> bool:
    return matches(path, CUDA_LIBRARIES) or path.startswith("nvidia/")


def unused_qt_modules(installed: list[str]) -> list[str]:
    """The `PySide6.X` modules to exclude: every installed or known module the app does not use."""
    names = set(installed) | set(QT_MODULES_UNUSED)
    return sorted(f"PySide6.{n}" for n in names if n not in QT_MODULES_USED)


def module_is_forbidden(module: str, forbidden: tuple[str, ...] = FORBIDDEN_MODULES) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


def qt_packages() -> list[str]:
    """The Debian packages of what Qt's X11 window links from the system when PhotoScribe runs
    from source (the PySide6 wheels carry Qt, not these): bootstrap.sh installs the missing ones.
    The frozen bundle carries the BUILD_MACHINE_LIBRARIES ones itself."""
    not_qt = {"glibc", "the GCC runtime", "the Wayland client libraries", "the NVIDIA driver"}
    listed = [pkg for e in SYSTEM_LIBRARIES if e.what not in not_qt for pkg in e.debian]
    return listed + sorted(set(BUILD_MACHINE_LIBRARIES.values()) - set(listed))


if __name__ == "__main__":
    import sys

    # `python packaging/bundle_rules.py qt-packages|system-packages`: for shell scripts.
    lists = {"qt-packages": qt_packages, "system-packages": system_packages}
    if len(sys.argv) != 2 or sys.argv[1] not in lists:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(lists)}")
    print(" ".join(lists[sys.argv[1]]()))
