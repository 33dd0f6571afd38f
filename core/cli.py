"""The `photoscribe` command: no arguments opens the app; subcommands work headless."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO, get_args

from core import __version__
from core.console import CaptionOutput, Progress, rounded
from core.console import say as _say
from core.datatypes import (
    DEVICE_CHOICES,
    EXPORT_FORMATS,
    PRECISION_ENV,
    PRECISIONS,
    STORE_KINDS,
    XMP_NAMES,
    CaptionSettings,
)
from core.logfile import log_to_file

if TYPE_CHECKING:  # only for annotations: the engine and its SQLite index load when used
    from core.engine import RunSummary

log = logging.getLogger(__name__)

SUBCOMMANDS = ("caption", "search", "index", "export")
OutputFormat = Literal["text", "jsonl"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


CAPTION_HELP = """\
Caption photos and print one line per photo captioned: PATH<TAB>CAPTION (or JSON Lines).

With --write, every caption is also saved (a .txt sidecar, an XMP sidecar, or inside the
photo) and recorded in the library index. Running the same command again then continues
where it stopped, after Ctrl+C, a crash or a power cut: photos already captioned are not
redone and nothing is left half-written. Later runs over the same folders caption only
photos that are new or changed; the photos skipped are counted, not listed. The summary at
the end (and --report FILE, as JSON) gives the numbers captioned, skipped and failed.

Every caption comes with the model's confidence, a number from 0 (probably wrong) to 1
(probably right); --format jsonl prints it. With --min-confidence C, only captions with a
confidence of at least C are printed and saved; the others are listed on stderr as left for
review (PATH: left for review (confidence X, below C): CAPTION) and counted in the summary,
and the next run captions those photos again.

The index is a database in your user data folder (or --index FILE, or $PHOTOSCRIBE_INDEX);
it also makes `photoscribe search` work. It is never the only copy of a caption: the store
you chose holds every one, and `photoscribe index` rebuilds the index from the stores.
Without --write nothing is saved and no index is kept.

Hidden and system folders (.git, .thumbnails, @eaDir, .Trash-*, $RECYCLE.BIN, ...) are
skipped, folders that may not be opened are reported, and captioning starts while the
folders are still being scanned.
"""


def _caption_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "caption",
        help="caption photos and print (and optionally save) the captions",
        description=CAPTION_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="photos or folders")
    p.add_argument("-r", "--recursive", action="store_true", help="include subfolders")
    p.add_argument("--beam", type=int, default=3, help="beam size; 1 = greedy (default 3)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help=f"the image encoder's arithmetic: fp32 (the default, or ${PRECISION_ENV}) gives the same "
        "captions on every computer; auto uses the device's fastest reduced precision (bf16 on "
        "CPUs that have it, fp16 on CUDA), whose captions can differ between kinds of CPU",
    )
    p.add_argument("--batch-size", type=int, default=CaptionSettings().batch_size)
    p.add_argument("--weights", type=Path, default=None, help="model file (default: shipped)")
    p.add_argument("--format", choices=OUTPUT_FORMATS, default="text", dest="fmt")
    p.add_argument(
        "--write",
        choices=("none", *STORE_KINDS),
        default="none",
        help="also save each caption: text sidecar, XMP sidecar or embedded metadata",
    )
    p.add_argument(
        "--xmp-name",
        choices=XMP_NAMES,
        default="photo.jpg.xmp",
        help="XMP sidecar naming (darktable/digiKam or Lightroom style)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing captions (except those this model already wrote)",
    )
    p.add_argument(
        "--skip-captioned", action="store_true", help="skip photos with a caption in any store"
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        metavar="C",
        help="keep only captions the model is at least this sure of (0 to 1); list the others "
        "on stderr for review",
    )
    p.add_argument(
        "--report", type=Path, default=None, metavar="FILE", help="also write the summary as JSON"
    )
    _index_option(p)


def _index_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--index",
        type=Path,
        default=None,
        metavar="FILE",
        help="library index file (default: $PHOTOSCRIBE_INDEX or the user data folder)",
    )


def _search_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="find photos by their captions",
        description="Find captioned photos whose captions match the words of QUERY, best "
        "matches first, and print their paths. Searches the whole library index, or only "
        "FOLDER (with its subfolders). Exits 1 when nothing matches.",
    )
    p.add_argument("query", metavar="QUERY", help='words to look for, e.g. "dog on a beach"')
    p.add_argument("folder", nargs="?", type=Path, default=None, metavar="FOLDER")
    p.add_argument("--limit", type=int, default=50, help="at most this many photos (default 50)")
    p.add_argument("--format", choices=OUTPUT_FORMATS, default="text", dest="fmt")
    _index_option(p)


def _index_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="rebuild the library index from the captions stored in sidecars and photos",
        description="Read the captions stored for the photos under PATH (embedded, XMP and "
        "text sidecars) into the library index, so that search finds them and `photoscribe "
        "caption --write` skips them. Use it after the index was lost or damaged (a damaged "
        "file is moved aside), or for photos captioned by other programs. Nothing is captioned "
        "and no photo is changed.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders or photos")
    p.add_argument("-r", "--recursive", action="store_true", help="include subfolders")
    p.add_argument("--xmp-name", choices=XMP_NAMES, default="photo.jpg.xmp")
    _index_option(p)


def _export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the captions stored for the photos in a folder")
    p.add_argument("folder", type=Path)
    p.add_argument("-r", "--recursive", action="store_true")
    p.add_argument("--format", choices=EXPORT_FORMATS, required=True, dest="fmt")
    p.add_argument("-o", "--output", type=Path, default=None, help="file (default or -: stdout)")
    p.add_argument("--bom", action="store_true", help="CSV: add a UTF-8 BOM for spreadsheets")
    p.add_argument("--xmp-name", choices=XMP_NAMES, default="photo.jpg.xmp")
    _index_option(p)  # where the confidences and "reviewed" come from


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="photoscribe",
        description="Offline captions for your photos. Without a subcommand, opens the app.",
    )
    parser.add_argument("--version", action="version", version=f"photoscribe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation without a display: load the shipped model, caption a "
        "sample photo, save a caption in a temporary copy; exit 0 when all is well",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _caption_parser(sub)
    _search_parser(sub)
    _index_parser(sub)
    _export_parser(sub)
    return parser


def missing_paths(paths: Sequence[Path]) -> list[Path]:
    """The paths named on the command line that are not there (a broken link counts)."""
    return [path for path in paths if not path.exists()]


def say_missing(err: TextIO, paths: Sequence[Path]) -> int:
    """One wording and one exit status (a usage error) for every command."""
    for path in paths:
        _say(err, f"photoscribe: {path}: no such file or folder")
    return EXIT_USAGE


@contextlib.contextmanager
def stop_on_signals(cancel: threading.Event, err: TextIO) -> Iterator[None]:
    """Ctrl+C (and SIGTERM) ask the run to stop after the current batch; a second one stops
    at once. Only the main thread can receive signals, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        _say(
            err,
            "\nphotoscribe: stopping after the current photos are saved "
            "(press Ctrl+C again to stop at once)",
        )

    signals = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def summary_text(summary: RunSummary, overwrite: bool, min_confidence: float | None = None) -> str:
    review = ""
    if summary.for_review:
        review = f"left for review {summary.for_review} (see above), "
    elif min_confidence is not None:
        review = "left for review 0, "
    # A rate only where photos were captioned: skipping is not captioning.
    rate = f" ({summary.images_per_second:.2f} images/s)" if summary.captioned else ""
    text = (
        f"photoscribe: captioned {summary.captioned}, {review}skipped {summary.skipped}, "
        f"failed {summary.failed} in {summary.seconds:.1f} s{rate}"
    )
    if where := summary.saved_where():
        text += f"; {where} (writing inside those was not safe, or not possible)"
    if summary.skipped and summary.store is not None and not overwrite:
        text += (
            "; skipped photos already have a caption (--overwrite replaces those "
            "this model did not write)"
        )
    if summary.problems:
        text += f"; {len(summary.problems)} folder(s) could not be opened (see above)"
    return text


def run_caption(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    from core.engine import LibraryEngine, LibraryJob
    from core.errors import LibraryIndexError, PhotoScribeError
    from core.inference import Captioner
    from core.storage.files import atomic_write

    out = out or sys.stdout
    err = err or sys.stderr
    if args.beam < 1 or args.batch_size < 1:
        _say(err, "photoscribe: --beam and --batch-size must be at least 1")
        return EXIT_USAGE
    least = args.min_confidence
    if least is not None and not 0.0 <= least <= 1.0:  # also refuses nan
        _say(err, f"photoscribe: --min-confidence must be between 0 and 1 (got {least:g})")
        return EXIT_USAGE
    # A path that is not there is reported and the others are captioned (exit 1, as for a
    # photo that fails); only when none is left is there nothing to do.
    paths = [Path(p) for p in args.paths]
    missing = missing_paths(paths)
    say_missing(err, missing)  # its exit status is for commands that stop on a missing path
    roots = tuple(p for p in paths if p not in missing)
    if not roots:
        return EXIT_FAILED
    try:
        captioner = Captioner(args.weights, device=args.device, precision=args.precision)
    except PhotoScribeError as exc:  # a bad model file, none installed
        _say(err, f"photoscribe: {exc.for_cli()}")
        return EXIT_USAGE
    except ValueError as exc:  # an unavailable device, a bad $PHOTOSCRIBE_PRECISION
        _say(err, f"photoscribe: {exc}")
        return EXIT_USAGE
    job = LibraryJob(
        roots=roots,
        recursive=args.recursive,
        store=None if args.write == "none" else args.write,
        xmp_name=args.xmp_name,
        overwrite=args.overwrite,
        skip_captioned=args.skip_captioned,
        settings=CaptionSettings(beam_size=args.beam, batch_size=args.batch_size),
        min_confidence=least,
    )
    engine = LibraryEngine(captioner, index_path=args.index)
    progress = Progress(None, err)
    output = CaptionOutput(out, err, args.fmt, progress)
    cancel = threading.Event()
    try:
        with stop_on_signals(cancel, err):
            summary = engine.run(job, cancel, output)
    except KeyboardInterrupt:
        progress.close()
        _say(err, "photoscribe: interrupted; photos already saved keep their captions")
        return EXIT_INTERRUPTED
    except LibraryIndexError as exc:
        progress.close()
        _say(err, f"photoscribe: {exc.for_cli()}")
        return EXIT_FAILED
    progress.close()
    _say(err, summary_text(summary, args.overwrite, least))
    if args.report is not None:
        try:
            atomic_write(args.report, summary.to_json().encode("utf-8"))
        except PhotoScribeError as exc:
            _say(err, f"photoscribe: could not write the report: {exc}")
            return EXIT_FAILED
    if summary.cancelled:
        _say(
            err,
            "photoscribe: stopped; captions saved so far are kept"
            + ("; run the same command again to continue" if job.store else ""),
        )
        return EXIT_INTERRUPTED
    return EXIT_FAILED if summary.failed or missing else EXIT_OK


def run_search(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    from core.errors import LibraryIndexError
    from core.index import search_library

    out = out or sys.stdout
    err = err or sys.stderr
    if args.limit < 1:
        _say(err, "photoscribe: --limit must be at least 1")
        return EXIT_USAGE
    if args.folder is not None and (missing := missing_paths([args.folder])):
        return say_missing(err, missing)
    if args.folder is not None and not args.folder.is_dir():
        _say(err, f"photoscribe: {args.folder}: not a folder")
        return EXIT_USAGE
    try:
        hits = search_library(args.query, args.folder, args.limit, args.index)
    except LibraryIndexError as exc:
        _say(err, f"photoscribe: {exc.for_cli()}")
        return EXIT_FAILED
    for hit in hits:
        if args.fmt == "jsonl":
            line = json.dumps(
                {
                    "path": str(hit.path),
                    "caption": hit.caption,
                    "store": hit.store,
                    "rank": hit.rank,
                    "confidence": rounded(hit.confidence),
                },
                ensure_ascii=False,
            )
        else:
            line = str(hit.path)
        out.write(line.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
    out.flush()
    if not hits:
        _say(err, f"photoscribe: no captioned photo matches {args.query!r}")
        return EXIT_FAILED
    return EXIT_OK


def run_index(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    from core.engine import IndexReplaced, PhotoFailed, rebuild_index
    from core.errors import LibraryIndexError
    from core.library import ScanProblem

    err = err or sys.stderr

    def report(event: object) -> None:
        if isinstance(event, PhotoFailed | ScanProblem):
            _say(err, event.reason)
        elif isinstance(event, IndexReplaced):
            _say(err, f"photoscribe: {event.path}: {event.reason} Moved it to {event.moved_to}.")

    roots = tuple(Path(p) for p in args.paths)
    if missing := missing_paths(roots):
        return say_missing(err, missing)
    cancel = threading.Event()
    try:
        with stop_on_signals(cancel, err):
            summary = rebuild_index(
                roots,
                args.recursive,
                index_path=args.index,
                xmp_name=args.xmp_name,
                cancel=cancel,
                on_event=report,
            )
    except KeyboardInterrupt:
        _say(err, "photoscribe: interrupted")
        return EXIT_INTERRUPTED
    except LibraryIndexError as exc:
        _say(err, f"photoscribe: {exc.for_cli()}")
        return EXIT_FAILED
    _say(
        err,
        f"photoscribe: indexed {summary.indexed} captioned photo(s); {summary.uncaptioned} "
        f"without a caption, {summary.failed} unreadable, in {summary.seconds:.1f} s",
    )
    if summary.cancelled:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if summary.failed else EXIT_OK


def run_export(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    from core.errors import PhotoScribeError
    from core.export import export_captions
    from core.storage import all_stores

    out = out or sys.stdout
    err = err or sys.stderr
    if missing := missing_paths([args.folder]):
        return say_missing(err, missing)
    if not args.folder.is_dir():
        _say(err, f"photoscribe: {args.folder}: not a folder")
        return EXIT_USAGE
    if args.bom and args.fmt != "csv":
        _say(err, "photoscribe: --bom only applies to --format csv")
        return EXIT_USAGE
    to_file = args.output is not None and str(args.output) != "-"  # "-": standard output
    target = args.output if to_file else out
    try:
        n = export_captions(
            args.folder,
            recursive=args.recursive,
            fmt=args.fmt,
            out=target,
            bom=args.bom,
            stores=all_stores(args.xmp_name),
            index_path=args.index,
        )
    except PhotoScribeError as exc:
        _say(err, f"photoscribe: {exc}")
        return EXIT_FAILED
    _say(err, f"exported {n} caption(s)" + (f" to {args.output}" if to_file else ""))
    return EXIT_OK


def no_gui(folder: str | None) -> int:
    """Used when core runs without the desktop package (core never imports it)."""
    print(
        "photoscribe: the desktop app is not available in this installation; "
        "use a subcommand such as `photoscribe caption PHOTO` (see --help)",
        file=sys.stderr,
    )
    return EXIT_USAGE


def main(
    argv: Sequence[str] | None = None,
    gui: Callable[[str | None], int] = no_gui,
    self_test_photos: Sequence[Path] = (),
) -> int:
    """Run a subcommand; with no arguments or a single folder, call `gui` (the desktop app).

    The `photoscribe` entry point (desktop.launcher) passes the real app as `gui`, and the
    app's sample photos as the photos `--self-test` captions.
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
    log_to_file()  # the image libraries' messages: the log file, not the terminal
    if args.self_test:
        if args.command is not None:
            print("photoscribe: --self-test takes no subcommand", file=sys.stderr)
            return EXIT_USAGE
        from core.selftest import run_self_test  # torch: loaded only when asked for

        return run_self_test(photo_folders=self_test_photos)
    if args.command == "caption":
        return run_caption(args)
    if args.command == "search":
        return run_search(args)
    if args.command == "index":
        return run_index(args)
    if args.command == "export":
        return run_export(args)
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
