"""Reads what a Linux shared library links: its DT_NEEDED names and the symbol versions it needs.

Used by photoscribe.spec (which libraries the bundle keeps) and check_bundle.py (whether every
library the bundle links is bundled or left to the system on purpose). Pure Python, no binutils.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path

SHT_DYNAMIC = 6
SHT_GNU_VERNEED = 0x6FFFFFFE
DT_NEEDED = 1


@dataclass(frozen=True)
class Links:
    """What one ELF file asks of the dynamic loader."""

    needed: tuple[str, ...]  # DT_NEEDED sonames, in file order
    versions: tuple[
        tuple[str, str], ...
    ]  # (soname, version) pairs, e.g. ("libc.so.6", "GLIBC_2.34")


def _cstring(data: mmap.mmap, at: int) -> str:
    return data[at : data.find(b"\0", at)].decode("utf-8", "replace")


def read_links(path: Path) -> Links | None:
    """DT_NEEDED and version needs of a 64-bit little-endian ELF file; None for any other file."""
    if path.stat().st_size < 64:
        return None
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            return None
        (shoff,) = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
        sections = [
            struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
        ]
        needed: list[str] = []
        versions: list[tuple[str, str]] = []
        for _name, kind, _flags, _addr, offset, size, link, info, _align, _entsize in sections:
            strtab = sections[link][4] if link < len(sections) else 0
            if kind == SHT_DYNAMIC:
                for pos in range(offset, offset + size, 16):
                    tag, value = struct.unpack_from("<qQ", data, pos)
                    if tag == 0:
                        break
                    if tag == DT_NEEDED:
                        needed.append(_cstring(data, strtab + value))
            elif kind == SHT_GNU_VERNEED:
                pos = offset
                for _ in range(info):  # info: the number of Verneed entries
                    _version, count, file_off, aux, next_need = struct.unpack_from(
                        "<HHIII", data, pos
                    )
                    soname = _cstring(data, strtab + file_off)
                    aux_pos = pos + aux
                    for _ in range(count):
                        _hash, _flags, _other, name, next_aux = struct.unpack_from(
                            "<IHHII", data, aux_pos
                        )
                        versions.append((soname, _cstring(data, strtab + name)))
                        aux_pos += next_aux
                    if next_need == 0:
                        break
                    pos += next_need
        return Links(tuple(needed), tuple(versions))


def newest_version(versions: list[str] | set[str], prefix: str) -> str | None:
    """The highest of the versions named PREFIX_x.y.z (e.g. GLIBC_2.34 among GLIBC_*), or None."""
    pattern = re.compile(re.escape(prefix) + r"_(\d+(?:\.\d+)*)$")
    numbered = [
        (tuple(int(n) for n in found.group(1).split(".")), v)
        for v in versions
        if (found := pattern.match(v))
    ]
    return max(numbered)[1] if numbered else None


def linked_closure(roots: list[Path], candidates: dict[str, Path]) -> set[str]:
    """The names among ``candidates`` (soname -> file) that ``roots`` link, directly or through
    other candidates. A candidate that only unlinked files need is not in the result."""
    keep: set[str] = set()
    queue = list(roots)
    while queue:
        links = read_links(queue.pop())
        for name in links.needed if links else ():
            if name in candidates and name not in keep:
                keep.add(name)
                queue.append(candidates[name])
    return keep
