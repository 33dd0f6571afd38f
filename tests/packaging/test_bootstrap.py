"""bootstrap.sh installs the system libraries Qt's window needs, saying so before it uses sudo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.conftest import PACKAGING, load_script

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="apt-get and dpkg: Linux")

rules = load_script("bundle_rules")


def fake_tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    """A Debian-like machine for an ordinary user, without libxcb-cursor0 and libxcb-icccm4;
    apt-get and sudo only say that they ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tool(bin_dir, "id", '[ "$1" = -u ] && echo 1000 || /usr/bin/id "$@"')
    fake_tool(bin_dir, "sudo", 'echo "SUDO RAN: $*"; exec "$@"')
    fake_tool(bin_dir, "apt-get", 'echo "$*" >>"$HOME/apt-get.log"')
    fake_tool(bin_dir, "exiftool", "echo 12.57")
    fake_tool(
        bin_dir,
        "dpkg-query",
        'shift 2; for p in "$@"; do case "$p" in libxcb-cursor0|libxcb-icccm4) ;; '
        '*) echo "$p install ok installed" ;; esac; done',
    )
    python = Path(sys.executable)
    fake_tool(bin_dir, "python3", f'exec "{python}" "$@"')
    return bin_dir


def bootstrap(bin_dir: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(bin_dir.parent)}
    return subprocess.run(
        ["bash", str(PACKAGING / "bootstrap.sh"), mode],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )


def test_missing_qt_libraries_are_installed_after_saying_so(machine: Path) -> None:
    out = bootstrap(machine, "system").stdout
    lines = out.splitlines()
    said = next(i for i, line in enumerate(lines) if "needs these system libraries" in line)
    assert lines[said].endswith(": libxcb-cursor0 libxcb-icccm4")
    warned = next(i for i, line in enumerate(lines) if "sudo may ask for your password" in line)
    first_sudo = next(i for i, line in enumerate(lines) if line.startswith("SUDO RAN"))
    assert said < warned < first_sudo
    apt = (machine.parent / "apt-get.log").read_text().splitlines()
    assert apt == ["update -qq", "install -y -qq libxcb-cursor0 libxcb-icccm4"]


def test_nothing_is_installed_when_nothing_is_missing(machine: Path) -> None:
    fake_tool(
        machine, "dpkg-query", 'shift 2; for p in "$@"; do echo "$p install ok installed"; done'
    )
    assert bootstrap(machine, "system").stdout == ""


def test_the_qt_packages_cover_what_qts_x11_plugin_links() -> None:
    packages = rules.qt_packages()
    for needed in ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxkbcommon-x11-0"):
        assert needed in packages
    assert "libc6" not in packages and len(packages) == len(set(packages))


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg")
def test_bootstrap_asks_dpkg_about_real_package_names() -> None:
    """The names bootstrap.sh asks dpkg about are real Debian packages (dpkg knows them)."""
    result = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", *rules.qt_packages()],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    if result.returncode != 0 and "No packages found" not in result.stderr:
        pytest.skip("apt-cache has no package lists here")
    known = {
        line.split(": ", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith("Package: ")
    }
    assert set(rules.qt_packages()) <= known


# ---------------------------------------------------------------- which torch the venv gets

on_linux_x86_64 = pytest.mark.skipif(
    os.uname().machine != "x86_64", reason="the CPU/CUDA choice is made on Linux x86-64"
)


def run_bootstrap(bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """bootstrap.sh on a machine whose NVIDIA driver lists no GPU (an empty gpus folder)."""
    gpus = bin_dir.parent / "gpus"
    gpus.mkdir(exist_ok=True)
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(bin_dir.parent)}
    return subprocess.run(
        ["bash", str(PACKAGING / "bootstrap.sh"), *args],
        env={**base, "PHOTOSCRIBE_NVIDIA_GPUS": str(gpus), **env},
        capture_output=True,
        text=True,
    )


@on_linux_x86_64
def test_the_cpu_build_without_an_nvidia_gpu_and_the_cuda_build_with_one(machine: Path) -> None:
    assert run_bootstrap(machine, "torch").stdout.startswith("cpu: this machine has no NVIDIA GPU")
    fake_tool(machine, "nvidia-smi", 'echo "GPU 0: NVIDIA H200 (UUID: GPU-1234)"')
    assert run_bootstrap(machine, "torch").stdout.startswith("cuda: this machine has an NVIDIA GPU")
    assert run_bootstrap(machine, "torch", PHOTOSCRIBE_TORCH="cpu").stdout.startswith("cpu:")
    fake_tool(machine, "nvidia-smi", "echo 'No devices were found'; exit 6")
    assert run_bootstrap(machine, "torch").stdout.startswith("cpu:")
    (machine.parent / "gpus" / "0000:01:00.0").mkdir(parents=True)  # the driver's own list
    assert run_bootstrap(machine, "torch").stdout.startswith("cuda:")
    assert run_bootstrap(machine, "torch", PHOTOSCRIBE_TORCH="cpu").stdout.startswith("cpu:")
    wrong = run_bootstrap(machine, "torch", PHOTOSCRIBE_TORCH="rocm")
    assert wrong.returncode == 2 and "must be cpu or cuda, not 'rocm'" in wrong.stderr


@on_linux_x86_64
def test_the_venv_follows_the_torch_choice(machine: Path, tmp_path: Path) -> None:
    """The stamp covers the choice: the same choice again changes nothing, another one updates
    the venv, and becoming CPU removes what only the CUDA build used (pip is a stand-in here)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log, listed = tmp_path / "pip.log", tmp_path / "pip-list.txt"
    listed.write_text("torch==2.14.1\ntorchvision==0.29.1\nnvidia-cublas==13.1\ntriton==3.8.0\n")
    fake_tool(
        venv / "bin",
        "python",
        f'if [ "$1" = -m ] && [ "$2" = pip ]; then shift 2; echo "$*" >>"{log}"; '
        f'[ "$1" != list ] || cat "{listed}"; exit 0; fi; exec "{sys.executable}" "$@"',
    )

    def setup(torch: str) -> list[str]:
        log.write_text("")
        done = run_bootstrap(machine, "setup", PHOTOSCRIBE_VENV=str(venv), PHOTOSCRIBE_TORCH=torch)
        assert done.returncode == 0, done.stderr
        return [line for line in log.read_text().splitlines() if not line.startswith("list")]

    cpu_install = "install -q torch==2.13.0+cpu"
    assert cpu_install in setup("cpu")
    assert setup("cpu") == []  # nothing changed: the stamp matches
    cuda = setup("cuda")
    assert "install -q torch==2.14.1 torchvision==0.29.1" in cuda
    assert cuda[-1] == "install -q -e .[test,cuda]"
    assert setup("cuda") == []
    back = setup("cpu")
    assert back[-3:] == [
        cpu_install,
        "uninstall -y -q torchvision nvidia-cublas triton",
        "install -q -e .[test]",
    ]
