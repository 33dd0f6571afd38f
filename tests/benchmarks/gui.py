"""Benchmark: how responsive the main window stays with big folders and long batches; writes JSON.

python -m tests.benchmarks.gui [--photos 1000] [--browse-photos 10000] [--second-run-photos 5000]
                               [--cancel-runs 3] [--model tiny|shipped] [--batch-size N]
                               [--out runs/bench_gui.json]

Runs a real MainWindow (Qt's offscreen platform unless QT_QPA_PLATFORM is set) on photos
generated in a temporary folder, with its settings, thumbnail cache and library index there
too, and measures:

- browse: seconds from opening a folder of 10,000 photos until the grid's model has them all
  (and until every stored caption has been looked up), and the longest gap between ticks of a
  10 ms timer (how long the GUI thread stalled) while listing and while scrolling the grid top
  to bottom in 20 jumps;
- batch: captioning N photos: the longest gap, the ticks over 100 ms and photos per second;
- cancel: seconds from triggering Cancel to the batch having stopped (median of a few runs);
- second_run: the longest gap while a second run over 5,000 photos captioned before skips
  them (and captions 3 new ones).

The model is the captioner the desktop tests use for big batches (tests.desktop.conftest's
fast_captioner): a cheap stand-in for the EfficientNet-B0 image encoder and the decoder of
either a tiny random checkpoint built as tests/conftest.py builds it (--model tiny, the default)
or of the shipped model (--model shipped). So the numbers are about the GUI, not the model.
These are measurements, not pass/fail checks: the tests only check behaviour.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tests.benchmarks.report import load_average, machine

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "core" / "weights" / "photoscribe-b0.safetensors"


class GapMeter:
    """Records the gaps between ticks of a 10 ms timer: how long the GUI thread stalled."""

    def __init__(self, interval_ms: int = 10) -> None:
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self.ends: list[float] = []  # when each gap ended, seconds after start()
        self._started = 0.0
        self._last: float | None = None
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append(now - self._last)
            self.ends.append(now - self._started)
        self._last = now

    def start(self) -> None:
        self.gaps, self.ends = [], []
        self._started = self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> dict[str, float | int]:
        self.timer.stop()
        return self.summary()

    def summary(self) -> dict[str, float | int]:
        gaps = sorted(self.gaps) or [0.0]
        worst_at = self.ends[self.gaps.index(gaps[-1])] if self.gaps else 0.0
        return {
            "worst_gap_ms": round(gaps[-1] * 1000, 1),
            "worst_gap_ended_at_s": round(worst_at, 3),
            "p99_gap_ms": round(gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))] * 1000, 1),
            "median_gap_ms": round(statistics.median(gaps) * 1000, 1),
            "ticks": len(self.gaps),
            "ticks_over_100_ms": sum(1 for g in self.gaps if g > 0.1),
        }


def spin(seconds: float) -> None:
    """Run the Qt event loop for ``seconds``, as pytest-qt's qtbot.wait does.

    Not QTest.qWait: PySide6's holds the GIL while it sleeps between rounds of events, which
    starves the app's Python threads (decoding, inference, writing) about tenfold.
    """
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(max(1, round(seconds * 1000)), loop.quit)
    loop.exec()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Spin the Qt event loop until ``predicate()``; the seconds it took. Raises on timeout."""
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        spin(0.01)
    return time.perf_counter() - started


def all_loaded(window) -> bool:
    """Every photo listed has had its stored caption looked up (open_and_wait's condition)."""
    return window.photos.rowCount() > 0 and all(p.loaded for p in window.photos.photos())


def idle(window) -> bool:
    """Every batch asked for has finished and every write is reported (wait_idle's condition)."""
    session = window.session
    return (
        session.batches.batches_finished == session.batches.batches_started
        and not window.session.batches.running
        and session.writer.pending == 0
        and not any(p.saving or p.working for p in window.photos.photos())
    )


def caption_folder_measured(window, timeout: float, what: str) -> tuple[float, dict]:
    """Trigger Caption Folder and wait for the run to end, watching the event loop: its seconds
    and the gap summary (GapMeter)."""
    meter = GapMeter()
    meter.start()
    started = time.perf_counter()
    window.commands.caption_folder.trigger()
    wait_until(lambda: idle(window), timeout, what)
    took = time.perf_counter() - started
    return took, meter.stop()


def tiny_checkpoint(folder: Path) -> Path:
    """A tiny random checkpoint, made as tests/conftest.py makes it."""
    import torch

    threads = torch.get_num_threads()
    from core.checkpoint import save_checkpoint
    from core.model import CaptionModel
    from core.vocab import SPECIALS, Vocab
    from tests.conftest import TINY_WORDS, tiny_config

    torch.set_num_threads(threads)  # tests/conftest.py sets one thread for the tests

    vocab = Vocab(SPECIALS + tuple(TINY_WORDS))
    torch.manual_seed(0)
    model = CaptionModel(tiny_config(vocab)).eval()
    path = folder / "tiny.safetensors"
    save_checkpoint(path, model, vocab, {"data": "random weights for the GUI benchmark"})
    return path


def small_photos(folder: Path, count: int, kinds: int, width: int, height: int) -> Path:
    """``count`` photos in ``folder``: hard links to ``kinds`` generated JPEGs."""
    from tests.desktop.conftest import copy_photos
    from tests.imagegen import textured_image

    source = folder.with_name(folder.name + "-source")
    source.mkdir(parents=True, exist_ok=True)
    for i in range(kinds):
        quality = 80 if width >= 128 else 70
        textured_image(width, height, seed=i + 1).save(source / f"s{i}.jpg", quality=quality)
    copy_photos(source, folder, count)
    return folder


class Bench:
    """Makes main windows on one temporary home and runs the scenarios."""

    def __init__(self, home: Path, weights: Path, batch_size: int) -> None:
        from desktop.environment import AppEnvironment
        from tests.desktop.conftest import fast_captioner

        self.home = home
        self.batch_size = batch_size
        self.model_load_s: list[float] = []

        def timed_captioner(choice):
            started = time.perf_counter()
            captioner = fast_captioner(choice)
            self.model_load_s.append(time.perf_counter() - started)
            return captioner

        self.env = AppEnvironment(
            settings_path=home / "settings" / "photoscribe.ini",
            cache_dir=home / "cache",
            data_dir=home / "data",
            weights=weights,
            captioner_factory=timed_captioner,
        )

    def window(self, name: str):
        """A main window with its own thumbnail cache, shown, its start-up probe finished."""
        from desktop.main_window import MainWindow
        from desktop.settings import AppSettings
        from tests.desktop.conftest import FakePrompts

        env = replace(self.env, cache_dir=self.home / f"cache-{name}")
        window = MainWindow(env, FakePrompts())
        window.show()
        window.apply_settings(AppSettings(batch_size=self.batch_size))
        try:
            wait_until(
                lambda: window.status_line.shipped_model is not None, 60, "the start-up probe"
            )
        except TimeoutError:
            pass  # a failed probe only changes the status line
        return window

    def browse(self, count: int) -> dict:
        folder = small_photos(self.home / "browse", count, 1, 96, 72)
        window = self.window("browse")
        meter = GapMeter()
        try:
            meter.start()
            started = time.perf_counter()
            window.open_folder(folder)
            wait_until(lambda: window.photos.rowCount() == count, 120, f"{count} rows")
            listed = time.perf_counter() - started
            wait_until(lambda: all_loaded(window), 120, "stored captions looked up")
            loaded = time.perf_counter() - started
            listing = meter.stop()

            grid, bar = window.grid, window.grid.verticalScrollBar()
            rows_reached = 0
            meter.start()
            for step in range(1, 21):  # top to bottom in 20 jumps, as the test did
                bar.setValue(bar.maximum() * step // 20)
                spin(0.03)
                top = grid.indexAt(grid.viewport().rect().topLeft())
                if top.isValid():
                    rows_reached = max(rows_reached, window.filter.mapToSource(top).row())
            wait_until(lambda: window.session.thumbnails.idle, 120, "thumbnails")
            scrolling = meter.stop()
            last = window.filter.index(window.filter.rowCount() - 1, 0)
            last_on_screen = grid.viewport().rect().intersects(grid.visualRect(last))
            decoded = len(list(window.env.cache_dir.rglob("*.jpg")))
        finally:
            window.shutdown()
            window.close()
        return {
            "photos": count,
            "listed_s": round(listed, 3),
            "captions_looked_up_s": round(loaded, 3),
            "while_listing": listing,
            "while_scrolling": scrolling,
            # The furthest row at the top of the grid while scrolling, and whether the last
            # row was on screen at the end (see test_the_grid_stays_scrolled_to_the_bottom_... in
            # tests/desktop/test_browse.py).
            "scroll_top_row_reached": rows_reached,
            "scroll_ended_on_last_row": last_on_screen,
            "thumbnails_decoded": decoded,
        }

    def batch(self, count: int) -> dict:
        folder = small_photos(self.home / "batch", count, 4, 128, 96)
        window = self.window("batch")
        try:
            window.open_folder(folder)
            wait_until(lambda: all_loaded(window), 120, "stored captions looked up")
            loads_before = len(self.model_load_s)
            took, gaps = caption_folder_measured(window, 3600, "the batch")
            saved = len(list(folder.glob("*.txt")))
        finally:
            window.shutdown()
            window.close()
        load = sum(self.model_load_s[loads_before:])
        return {
            "photos": count,
            "saved": saved,
            "seconds": round(took, 2),
            "model_load_s": round(load, 3),
            "photos_per_s": round(count / took, 1),
            "photos_per_s_after_model_load": round(count / max(took - load, 1e-9), 1),
            **gaps,
        }

    def cancel(self, count: int, runs: int) -> dict:
        window = self.window("cancel")
        latencies, saved = [], []
        try:
            for run in range(runs):
                folder = small_photos(self.home / f"cancel{run}", count, 4, 128, 96)
                window.open_folder(folder)
                wait_until(lambda: all_loaded(window), 120, "stored captions looked up")
                window.commands.caption_folder.trigger()
                # Well into the batch, the model loaded: as a user would cancel.
                wait_until(
                    lambda: window.progress.meter.done >= 4 * self.batch_size, 600, "4 batches"
                )
                started = time.perf_counter()
                window.commands.cancel.trigger()
                wait_until(lambda: not window.session.batches.running, 60, "the batch to stop")
                latencies.append(time.perf_counter() - started)
                wait_until(lambda: idle(window), 60, "the writes")
                saved.append(len(list(folder.glob("*.txt"))))
        finally:
            window.shutdown()
            window.close()
        return {
            "photos": count,
            "runs": runs,
            "cancel_s": [round(s, 3) for s in latencies],
            "cancel_s_median": round(statistics.median(latencies), 3),
            "cancel_s_max": round(max(latencies), 3),
            "saved_before_stopping": saved,
        }

    def second_run(self, count: int) -> dict:
        from core.engine import rebuild_index
        from tests.imagegen import textured_image

        folder = small_photos(self.home / "second", count, 1, 96, 72)
        for path in folder.glob("*.jpg"):
            path.with_suffix(".txt").write_text("a photo captioned before", encoding="utf-8")
        rebuild_index((folder,), recursive=False)  # as a first run would have left it
        for i in range(3):
            textured_image(96, 72, seed=10 + i).save(folder / f"new{i}.jpg", quality=70)
        window = self.window("second")
        bunches: list[int] = []
        try:
            window.open_folder(folder)
            wait_until(lambda: all_loaded(window), 120, "stored captions looked up")
            window.session.captioning.events_arrived.connect(
                lambda events: bunches.append(len(events.events))
            )
            took, gaps = caption_folder_measured(window, 600, "the second run")
            message = window.statusBar().currentMessage()
        finally:
            window.shutdown()
            window.close()
        return {
            "photos_captioned_before": count,
            "new_photos": 3,
            "seconds": round(took, 2),
            "event_signals": len(bunches),
            "events": sum(bunches),
            "status": message,
            **gaps,
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=1000, help="photos in the batch measured")
    ap.add_argument("--browse-photos", type=int, default=10_000)
    ap.add_argument("--second-run-photos", type=int, default=5000)
    ap.add_argument("--cancel-runs", type=int, default=3)
    ap.add_argument("--model", choices=("tiny", "shipped"), default="tiny")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the app's")
    ap.add_argument(
        "--torch-threads", type=int, default=None, help="default: torch's, as in the app"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_gui.json")
    args = ap.parse_args(argv)

    if not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    home = Path(tempfile.mkdtemp(prefix="photoscribe-bench-gui-"))
    os.environ["PHOTOSCRIBE_INDEX"] = str(home / "index" / "library.db")  # never the user's

    import PySide6
    import torch
    from PySide6.QtWidgets import QApplication

    from desktop.settings import AppSettings

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    batch_size = args.batch_size or AppSettings().batch_size
    app = QApplication.instance() or QApplication([sys.argv[0]])
    if args.model == "shipped":
        if not SHIPPED.is_file():
            raise SystemExit(f"--model shipped: {SHIPPED} is not there")
        weights = SHIPPED
    else:
        weights = tiny_checkpoint(home)

    load_before = load_average()
    bench = Bench(home, weights, batch_size)
    started = time.perf_counter()
    results = {
        "browse": bench.browse(args.browse_photos),
        "batch": bench.batch(args.photos),
        "cancel": bench.cancel(args.photos, args.cancel_runs),
        "second_run": bench.second_run(args.second_run_photos),
    }
    report = {
        "settings": {
            "model": (
                f"{args.model}: "
                + (
                    "tiny random checkpoint (tests/conftest.py)"
                    if args.model == "tiny"
                    else f"{SHIPPED.relative_to(ROOT)}"
                )
                + "'s decoder, with tests.desktop.conftest.CheapBackbone as the image encoder"
            ),
            "device": "cpu",
            "batch_size": batch_size,
            "torch_threads": torch.get_num_threads(),
            "batch_photos": args.photos,
            "browse_photos": args.browse_photos,
            "second_run_photos": args.second_run_photos,
            "cancel_runs": args.cancel_runs,
            "tick_interval_ms": 10,
            "photos": "generated JPEGs, 96x72 (browse, second run) and 128x96 (batch, cancel)",
            "qt_platform": app.platformName(),
        },
        **results,
        "total_s": round(time.perf_counter() - started, 1),
        "machine": machine(
            pyside6=PySide6.__version__,
            torch=torch.__version__,
            load_average_before=load_before,
            load_average_after=load_average(),
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    b, c, s = results["browse"], results["cancel"], results["second_run"]
    batch = results["batch"]
    print(
        f"browse:     {b['photos']} photos listed in {b['listed_s']:.2f} s; worst gap "
        f"{b['while_listing']['worst_gap_ms']:.0f} ms listing, "
        f"{b['while_scrolling']['worst_gap_ms']:.0f} ms scrolling\n"
        f"batch:      {batch['photos']} photos at {batch['photos_per_s']:.0f}/s; worst gap "
        f"{batch['worst_gap_ms']:.0f} ms, {batch['ticks_over_100_ms']} of {batch['ticks']} "
        f"ticks over 100 ms\n"
        f"cancel:     median {c['cancel_s_median'] * 1000:.0f} ms, "
        f"worst {c['cancel_s_max'] * 1000:.0f} ms\n"
        f"second run: {s['events']} events in {s['event_signals']} signals, "
        f"{s['seconds']:.1f} s; worst gap {s['worst_gap_ms']:.0f} ms\n"
        f"wrote {args.out}"
    )
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
