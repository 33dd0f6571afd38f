"""PhotoScribe core: model, images, inference, caption storage and export (no GUI)."""

from __future__ import annotations

import re
from pathlib import Path


def _version(root: Path) -> str:
    """The version in pyproject.toml, its one source; ``root`` is the folder above `core`.

    Read from the pyproject.toml beside the `core` package: the source checkout's (also under
    an editable install) or the copy the packaged app carries in its `_internal` folder
    (packaging/photoscribe.spec puts it there); else from the installed package's metadata.
    """
    try:
        text = (root / "pyproject.toml").read_text("utf-8")
    except OSError:
        text = ""
    project = re.search(r"^\[project\]$(.*?)(?=^\[)", text + "\n[", re.MULTILINE | re.DOTALL)
    if project and re.search(r'^name\s*=\s*"photoscribe"', project.group(1), re.MULTILINE):
        found = re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.MULTILINE)
        if found:
            return found.group(1)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("photoscribe")
    except PackageNotFoundError:
        return "unknown"


__version__ = _version(Path(__file__).resolve().parent.parent)
