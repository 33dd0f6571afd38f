"""The version has one source, pyproject.toml; the program, the changelog and the model card agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import core
from core.cli import main

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_version_is_the_one_in_pyproject() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", PYPROJECT["version"])
    assert core.__version__ == PYPROJECT["version"]


def test_version_flag_prints_it(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"photoscribe {PYPROJECT['version']}"


def test_another_projects_pyproject_is_not_read(tmp_path: Path) -> None:
    """Installed as a wheel, the folder above `core` is site-packages: a pyproject.toml there
    belongs to someone else, and the installed package's metadata says the version."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "9.9.9"\n')
    assert core._version(tmp_path) != "9.9.9"
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "photoscribe"\nversion = "1.2.3"\n\n[tool.x]\nversion = "0"\n'
    )
    assert core._version(tmp_path) == "1.2.3"


def test_the_changelog_starts_with_this_version_and_goes_back_in_order() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## (\d+\.\d+\.\d+)\b", text, re.MULTILINE)
    assert versions[0] == PYPROJECT["version"]
    as_numbers = [tuple(int(n) for n in v.split(".")) for v in versions]
    assert as_numbers == sorted(as_numbers, reverse=True) and len(set(versions)) == len(versions)


def test_the_model_card_names_this_version() -> None:
    card = (ROOT / "core" / "weights" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"Shipped with PhotoScribe {PYPROJECT['version']};" in card
