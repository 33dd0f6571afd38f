"""What the bundle must and must not carry, checked on small fake bundles (no PyInstaller run)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.packaging.conftest import PACKAGING, load_script

rules = load_script("bundle_rules")
check_bundle = load_script("check_bundle")


def make_bundle(root: Path, files: list[str]) -> Path:
    bundle = root / "photoscribe"
    for rel in files:
        path = bundle / "_internal" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)
    return bundle


COMPLETE = [
    "core/weights/photoscribe-b0.safetensors",
    "desktop/resources/photoscribe.svg",
    "desktop/resources/samples/astronaut.jpg",
    "desktop/resources/samples/README.md",
    "selftest/astronaut.heic",
    "PySide6/Qt/plugins/platforms/libqxcb.so",
    "PySide6/Qt/plugins/platforms/libqwayland.so",
    "PySide6/Qt/plugins/platforms/libqoffscreen.so",
    "PySide6/Qt/plugins/iconengines/libqsvgicon.so",
    "exiv2.libs/libexiv2-1234.so.28",
    "pi_heif.libs/libheif-1234.so.1.23.0",
    "pi_heif.libs/libde265-1234.so.0.2.0",
    "torch/lib/libtorch_cpu.so",
]


def test_only_the_qt_modules_the_app_uses_are_kept() -> None:
    excluded = rules.unused_qt_modules(["QtCore", "QtGui", "QtWidgets", "QtQml", "QtSvg"])
    assert "PySide6.QtQml" in excluded and "PySide6.QtWebEngineCore" in excluded
    assert not {"PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets"} & set(excluded)


@pytest.mark.parametrize(
    ("path", "left_out"),
    [
        ("torch/include/ATen/ATen.h", True),
        ("numpy/_core/tests/test_api.py", True),
        ("torch/share/cmake/Torch/TorchConfig.cmake", True),
        ("torch/lib/libtorch_cpu.so", False),
        ("desktop/resources/samples/burger.jpg", False),
        ("PySide6/Qt/plugins/platforms/libqvnc.so", True),
        ("PySide6/Qt/plugins/platforms/libqxcb.so", False),
    ],
)
def test_left_out_files(path: str, left_out: bool) -> None:
    patterns = rules.DATA_EXCLUDES + rules.BINARY_EXCLUDES
    assert rules.matches(path, patterns) is left_out


def test_cuda_libraries_are_recognised() -> None:
    for cuda in ("nvidia/cudnn/lib/libcudnn.so.9", "torch/lib/libtorch_cuda.so", "libcudart.so.13"):
        assert rules.is_cuda_library(cuda), cuda
    for other in ("torch/lib/libtorch_cpu.so", "libc10.so", "PySide6/Qt/lib/libQt6Core.so.6"):
        assert not rules.is_cuda_library(other), other


def test_forbidden_modules() -> None:
    assert rules.module_is_forbidden("matplotlib.pyplot")
    assert rules.module_is_forbidden("training.fit")
    assert rules.module_is_forbidden("PySide6.QtQml")
    assert not rules.module_is_forbidden("torch.nn")
    assert not rules.module_is_forbidden("trainingwheels")


def test_a_complete_cpu_bundle_passes(tmp_path: Path) -> None:
    report = check_bundle.check(make_bundle(tmp_path, COMPLETE), None)
    assert report.problems == [] and report.variant == "cpu"
    assert report.total_bytes == 10 * len(COMPLETE)
    assert report.parts["core"] == 10 and report.parts["PySide6/Qt/plugins"] == 40


def test_missing_and_forbidden_parts_are_reported(tmp_path: Path) -> None:
    files = [f for f in COMPLETE if "heic" not in f and "qxcb" not in f]
    files += ["matplotlib/pyplot.py", "torch/include/c10/core.h"]
    problems = check_bundle.check(make_bundle(tmp_path, files), None).problems
    text = "\n".join(problems)
    assert "missing the HEIC test photo" in text and "missing Qt's X11 platform plugin" in text
    assert "matplotlib/pyplot.py" in text and "torch/include/c10/core.h" in text


def test_a_cpu_build_must_carry_no_cuda_library(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, COMPLETE + ["nvidia/cu13/lib/libcudart.so.13"])
    problems = check_bundle.check(bundle, None).problems
    assert any("built over a CPU torch, yet it carries CUDA" in p for p in problems)


def test_a_cpu_build_carries_no_torchvision_and_no_torch_test_programs(tmp_path: Path) -> None:
    """torchvision only decodes JPEGs on an NVIDIA GPU; torch's C++ tests serve nobody."""
    extra = ["torchvision/_C_stable.so", "torchvision.libs/libjpeg-1234.so.62"]
    problems = check_bundle.check(make_bundle(tmp_path, COMPLETE + extra), None).problems
    assert any("should be left out" in p and "torchvision/_C_stable.so" in p for p in problems)
    for path in ("torch/bin/test_jit", "torch/bin/TCPStoreTest", "torch/lib/libtorchbind_test.so"):
        assert rules.matches(path, rules.DATA_EXCLUDES), path
    assert not rules.matches("torch/bin/torch_shm_manager", rules.DATA_EXCLUDES)


def test_a_cuda_build_must_carry_the_cuda_libraries(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(check_bundle, "installed_cuda_libraries", lambda: {"libcudart.so.13"})
    problems = check_bundle.check(make_bundle(tmp_path, COMPLETE), "13.0").problems
    assert any("libtorch_cuda.so is missing" in p for p in problems)
    assert any("missing torchvision's operators" in p for p in problems)
    assert any("not bundled: ['libcudart.so.13']" in p for p in problems)
    cuda = [
        "torch/lib/libtorch_cuda.so",
        "nvidia/cu13/lib/libcudart.so.13",
        "nvidia/cu13/lib/libcublas.so.13",
        "nvidia/cudnn/lib/libcudnn.so.9",
        "torchvision/_C_stable.so",
    ]
    report = check_bundle.check(make_bundle(tmp_path / "cuda", COMPLETE + cuda), "13.0")
    assert report.problems == [] and report.variant == "cu130"


def test_the_spec_is_python_and_names_every_platform() -> None:
    source = (PACKAGING / "photoscribe.spec").read_text(encoding="utf-8")
    ast.parse(source)
    for needed in ('sys.platform == "darwin"', 'sys.platform == "win32"', "BUNDLE(", "COLLECT("):
        assert needed in source


def test_the_windows_version_resource_is_well_formed() -> None:
    text = (PACKAGING / "windows" / "version_info.txt").read_text(encoding="utf-8")
    text = text.replace("@VERSION_TUPLE@", repr((0, 1, 0, 0))).replace("@VERSION@", "0.1.0")
    seen: dict[str, list] = {}

    def record(name: str):
        return lambda *args, **kwargs: seen.setdefault(name, []).append((args, kwargs)) or name

    names = set(re.findall(r"\b([A-Z]\w+)\(", text))
    assert names <= {"VSVersionInfo", "FixedFileInfo", "StringFileInfo", "StringTable",
                     "StringStruct", "VarFileInfo", "VarStruct"}  # fmt: skip
    eval(compile(text, "version_info.txt", "eval"), {n: record(n) for n in names})  # noqa: S307
    strings = dict(args for args, _ in seen["StringStruct"])
    assert strings["ProductVersion"] == "0.1.0" and strings["OriginalFilename"] == "PhotoScribe.exe"
    assert seen["FixedFileInfo"][0][1]["filevers"] == (0, 1, 0, 0)
