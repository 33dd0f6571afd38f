"""The entry point's headless start of the app (`photoscribe --smoke-gui`), used by packaging."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import desktop.app
import desktop.launcher


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
