"""install.sh and uninstall.sh on a fake app, in a temporary home folder (spaces and $ in it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.conftest import PACKAGING

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the Linux installer")

SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """An unpacked release folder as build.sh makes it, with a shell script as the program."""
    pkg = tmp_path / "photoscribe-0.1.0-linux-x86_64-cpu"
    (pkg / "app" / "_internal").mkdir(parents=True)
    program = pkg / "app" / "photoscribe"
    program.write_text('#!/bin/sh\necho "photoscribe ran with: $*"\n')
    program.chmod(0o755)
    for name in ("install.sh", "uninstall.sh", "photoscribe.desktop", "INSTALL.txt"):
        shutil.copy(PACKAGING / "linux" / name, pkg / name)
    shutil.copytree(PACKAGING / "icons", pkg / "icons")
    return pkg


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "Jo's home $HOME"
    path.mkdir()
    return path


def run(script: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, check=True
    )


def unescape_string(value: str) -> str:
    """A desktop entry string value: \\s, \\n, \\t, \\r and \\\\ escapes."""
    out, chars = [], iter(value)
    for c in chars:
        if c == "\\":
            nxt = next(chars)
            out.append({"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
        else:
            out.append(c)
    return "".join(out)


def exec_arguments(value: str) -> list[str]:
    """Split an Exec value as the Desktop Entry Specification says (double quotes only)."""
    args: list[str] = []
    current: list[str] | None = None  # the argument being read; None between arguments
    quoted = False
    chars = iter(unescape_string(value))
    for c in chars:
        if quoted and c == "\\":
            current.append(next(chars))
        elif c == '"':
            quoted = not quoted
            current = current if current is not None else []
        elif c == " " and not quoted:
            if current is not None:
                args.append("".join(current))
            current = None
        else:
            current = current if current is not None else []
            current.append(c)
    if current is not None:
        args.append("".join(current))
    return args


def desktop_entry(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_install_puts_everything_under_the_home_folder(package: Path, home: Path) -> None:
    result = run(package / "install.sh", home)
    lib = home / ".local" / "lib" / "photoscribe"
    program = lib / "photoscribe"
    assert program.is_file() and (lib / "_internal").is_dir() and (lib / "uninstall.sh").is_file()
    link = home / ".local" / "bin" / "photoscribe"
    assert link.is_symlink() and link.resolve() == program.resolve()
    for size in SIZES:
        assert (home / f".local/share/icons/hicolor/{size}x{size}/apps/photoscribe.png").is_file()
    assert (home / ".local/share/icons/hicolor/scalable/apps/photoscribe.svg").is_file()

    entry = desktop_entry(home / ".local/share/applications/photoscribe.desktop")
    assert exec_arguments(entry["Exec"]) == [str(program), "%f"]
    assert unescape_string(entry["TryExec"]) == str(program)
    assert entry["Icon"] == "photoscribe" and entry["Terminal"] == "false"
    mime = entry["MimeType"].split(";")
    for kind in ("image/jpeg", "image/png", "image/webp", "image/tiff", "image/heic"):
        assert kind in mime
    if shutil.which("desktop-file-validate"):
        subprocess.run(
            ["desktop-file-validate", str(home / ".local/share/applications/photoscribe.desktop")],
            check=True,
        )
    if shutil.which("update-desktop-database"):  # install.sh ran it: "Open with" knows us
        cache = (home / ".local/share/applications/mimeinfo.cache").read_text()
        assert "image/jpeg=photoscribe.desktop;" in cache
    ran = subprocess.run([str(program), "a photo.jpg"], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "photoscribe ran with: a photo.jpg"
    assert "uninstall.sh" in result.stdout


def test_install_twice_replaces_the_old_version(package: Path, home: Path) -> None:
    run(package / "install.sh", home)
    lib = home / ".local" / "lib" / "photoscribe"
    (lib / "_internal" / "old-file").write_text("from the previous version")
    run(package / "install.sh", home)
    assert not (lib / "_internal" / "old-file").exists()
    assert not (lib.parent / "photoscribe.old").exists()
    assert not (lib.parent / "photoscribe.new").exists()


def test_uninstall_removes_what_was_installed_and_keeps_the_rest(package: Path, home: Path):
    run(package / "install.sh", home)
    other_entry = home / ".local/share/applications/other.desktop"
    other_entry.write_text("[Desktop Entry]\nName=Other\n")
    settings = home / ".config" / "PhotoScribe" / "PhotoScribe.ini"
    settings.parent.mkdir(parents=True)
    settings.write_text("[General]\n")
    run(home / ".local/lib/photoscribe/uninstall.sh", home)
    assert not (home / ".local/lib/photoscribe").exists()
    assert not (home / ".local/bin/photoscribe").exists()
    assert not (home / ".local/share/applications/photoscribe.desktop").exists()
    assert not list((home / ".local/share/icons").rglob("photoscribe.*"))
    assert other_entry.is_file() and settings.is_file()
    run(package / "install.sh", home)
    run(home / ".local/lib/photoscribe/uninstall.sh", home, "--purge")
    assert not settings.parent.exists()


def test_a_foreign_photoscribe_command_is_left_alone(package: Path, home: Path) -> None:
    foreign = home / ".local" / "bin" / "photoscribe"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("#!/bin/sh\necho pip-installed\n")
    result = run(package / "install.sh", home)
    assert "left" in result.stderr and foreign.read_text().endswith("pip-installed\n")
    run(home / ".local/lib/photoscribe/uninstall.sh", home)
    assert foreign.is_file()
