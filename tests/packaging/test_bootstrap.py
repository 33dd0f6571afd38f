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
