"""Helpers for the packaging tests: the scripts in packaging/ are loaded from their files."""

from __future__ import annotations

import importlib.util
import struct
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


def make_elf(path: Path, needed: list[str], versions: dict[str, list[str]] | None = None) -> Path:
    """Write a minimal 64-bit ELF shared object that links ``needed`` and needs ``versions``
    (soname -> symbol versions, e.g. {"libc.so.6": ["GLIBC_2.34"]}): just enough of an ELF
    file for packaging/elf.py, so that tests need no compiler."""
    versions = versions or {}
    strings = bytearray(b"\0")

    def string(text: str) -> int:
        offset = len(strings)
        strings.extend(text.encode() + b"\0")
        return offset

    dynamic = b"".join(struct.pack("<qQ", 1, string(name)) for name in needed)  # DT_NEEDED
    dynamic += struct.pack("<qQ", 0, 0)  # DT_NULL
    verneed = bytearray()
    for i, (soname, names) in enumerate(versions.items()):
        last = i == len(versions) - 1
        verneed += struct.pack(
            "<HHIII", 1, len(names), string(soname), 16, 0 if last else 16 + 16 * len(names)
        )
        for j, name in enumerate(names):
            verneed += struct.pack(
                "<IHHII", 0, 0, 2, string(name), 0 if j == len(names) - 1 else 16
            )
    header_size = 64
    str_off = header_size
    dyn_off = str_off + len(strings)
    ver_off = dyn_off + len(dynamic)
    sh_off = ver_off + len(verneed)
    sections = [
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (0, 3, 0, 0, str_off, len(strings), 0, 0, 1, 0),  # SHT_STRTAB
        (0, 6, 0, 0, dyn_off, len(dynamic), 1, 0, 8, 16),  # SHT_DYNAMIC, strings in section 1
        (0, 0x6FFFFFFE, 0, 0, ver_off, len(verneed), 1, len(versions), 4, 0),  # SHT_GNU_verneed
    ]
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, sh_off, 0, header_size, 0, 0, 64, len(sections), 0
    )
    body = header + bytes(strings) + dynamic + bytes(verneed)
    body += b"".join(struct.pack("<IIQQQQIIQQ", *s) for s in sections)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path
