"""The `photoscribe` command: no arguments opens the app; subcommands work headless."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
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


def _say(err: TextIO, text: str) -> None:
    """Print a message even when a file name in it is not valid UTF-8."""
    err.write(text.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
    err.flush()


def run_caption(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    from core.errors import CaptionExistsError, PhotoScribeError
    from core.inference import Captioner, CaptionSettings
    from core.storage import FileIdentity, all_stores, make_store, read_caption_any

    out = out or sys.stdout
    err = err or sys.stderr
    if args.beam < 1 or args.batch_size < 1:
        _say(err, "photoscribe: --beam and --batch-size must be at least 1")
        return EXIT_USAGE
    try:
        captioner = Captioner(args.weights, device=args.device)
    except (ValueError, PhotoScribeError) as exc:  # an unavailable device, a bad model file
        _say(err, f"photoscribe: {exc}")
        return EXIT_USAGE
    target = make_store(args.write, args.xmp_name) if args.write != "none" else None
    stores = all_stores(args.xmp_name)
    failed = skipped = 0
    photos: list[Path] = []
    identities: dict[Path, FileIdentity] = {}
    for path, problem in expand_paths(args.paths, args.recursive):
        if problem:
            _say(err, problem)
            failed += 1
            continue
        try:
            if args.skip_captioned and read_caption_any(path, stores) is not None:
                skipped += 1
                continue
            if target is not None and not args.overwrite and target.read(path) is not None:
                _say(
                    err,
                    f"{path}: already has a caption ({args.write}); use --overwrite to replace it",
                )
                skipped += 1
                continue
            identities[path] = FileIdentity.of(path)
        except PhotoScribeError as exc:
            if target is not None:  # cannot tell whether saving would overwrite: leave it alone
                _say(err, str(exc))
                failed += 1
                continue
        except OSError as exc:
            _say(err, f"{path}: cannot read the file ({exc.strerror})")
            failed += 1
            continue
        photos.append(path)
    settings = CaptionSettings(beam_size=args.beam, batch_size=args.batch_size)
    progress = Progress(len(photos), err)
    cancel = threading.Event()
    try:
        for result in captioner.caption_paths(photos, settings, cancel):
            progress.advance()
            if progress.enabled:
                err.write("\r\033[K")
            if not result.ok:
                failed += 1
                _say(err, result.error or f"{result.path}: failed")
                continue
            if args.fmt == "jsonl":
                line = json.dumps(
                    {"path": str(result.path), "caption": result.caption, "score": result.score},
                    ensure_ascii=False,
                )
            else:
                line = f"{result.path}\t{result.caption}"
            out.write(line.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
            out.flush()
            if target is not None and result.caption:
                try:
                    saved = target.write(
                        result.path,
                        result.caption,
                        expected=identities.get(result.path),
                        overwrite=args.overwrite,
                    )
                    if saved.message:
                        _say(err, f"{result.path}: {saved.message}")
                except CaptionExistsError as exc:
                    _say(err, str(exc))
                    skipped += 1
                except PhotoScribeError as exc:
                    _say(err, str(exc))
                    failed += 1
    except KeyboardInterrupt:
        cancel.set()
        progress.close()
        _say(err, "photoscribe: interrupted; photos already saved keep their captions")
        return 130
    progress.close()
    if skipped:
        _say(err, f"skipped {skipped} photo(s) that already have a caption")
    return EXIT_FAILED if failed else EXIT_OK


def run_export(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    from core.errors import PhotoScribeError
    from core.export import export_captions
    from core.storage import all_stores

    out = out or sys.stdout
    err = err or sys.stderr
    if not args.folder.is_dir():
        _say(err, f"photoscribe: {args.folder}: not a folder")
        return EXIT_USAGE
    if args.bom and args.fmt != "csv":
        _say(err, "photoscribe: --bom only applies to --format csv")
        return EXIT_USAGE
    target = args.output if args.output is not None else out
    try:
        n = export_captions(
            args.folder,
            recursive=args.recursive,
            fmt=args.fmt,
            out=target,
            bom=args.bom,
            stores=all_stores(args.xmp_name),
        )
    except PhotoScribeError as exc:
        _say(err, f"photoscribe: {exc}")
        return EXIT_FAILED
    _say(err, f"exported {n} caption(s)" + (f" to {args.output}" if args.output else ""))
    return EXIT_OK


def no_gui(folder: str | None) -> int:
    """Used when core runs without the desktop package (core never imports it)."""
    print(
        "photoscribe: the desktop app is not available in this installation; "
        "use a subcommand such as `photoscribe caption PHOTO` (see --help)",
        file=sys.stderr,
    )
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None, gui: Callable[[str | None], int] = no_gui) -> int:
    """Run a subcommand; with no arguments or a single folder, call `gui` (the desktop app).

    The `photoscribe` entry point (desktop.launcher) passes the real app as `gui`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and not argv[0].startswith("-")):
        if len(argv) > 1:
            print("photoscribe: give at most one folder to open", file=sys.stderr)
            return EXIT_USAGE
        return gui(argv[0] if argv else None)
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
