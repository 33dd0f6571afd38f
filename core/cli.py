"""The `photoscribe` command: no arguments opens the app; subcommands work headless."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from core import __version__

log = logging.getLogger(__name__)

SUBCOMMANDS = ("caption", "export")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Progress:
    """A one-line progress bar on stderr (images done, images/s, ETA), only on a terminal."""

    def __init__(self, total: int | None, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0
        self.t0 = time.perf_counter()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rate = self.done / elapsed
        if self.total:
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            width = 24
            filled = int(width * self.done / self.total)
            line = (
                f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{rate:.1f} img/s ETA {eta:.0f}s"
            )
        else:
            line = f"{self.done} done, {rate:.1f} img/s"
        self.stream.write("\r" + line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()


def expand_paths(paths: Sequence[str], recursive: bool) -> Iterator[tuple[Path, str | None]]:
    """Photos named or found in the named folders; (path, error) where a path cannot be used."""
    from core.library import find_photos

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            yield from ((f, None) for f in find_photos(p, recursive=recursive))
        elif p.exists():
            yield p, None
        else:
            yield p, f"{p}: file not found"


def _caption_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "caption", help="caption photos and print (and optionally save) the captions"
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="photos or folders")
    p.add_argument("-r", "--recursive", action="store_true", help="include subfolders")
    p.add_argument("--beam", type=int, default=3, help="beam size; 1 = greedy (default 3)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--weights", type=Path, default=None, help="model file (default: shipped)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text", dest="fmt")
    p.add_argument(
        "--write",
        choices=("none", "txt", "xmp", "embed"),
        default="none",
        help="also save each caption: text sidecar, XMP sidecar or embedded metadata",
    )
    p.add_argument(
        "--xmp-name",
        choices=("photo.jpg.xmp", "photo.xmp"),
        default="photo.jpg.xmp",
        help="XMP sidecar naming (darktable/digiKam or Lightroom style)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing captions")
    p.add_argument(
        "--skip-captioned", action="store_true", help="skip photos with a caption in any store"
    )


def _export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the captions stored for the photos in a folder")
    p.add_argument("folder", type=Path)
    p.add_argument("-r", "--recursive", action="store_true")
    p.add_argument("--format", choices=("csv", "json", "jsonl", "hf"), required=True, dest="fmt")
    p.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")
    p.add_argument("--bom", action="store_true", help="CSV: add a UTF-8 BOM for spreadsheets")
    p.add_argument("--xmp-name", choices=("photo.jpg.xmp", "photo.xmp"), default="photo.jpg.xmp")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="photoscribe",
        description="Offline captions for your photos. Without a subcommand, opens the app.",
    )
    parser.add_argument("--version", action="version", version=f"photoscribe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _caption_parser(sub)
    _export_parser(sub)
    return parser


def run_caption(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from core.errors import PhotoScribeError
    from core.inference import Captioner, CaptionSettings

    if args.beam < 1 or args.batch_size < 1:
        print("photoscribe: --beam and --batch-size must be at least 1", file=err)
        return EXIT_USAGE
    try:
        captioner = Captioner(args.weights, device=args.device)
    except ValueError as exc:  # an unavailable device
        print(f"photoscribe: {exc}", file=err)
        return EXIT_USAGE
    except PhotoScribeError as exc:
        print(f"photoscribe: {exc}", file=err)
        return EXIT_USAGE
    failed = 0
    photos: list[Path] = []
    for path, problem in expand_paths(args.paths, args.recursive):
        if problem:
            print(problem, file=err)
            failed += 1
        else:
            photos.append(path)
    settings = CaptionSettings(beam_size=args.beam, batch_size=args.batch_size)
    progress = Progress(len(photos), err)
    cancel = threading.Event()
    try:
        for result in captioner.caption_paths(photos, settings, cancel):
            progress.advance()
            if not result.ok:
                failed += 1
                if progress.enabled:
                    err.write("\r")
                print(result.error, file=err)
                continue
            if args.fmt == "jsonl":
                line = json.dumps(
                    {"path": str(result.path), "caption": result.caption, "score": result.score},
                    ensure_ascii=False,
                )
            else:
                line = f"{result.path}\t{result.caption}"
            print(line, file=out, flush=True)
    except KeyboardInterrupt:
        cancel.set()
        progress.close()
        print("photoscribe: interrupted", file=err)
        return 130
    progress.close()
    return EXIT_FAILED if failed else EXIT_OK


def run_export(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from core.export import export_captions

    if not args.folder.is_dir():
        print(f"photoscribe: {args.folder}: not a folder", file=err)
        return EXIT_USAGE
    target = args.output if args.output is not None else out
    n = export_captions(
        args.folder, recursive=args.recursive, fmt=args.fmt, out=target, bom=args.bom
    )
    print(f"exported {n} captions", file=err)
    return EXIT_OK


def run_gui(folder: str | None) -> int:
    try:
        # Imported here: Qt and the app are not needed by the headless commands.
        from desktop.app import run_app  # type: ignore[import-not-found]
    except ImportError:
        print(
            "photoscribe: the desktop app is not available in this build yet; "
            "use a subcommand such as `photoscribe caption PHOTO` (see --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return run_app(folder)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and not argv[0].startswith("-")):
        if len(argv) > 1:
            print("photoscribe: give at most one folder to open", file=sys.stderr)
            return EXIT_USAGE
        return run_gui(argv[0] if argv else None)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help/--version
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "caption":
        return run_caption(args)
    if args.command == "export":
        return run_export(args)
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
