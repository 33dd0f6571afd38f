"""Where the folder tree starts: the user's home, or the folder holding home and an open one."""

from __future__ import annotations

import os
from pathlib import Path


def is_within(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or inside it (by name; links are not followed)."""
    return path == folder or folder in path.parents


def tree_root(home: Path, folder: Path | None) -> Path | None:
    """Where the tree starts: home, or the folder holding both home and an open folder
    outside it; None (every drive) when they have nothing in common (Windows drives)."""
    if folder is None or is_within(folder, home):
        return home
    try:
        return Path(os.path.commonpath([home, folder]))
    except ValueError:
        return None
