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
    # Some bulk, so that a cut-off archive is cut inside the program, as it would be.
    (pkg / "app" / "_internal" / "libtorch_cpu.so").write_bytes(os.urandom(300_000))
    for name in ("install.sh", "uninstall.sh", "photoscribe.desktop", "INSTALL.txt"):
        shutil.copy(PACKAGING / "linux" / name, pkg / name)
    shutil.copytree(PACKAGING / "icons", pkg / "icons")
    pack(pkg, "gz")  # writes SHA256SUMS, as build.sh does
    return pkg


def pack(folder: Path, fmt: str) -> Path:
    subprocess.run(
        ["bash", str(PACKAGING / "pack.sh"), str(folder), fmt], check=True, capture_output=True
    )
    return folder.parent / f"{folder.name}.tar.{fmt}"


def everything_under(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def refused(script: Path, home: Path) -> str:
    """Run install.sh expecting it to refuse; return what it said. Nothing may have changed."""
    before = everything_under(home)
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert everything_under(home) == before
    assert "Nothing was installed or changed." in result.stderr
    return result.stderr


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


FORMATS = ["gz", "xz"] + (["zst"] if shutil.which("zstd") else [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_packed_archive_unpacks_with_tar_and_installs(
    package: Path, home: Path, tmp_path: Path, fmt: str
) -> None:
    archive = pack(package, fmt)
    unpacked = tmp_path / "download"
    unpacked.mkdir()
    subprocess.run(["tar", "xf", str(archive), "-C", str(unpacked)], check=True)
    members = subprocess.run(
        ["tar", "tf", str(archive)], check=True, capture_output=True, text=True
    ).stdout.split()
    # install.sh and the file list come before the program: a cut-off download still has them.
    assert members.index(f"{package.name}/install.sh") < members.index(f"{package.name}/app/")
    assert members.index(f"{package.name}/SHA256SUMS") < members.index(f"{package.name}/app/")
    result = run(unpacked / package.name / "install.sh", home)
    assert "Checking the unpacked files" in result.stdout
    assert (home / ".local" / "lib" / "photoscribe" / "_internal" / "libtorch_cpu.so").is_file()


def test_a_damaged_file_stops_the_install_before_anything_changes(package: Path, home: Path):
    program = package / "app" / "_internal" / "libtorch_cpu.so"
    data = bytearray(program.read_bytes())
    data[1000] ^= 0xFF
    program.write_bytes(bytes(data))
    said = refused(package / "install.sh", home)
    assert "damaged or incomplete: 1 file(s)" in said and "app/_internal/libtorch_cpu.so" in said
    assert "Download the archive again" in said


def test_a_missing_file_or_file_list_stops_the_install(package: Path, home: Path) -> None:
    (package / "icons" / "photoscribe-48.png").unlink()
    assert "icons/photoscribe-48.png" in refused(package / "install.sh", home)
    (package / "SHA256SUMS").unlink()
    assert "SHA256SUMS is missing" in refused(package / "install.sh", home)


def test_a_cut_off_download_stops_the_install(package: Path, home: Path, tmp_path: Path):
    archive = pack(package, "gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    unpacked = tmp_path / "download"
    unpacked.mkdir()
    untar = subprocess.run(["tar", "xzf", str(cut), "-C", str(unpacked)], capture_output=True)
    assert untar.returncode != 0  # tar says so too, but people run install.sh anyway
    said = refused(unpacked / package.name / "install.sh", home)
    assert "damaged or incomplete" in said or "not unpacked completely" in said


def test_a_failed_copy_leaves_nothing_behind(package: Path, home: Path, tmp_path: Path):
    """Regression: a copy that failed half-way (disk full) left ~/.local/lib/photoscribe.new."""
    tools = tmp_path / "tools"
    tools.mkdir()
    fake_cp = tools / "cp"  # copies a little of the program, then fails as on a full disk
    fake_cp.write_text(
        '#!/bin/sh\nif [ "$1" = -a ]; then mkdir -p "$3" && echo part >"$3/part"; '
        'echo "cp: No space left on device" >&2; exit 1; fi\nexec /bin/cp "$@"\n'
    )
    fake_cp.chmod(0o755)
    env = {"HOME": str(home), "PATH": f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    result = subprocess.run(
        ["bash", str(package / "install.sh")], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "No space left" in result.stderr
    assert not (home / ".local" / "lib" / "photoscribe.new").exists()
    assert not (home / ".local" / "lib" / "photoscribe").exists()


def test_too_little_disk_space_stops_the_install(package: Path, home: Path, tmp_path: Path):
    tools = tmp_path / "tools"
    tools.mkdir()
    fake_df = tools / "df"  # a nearly full disk: 100 KB free
    fake_df.write_text(
        "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
        "echo '/dev/x 1000000 999900 100 100% /'\n"
    )
    fake_df.chmod(0o755)
    before = everything_under(home)
    env = {"HOME": str(home), "PATH": f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    result = subprocess.run(
        ["bash", str(package / "install.sh")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1 and "not enough disk space" in result.stderr
    assert "0 MB are free" in result.stderr and everything_under(home) == before


def test_a_folder_made_without_an_archive_installs(package: Path, home: Path) -> None:
    """build.sh --no-archive still writes the file list, so its folder's install.sh works."""
    (package / "SHA256SUMS").unlink()
    for old in package.parent.glob("*.tar.*"):
        old.unlink()
    subprocess.run(["bash", str(PACKAGING / "pack.sh"), str(package), "none"], check=True)
    assert (package / "SHA256SUMS").is_file() and not list(package.parent.glob("*.tar.*"))
    run(package / "install.sh", home)
    assert (home / ".local" / "lib" / "photoscribe" / "photoscribe").is_file()
