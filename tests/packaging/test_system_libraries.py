"""The libraries a bundle links: bundled, or on the written list left to the user's system."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.packaging.conftest import PACKAGING, ROOT, load_script, make_elf
from tests.packaging.test_bundle_rules import COMPLETE, make_bundle

rules = load_script("bundle_rules")
elf = load_script("elf")
check_bundle = load_script("check_bundle")

XCB_PLUGIN = "PySide6/Qt/lib/libQt6XcbQpa.so.6"
XCB_NEEDS = ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb.so.1", "libX11.so.6", "libc.so.6"]


def bundle_with(tmp_path: Path, elves: dict[str, list[str]], versions=None) -> Path:
    """A complete fake bundle plus ELF files (path -> DT_NEEDED names)."""
    bundle = make_bundle(tmp_path, COMPLETE)
    for rel, needed in elves.items():
        make_elf(bundle / "_internal" / rel, needed, (versions or {}).get(rel))
    return bundle


def test_elf_reader_reads_needed_libraries_and_versions(tmp_path: Path) -> None:
    path = make_elf(
        tmp_path / "lib.so",
        ["libxcb-cursor.so.0", "libc.so.6"],
        {"libc.so.6": ["GLIBC_2.17", "GLIBC_2.34"], "libstdc++.so.6": ["GLIBCXX_3.4.29"]},
    )
    links = elf.read_links(path)
    assert links.needed == ("libxcb-cursor.so.0", "libc.so.6")
    assert ("libc.so.6", "GLIBC_2.34") in links.versions
    assert elf.newest_version({v for _, v in links.versions}, "GLIBC") == "GLIBC_2.34"
    (tmp_path / "text.so").write_text("not an ELF file, but long enough to be read as one " * 3)
    assert elf.read_links(tmp_path / "text.so") is None


@pytest.mark.skipif(not Path("/bin/sh").is_file(), reason="needs a Linux /bin/sh")
def test_elf_reader_reads_a_real_program() -> None:
    links = elf.read_links(Path("/bin/sh").resolve())
    assert links is not None and "libc.so.6" in links.needed
    assert any(v.startswith("GLIBC_") for _, v in links.versions)


def test_a_library_neither_bundled_nor_listed_fails_the_check_and_names_its_package(
    tmp_path: Path,
) -> None:
    bundle = bundle_with(tmp_path, {XCB_PLUGIN: XCB_NEEDS})
    problems = check_bundle.check(bundle, None).problems
    text = "\n".join(problems)
    assert "libxcb-cursor.so.0 (needed by PySide6/Qt/lib/libQt6XcbQpa.so.6)" in text
    assert "install libxcb-cursor0 on the build machine" in text
    assert "libxcb-icccm.so.4" in text and "install libxcb-icccm4" in text
    # libxcb.so.1, libX11.so.6 and libc.so.6 are on the written list: no problem.
    assert "libxcb.so.1" not in text and "libX11.so.6" not in text and "libc.so.6" not in text


def test_an_unknown_library_asks_to_bundle_or_list_it(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, {"torch/lib/libfoo.so": ["libmystery.so.3"]})
    (problem,) = check_bundle.check(bundle, None).problems
    assert "libmystery.so.3" in problem and "SYSTEM_LIBRARIES" in problem


def test_bundled_libraries_satisfy_the_check(tmp_path: Path) -> None:
    bundle = bundle_with(
        tmp_path,
        {
            XCB_PLUGIN: XCB_NEEDS,
            "libxcb-cursor.so.0": ["libxcb-image.so.0", "libxcb.so.1"],
            "libxcb-image.so.0": ["libxcb.so.1"],
            "libxcb-icccm.so.4": ["libxcb.so.1"],
        },
        versions={XCB_PLUGIN: {"libc.so.6": ["GLIBC_2.34"]}},
    )
    report = check_bundle.check(bundle, None)
    assert report.problems == []
    assert "the X11 core client libraries: libX11.so.6, libxcb.so.1" in report.system_libraries
    assert report.newest_system_versions == {"GLIBC_2.34": XCB_PLUGIN}


def test_the_build_machine_does_not_change_the_verdict(tmp_path: Path, monkeypatch) -> None:
    """Regression: the check failed when the build machine had a library (GTK's Pango, say)
    that the bundle did not carry, and passed when it lacked one the bundle needed."""
    bundle = bundle_with(tmp_path, {XCB_PLUGIN: XCB_NEEDS, "libqt.so": ["libfontconfig.so.1"]})
    verdicts = []
    for machine in (set(), {"libpango-1.0.so.0", "libfontconfig.so.1", "libxcb-cursor.so.0"}):
        monkeypatch.setattr(check_bundle, "system_library_names", lambda machine=machine: machine)
        verdicts.append(check_bundle.check(bundle, None).problems)
    assert verdicts[0] == verdicts[1]
    assert any("libxcb-cursor.so.0" in p for p in verdicts[0])
    assert not any("libfontconfig" in p for p in verdicts[0])


def test_gtk_never_goes_in(tmp_path: Path) -> None:
    bundle = bundle_with(tmp_path, {"libgtk-3.so.0": ["libc.so.6"], "libgdk-3.so.0": ["libc.so.6"]})
    text = "\n".join(check_bundle.check(bundle, None).problems)
    assert "libgtk-3.so.0" in text and "libgdk-3.so.0" in text


def test_a_listed_library_must_not_be_bundled(tmp_path: Path) -> None:
    bundle = bundle_with(
        tmp_path, {"libstdc++.so.6": ["libc.so.6"], XCB_PLUGIN: ["libstdc++.so.6"]}
    )
    (problem,) = check_bundle.check(bundle, None).problems
    assert problem.startswith("libstdc++.so.6 is bundled, but the user's system provides it")


def test_unused_build_machine_libraries_drop_out(tmp_path: Path) -> None:
    """What only a left-out plugin linked (GTK for the GTK theme) is not kept."""
    plugin = make_elf(tmp_path / "libqxcb.so", ["libQt6XcbQpa.so.6", "libxcb-cursor.so.0"])
    candidates = {
        "libxcb-cursor.so.0": make_elf(tmp_path / "c", ["libxcb-image.so.0", "libxcb.so.1"]),
        "libxcb-image.so.0": make_elf(tmp_path / "i", ["libxcb-util.so.1"]),
        "libxcb-util.so.1": make_elf(tmp_path / "u", []),
        "libgtk-3.so.0": make_elf(tmp_path / "g", ["libpango-1.0.so.0"]),
        "libpango-1.0.so.0": make_elf(tmp_path / "p", []),
    }
    assert elf.linked_closure([plugin], candidates) == {
        "libxcb-cursor.so.0",
        "libxcb-image.so.0",
        "libxcb-util.so.1",
    }


def test_the_build_machine_libraries_it_lacks_are_named_with_their_packages() -> None:
    have = set(rules.BUILD_MACHINE_LIBRARIES) - {"libxcb-cursor.so.0", "libxcb-keysyms.so.1"}
    assert check_bundle.missing_build_libraries(have) == {
        "libxcb-cursor.so.0": "libxcb-cursor0",
        "libxcb-keysyms.so.1": "libxcb-keysyms1",
    }
    assert check_bundle.missing_build_libraries(set(rules.BUILD_MACHINE_LIBRARIES)) == {}


def test_the_written_list_is_short_justified_and_apart_from_what_is_bundled() -> None:
    assert len(rules.SYSTEM_LIBRARIES) <= 12
    for entry in rules.SYSTEM_LIBRARIES:
        assert entry.sonames and len(entry.why) > 60, entry.what
    for soname in rules.BUILD_MACHINE_LIBRARIES:
        assert rules.system_library(soname) is None, soname
    assert rules.system_library("libxcb-cursor.so.0") is None
    assert rules.system_library("libxcb.so.1").what == "the X11 core client libraries"


def test_the_readme_names_every_listed_package() -> None:
    """The README's "Install and uninstall" lists the system libraries the bundle expects."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"### Install and uninstall.*?(?=\n### )", readme, re.DOTALL)
    assert section is not None
    for package in rules.system_packages():
        assert f"`{package}`" in section.group(0), package
    for package in rules.BUILD_MACHINE_LIBRARIES.values():
        assert package in section.group(0), package


def test_the_fresh_system_test_installs_only_the_list_and_an_x_server() -> None:
    script = (PACKAGING / "test_fresh_system.sh").read_text(encoding="utf-8")
    assert "--variant=minbase" in script and "bundle_rules.py system-packages" in script
    assert 'packages=(xvfb zstd xz-utils "${listed[@]}")' in script


@pytest.mark.skipif(
    not any(Path(p).is_file() for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig")),
    reason="needs glibc's ldconfig",
)
def test_the_build_machine_is_read_without_sbin_on_path(monkeypatch) -> None:
    """Regression: an ordinary Debian user's PATH has no /sbin, so ldconfig was not found and
    every library looked missing (build.sh then asked to install them all)."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(check_bundle.shutil, "which", lambda name: None)
    assert "libc.so.6" in check_bundle.system_library_names()
