"""Checks a built PhotoScribe bundle against bundle_rules.py and reports what its parts weigh.

    .venv/bin/python packaging/check_bundle.py dist/photoscribe --out build/bundle_report.json
    .venv/bin/python packaging/check_bundle.py --build-machine   # what build.sh must install

Fails (exit 1) when something the app needs is missing, when something that should be left out
is there (headers, tests, training-only packages, unused Qt modules, GTK), when a library a
bundled file links is neither bundled nor on the written list of libraries left to the user's
system (bundle_rules.SYSTEM_LIBRARIES), when one on that list is bundled, or when the CUDA
libraries do not follow the torch that was installed for the build: all of them with a CUDA
torch, none with a CPU torch. Run it with the Python the bundle was built with.
--build-machine prints, one per line, the Debian packages of bundle_rules.BUILD_MACHINE_LIBRARIES
this machine lacks (nothing when it has them all)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bundle_rules as rules
import elf

MB = 1_000_000


@dataclass(kw_only=True)
class Report:
    bundle: str
    variant: str  # "cpu" or e.g. "cu130": the torch the bundle was built over
    total_bytes: int = 0
    files: int = 0
    parts: dict[str, int] = field(default_factory=dict)  # part -> bytes, largest first
    largest_files: list[tuple[str, int]] = field(default_factory=list)
    modules: int = 0  # Python modules in the app's archive
    system_libraries: list[str] = field(default_factory=list)  # linked, left to the user's system
    # the newest symbol versions of glibc and libstdc++ any file needs, each with such a file
    newest_system_versions: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def installed_torch_cuda() -> str | None:
    """The CUDA version the installed torch was built for, read without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        raise SystemExit("check_bundle: torch is not installed in this Python")
    text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
    found = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([\d.]+)['\"]", text, re.MULTILINE)
    return found.group(1) if found else None


def installed_cuda_libraries() -> set[str]:
    """File names of the NVIDIA packages' libraries that torch loads with dlopen."""
    spec = importlib.util.find_spec("torch")
    assert spec is not None and spec.origin is not None
    nvidia = Path(spec.origin).parent.parent / "nvidia"
    if not nvidia.is_dir():
        return set()
    return {p.name for p in nvidia.glob("*/lib/*") if rules.matches(p.name, rules.CUDA_DLOPENED)}


def system_library_names() -> set[str]:
    """The shared libraries this machine's loader knows (ldconfig's cache)."""
    # An ordinary user's PATH on Debian has no /sbin.
    ldconfig = shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if Path(p).is_file()), None
    )
    if ldconfig is None:
        return set()
    listing = subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listing.splitlines()[1:] if line.strip()}


def missing_build_libraries(known: set[str]) -> dict[str, str]:
    """The libraries of rules.BUILD_MACHINE_LIBRARIES that are not among ``known`` (the build
    machine's libraries), each with the Debian package that provides it."""
    return {lib: pkg for lib, pkg in rules.BUILD_MACHINE_LIBRARIES.items() if lib not in known}


def check_linked_libraries(inside: Path, files: dict[str, int], report: Report) -> None:
    """Every library a bundled ELF file links is bundled, or is on the written list of
    libraries left to the user's system (rules.SYSTEM_LIBRARIES); nothing on that list is
    bundled where the loader would find it first. What this machine happens to have installed
    plays no part. Also records the newest glibc and libstdc++ symbol versions needed."""
    bundled = {rel.rsplit("/", 1)[-1] for rel in files}
    missing: dict[str, list[str]] = {}
    used: dict[str, set[str]] = {}  # list entry -> sonames linked
    versions: dict[str, str] = {}  # symbol version of a system library -> a file needing it
    for rel in sorted(files):
        path = inside / rel
        if rel.startswith("../") or path.is_symlink() or path.suffix in (".py", ".pyc", ".json"):
            continue
        links = elf.read_links(path)
        if links is None:
            continue
        for lib in links.needed:
            entry = rules.system_library(lib)
            if entry is not None:
                used.setdefault(entry.what, set()).add(lib)
            elif lib not in bundled:
                missing.setdefault(lib, []).append(rel)
        for soname, version in links.versions:
            if rules.system_library(soname) is not None:
                versions.setdefault(version, rel)
    for lib, users in sorted(missing.items()):
        package = rules.BUILD_MACHINE_LIBRARIES.get(lib)
        fix = (
            f"install {package} on the build machine and build again"
            if package
            else "bundle it (add its package to BUILD_MACHINE_LIBRARIES) or, if every desktop "
            "has it, add it to SYSTEM_LIBRARIES with the reason"
        )
        report.problems.append(
            f"{lib} (needed by {users[0]}) is neither bundled nor on the list of system "
            f"libraries in bundle_rules.py: {fix}"
        )
    for rel in files:
        if "/" not in rel and rules.system_library(rel) is not None:
            report.problems.append(
                f"{rel} is bundled, but the user's system provides it (bundle_rules."
                "SYSTEM_LIBRARIES): the bundled copy would shadow the system's"
            )
    report.system_libraries = [
        f"{entry.what}: {', '.join(sorted(used[entry.what]))}"
        for entry in rules.SYSTEM_LIBRARIES
        if entry.what in used
    ]
    for prefix in ("GLIBC", "GLIBCXX", "CXXABI"):
        newest = elf.newest_version(set(versions), prefix)
        if newest:
            report.newest_system_versions[newest] = versions[newest]


def contents_dir(bundle: Path) -> Path:
    for candidate in (bundle / "_internal", bundle / "Contents" / "Frameworks"):
        if candidate.is_dir():
            return candidate
    return bundle


def part_of(rel: str) -> str:
    """The part of the bundle a file belongs to, for the size table."""
    parts = rel.split("/")
    if parts[0] in ("nvidia", "PySide6") and len(parts) > 2:
        return "/".join(parts[:2]) if parts[1] != "Qt" else "/".join(parts[:3])
    if parts[0] == "torch" and len(parts) > 1:
        return "torch/lib" if parts[1] == "lib" else "torch (Python code and data)"
    if len(parts) == 1:
        return "top level (Python, shared libraries)"
    return parts[0]


def archive_modules(bundle: Path) -> list[str] | None:
    """Module names in the executable's PYZ archive; None without PyInstaller or executable."""
    try:
        from PyInstaller.archive.readers import CArchiveReader
    except ImportError:
        return None
    for exe in (bundle / "photoscribe", bundle / "photoscribe-cli.exe"):
        if exe.is_file():
            archive = CArchiveReader(str(exe))
            names: list[str] = []
            for name, entry in archive.toc.items():
                if entry[-1] == "z":  # the PYZ: every pure-Python module of the app
                    names.extend(archive.open_embedded_archive(name).toc)
            return names
    return None


def check(bundle: Path, variant_cuda: str | None) -> Report:
    variant = f"cu{variant_cuda.replace('.', '')}" if variant_cuda else "cpu"
    report = Report(bundle=str(bundle), variant=variant)
    inside = contents_dir(bundle)
    files: dict[str, int] = {}
    for dirpath, _dirs, names in os.walk(inside):
        for name in names:
            path = Path(dirpath) / name
            rel = path.relative_to(inside).as_posix()
            files[rel] = 0 if path.is_symlink() else path.stat().st_size
    dangling = sorted(rel for rel in files if not (inside / rel).exists())
    if dangling:
        report.problems.append(f"symbolic links to nothing: {dangling[:10]}")
    for path in bundle.iterdir():
        if path.is_file() and not path.is_symlink():
            files[f"../{path.name}"] = path.stat().st_size
    report.files = len(files)
    report.total_bytes = sum(files.values())
    parts: dict[str, int] = {}
    for rel, size in files.items():
        key = "executable" if rel.startswith("../") else part_of(rel)
        parts[key] = parts.get(key, 0) + size
    report.parts = dict(sorted(parts.items(), key=lambda kv: -kv[1]))
    report.largest_files = sorted(files.items(), key=lambda kv: -kv[1])[:20]

    required = rules.REQUIRED | (rules.REQUIRED_CUDA if variant_cuda else {})
    for what, patterns in required.items():
        if not any(rules.matches(rel, patterns) for rel in files):
            report.problems.append(f"missing {what} ({', '.join(patterns)})")
    left_out = rules.FORBIDDEN + (() if variant_cuda else rules.FORBIDDEN_CPU)
    forbidden = sorted(rel for rel in files if rules.matches(rel, left_out))
    if forbidden:
        report.problems.append(
            f"{len(forbidden)} file(s) that should be left out: {forbidden[:10]}"
        )

    cuda_files = {rel.rsplit("/", 1)[-1] for rel in files if rules.is_cuda_library(rel)}
    if variant_cuda is None:
        if cuda_files:
            report.problems.append(
                f"built over a CPU torch, yet it carries CUDA libraries: {sorted(cuda_files)[:10]}"
            )
    else:
        for needed in ("libtorch_cuda.so", "libcudart.so.*", "libcudnn.so.*", "libcublas.so.*"):
            if not any(rules.matches(name, (needed,)) for name in cuda_files):
                report.problems.append(f"built over a CUDA torch, yet {needed} is missing")
        missing = sorted(installed_cuda_libraries() - {rel.rsplit("/", 1)[-1] for rel in files})
        if missing:
            report.problems.append(f"libraries torch loads with dlopen are not bundled: {missing}")
    if sys.platform.startswith("linux"):
        check_linked_libraries(inside, files, report)

    modules = archive_modules(bundle)
    if modules is not None:
        report.modules = len(modules)
        bad = sorted(
            m
            for m in modules
            if rules.module_is_forbidden(m)
            or (variant_cuda is None and rules.module_is_forbidden(m, rules.CPU_PYTHON_EXCLUDES))
        )
        if bad:
            report.problems.append(f"{len(bad)} module(s) that should be left out: {bad[:10]}")
        for needed in ("core.inference", "core.selftest", "desktop.app", "desktop.main_window"):
            if needed not in modules:
                report.problems.append(f"the module {needed} is not in the app")
    return report


def describe(report: Report) -> str:
    lines = [
        f"{report.bundle}: {report.total_bytes / MB:,.0f} MB in {report.files} files "
        f"({report.variant} build, {report.modules} Python modules)"
    ]
    for part, size in report.parts.items():
        if size >= 5 * MB:
            lines.append(f"  {size / MB:9,.0f} MB  {part}")
    lines.append("  largest files:")
    for rel, size in report.largest_files[:10]:
        lines.append(f"  {size / MB:9,.0f} MB  {rel}")
    if report.system_libraries:
        lines.append("  left to the user's system (bundle_rules.SYSTEM_LIBRARIES):")
        lines += [f"    {lib}" for lib in report.system_libraries]
    if report.newest_system_versions:
        needs = ", ".join(f"{v} ({rel})" for v, rel in report.newest_system_versions.items())
        lines.append(f"  newest system symbol versions needed: {needs}")
    lines += [f"PROBLEM: {p}" for p in report.problems]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "bundle", type=Path, nargs="?", help="the onedir folder, e.g. dist/photoscribe"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the report as JSON")
    parser.add_argument(
        "--build-machine",
        action="store_true",
        help="print the Debian packages the bundle needs from this machine that it lacks",
    )
    args = parser.parse_args(argv)
    if args.build_machine:
        for package in sorted(set(missing_build_libraries(system_library_names()).values())):
            print(package)
        return 0
    if args.bundle is None or not args.bundle.is_dir():
        print(f"check_bundle: {args.bundle} is not a folder", file=sys.stderr)
        return 2
    report = check(args.bundle, installed_torch_cuda())
    print(describe(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
