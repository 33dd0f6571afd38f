"""What the packaged app carries and what it leaves out; read by photoscribe.spec and check_bundle.py.

Paths are relative to the bundle's contents folder (`_internal/` on Linux and Windows), with
forward slashes; patterns are fnmatch patterns over those paths.
"""

from __future__ import annotations

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
)  # fmt: skip

# Qt plugins for embedded and remote displays and their libraries, never used by a desktop app;
# Qt's translations (the app is in English and loads none); and the GTK platform theme with the
# GTK stack only it needs: it would load the user's GTK against the bundle's older GLib, so Qt
# uses the xdg-desktop-portal theme and its own style instead.
BINARY_EXCLUDES = (
    "libqvnc*", "libqlinuxfb*", "libqeglfs*", "libqminimalegl*", "libqvkkhrdisplay*",
    "libQt6EglFs*", "libQt6EglFSDeviceIntegration*",
    "*/Qt/plugins/egldeviceintegrations/*", "*/Qt/plugins/generic/*", "*/Qt/translations/*",
    "libqgtk3.so", "libpango-1.0.so*", "libpangocairo-1.0.so*", "libpangoft2-1.0.so*",
    "libcairo.so*", "libcairo-gobject.so*", "libgdk_pixbuf-2.0.so*", "libatk-1.0.so*",
    "libpixman-1.so*", "libthai.so*", "libdatrie.so*", "libfribidi.so*", "libgraphite2.so*",
    "libharfbuzz.so.0", "libXrender.so*", "libXext.so*", "libgio-2.0.so*", "libmount.so*",
    "libblkid.so*", "libselinux.so.1", "libjpeg.so.62",
)  # fmt: skip

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
    "torchvision's operators": ("torchvision/_C*.so", "torchvision/_C*.pyd"),
}  # fmt: skip

# Parts of the bundle that must never be there (beyond CUDA_LIBRARIES on a CPU build).
FORBIDDEN = (
    "torch/include/*", "*.h", "*.hpp", "*.cuh", "*.a", "*.cmake",
    "triton/*", "matplotlib/*", "scipy/*", "skimage/*", "pycocotools/*", "training/*", "tests/*",
    "*/Qt/lib/libQt6WebEngine*", "*/Qt/lib/libQt6Quick*", "*/Qt/lib/libQt6Qml*",
    "*/Qt/lib/libQt63D*", "*/Qt/lib/libQt6Multimedia*", "*/Qt/qml/*", "*/Qt/resources/qtwebengine*",
    "*/Qt/translations/*", "*/platformthemes/libqgtk3.so",
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


def module_is_forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN_MODULES)
