"""Helpers for the packaging tests: the scripts in packaging/ are loaded from their files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def load_script(name: str) -> ModuleType:
    """Import packaging/NAME.py as a module called NAME (packaging/ is not a Python package)."""
    if str(PACKAGING) not in sys.path:
        sys.path.insert(0, str(PACKAGING))  # check_bundle imports bundle_rules beside it
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PACKAGING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
