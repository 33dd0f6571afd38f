"""The entry point's headless start of the app (`photoscribe --smoke-gui`), used by packaging."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import desktop.app
import desktop.display_check
import desktop.launcher
from desktop.display_check import (
    missing_libraries,
    missing_library_problem,
    no_display,
    start_problem,
)


def test_smoke_gui_shows_the_main_window_and_quits(qtbot, monkeypatch, capsys, tmp_path: Path):
    monkeypatch.setattr(desktop.app, "setup_logging", lambda: tmp_path / "photoscribe.log")
    monkeypatch.setenv("PHOTOSCRIBE_SETTINGS", str(tmp_path / "mine.ini"))
    monkeypatch.setattr(sys, "argv", ["photoscribe", "--smoke-gui"])
    assert desktop.launcher.main() == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["title"] == "PhotoScribe" and report["exit_code"] == 0
    assert report["shown_at"] <= report["closed_at"]
    assert report["size"][0] > 0 and report["size"][1] > 0
    # The user's own settings were neither read nor written, and the environment is restored.
    assert not (tmp_path / "mine.ini").exists()
    assert os.environ["PHOTOSCRIBE_SETTINGS"] == str(tmp_path / "mine.ini")


def test_other_arguments_go_to_the_command_line(monkeypatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(
        desktop.launcher, "cli_main", lambda argv, gui, **kw: seen.append(argv) or 0
    )
    monkeypatch.setattr(sys, "argv", ["photoscribe", "caption", "x.jpg"])
    assert desktop.launcher.main() == 0
    assert seen == [["caption", "x.jpg"]]


def test_without_a_display_one_line_says_what_works(monkeypatch, capsys) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(sys, "argv", ["photoscribe"])
    monkeypatch.setattr(desktop.app, "run_app", lambda folder: pytest.fail("Qt was started"))
    assert desktop.launcher.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "graphical desktop" in err[0] and "photoscribe caption" in err[0]


def test_a_chosen_qt_platform_or_a_display_is_left_to_qt() -> None:
    assert no_display({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert no_display({"DISPLAY": ":0"}, "linux") is None
    assert no_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert no_display({}, "win32") is None and no_display({}, "darwin") is None
    assert no_display({"QT_QPA_PLATFORM": "xcb"}, "linux") is not None


LDD_WITHOUT_CURSOR = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /opt/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f00)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => /lib/x86_64-linux-gnu/libxcb-icccm.so.4 (0x00007f01)
"""


def test_a_missing_qt_system_library_is_named_with_its_package(tmp_path) -> None:
    plugin = tmp_path / "libqxcb.so"
    missing = missing_libraries(plugin, ldd=lambda _: LDD_WITHOUT_CURSOR)
    assert missing == ["libxcb-cursor.so.0"]
    problem = missing_library_problem(missing, has_apt=True)
    assert "libxcb-cursor.so.0" in problem.message
    assert "sudo apt-get install libxcb-cursor0" in problem.message
    assert problem.exit_code != 0 and "\n" not in problem.message
    # Without ldd, each library is tried in turn.
    tried = missing_libraries(plugin, ldd=lambda _: None, loadable=lambda n: "cursor" not in n)
    assert tried == ["libxcb-cursor.so.0"]
    other = missing_library_problem(["libxcb-cursor.so.0"], has_apt=False)
    assert "libxcb-cursor0" in other.message and "apt-get" not in other.message


def test_the_launcher_stops_before_qt_when_a_library_is_missing(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["photoscribe"])
    monkeypatch.setattr(
        desktop.launcher,
        "start_problem",
        lambda: missing_library_problem(["libxcb-cursor.so.0"], has_apt=True),
    )
    monkeypatch.setattr(desktop.app, "run_app", lambda folder: pytest.fail("Qt was started"))
    assert desktop.launcher.main() == 1
    assert "sudo apt-get install libxcb-cursor0" in capsys.readouterr().err


def test_no_library_check_when_qt_draws_offscreen(monkeypatch) -> None:
    monkeypatch.setattr(
        desktop.display_check, "missing_libraries", lambda plugin: pytest.fail("checked")
    )
    assert start_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
