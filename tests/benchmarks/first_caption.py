"""Benchmark: how long the first caption takes with the shipped model, in the app and on the
command line, and how long the window stalls meanwhile; writes JSON.

python -m tests.benchmarks.first_caption [--runs 3] [--out runs/bench_first_caption.json]

Each run is a new process, as a user's first caption of a session is (the disk cache warm from
one warm-up run):

- window: a real main window (Qt's offscreen platform unless QT_QPA_PLATFORM is set) on a copy
  of the app's sample photos, with its own settings, cache and index in a temporary folder.
  Caption Folder is triggered once the folder is listed; it measures the seconds until the first
  caption reaches the grid, until the batch has finished, and the longest gap between ticks of a
  10 ms timer on the GUI thread meanwhile (the inference thread imports torch and loads the
  model then, on the first Caption of the session).
- command line: the wall time of `photoscribe caption --device cpu PHOTO` on one sample photo,
  from launch to exit (Python, torch and the model loaded, one caption printed), with its
  library index in a temporary folder too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.report import load_average, machine, write_report

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "desktop" / "resources" / "samples"
TICK_MS = 10


def window_run() -> dict:
    """In this process: the main window's first Caption Folder (see the module's docstring)."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.environment import AppEnvironment
    from desktop.main_window import MainWindow
    from tests.desktop.conftest import FakePrompts

    _app = QApplication.instance() or QApplication(sys.argv[:1])  # kept alive while it runs
    home = Path(tempfile.mkdtemp(prefix="photoscribe-bench-"))
    folder = home / "Photos"
    folder.mkdir()
    for photo in SAMPLES.glob("*.jpg"):
        shutil.copy(photo, folder / photo.name)
    env = AppEnvironment(
        settings_path=home / "settings.ini",
        cache_dir=home / "cache",
        data_dir=home / "data",
        index_path=home / "library.sqlite3",  # never the user's own library index
    )
    window = MainWindow(env, FakePrompts())
    window.resize(1280, 800)
    window.show()

    def wait(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    try:
        window.open_folder(folder)
        started = time.perf_counter()
        while window.photos.rowCount() < 5 and time.perf_counter() - started < 30:
            wait(20)
        wait(500)  # thumbnails settle
        gaps: list[float] = []
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        timer = QTimer()
        timer.timeout.connect(tick)
        timer.start(TICK_MS)
        t0 = time.perf_counter()
        first = None
        window.commands.caption_folder.trigger()
        while time.perf_counter() - t0 < 120:
            wait(5)
            if first is None and any(p.caption for p in window.photos.photos()):
                first = time.perf_counter() - t0
            if first is not None and not window.session.batches.running:
                break
        finished = time.perf_counter() - t0
        timer.stop()
        if first is None:
            raise SystemExit("no caption arrived within 120 s")
        return {
            "first_caption_s": round(first, 3),
            "batch_of_5_s": round(finished, 3),
            "worst_gap_ms": round(max(gaps) * 1000, 1),
            "ticks_over_100_ms": sum(g > 0.1 for g in gaps),
            "ticks_over_50_ms": sum(g > 0.05 for g in gaps),
            "ticks": len(gaps),
            "torchvision_imported": "torchvision" in sys.modules,
        }
    finally:
        window.shutdown()
        shutil.rmtree(home, ignore_errors=True)


def in_new_process(env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.first_caption", "--window-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"the window run failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def command_line_run(photo: Path, env: dict[str, str]) -> float:
    app = Path(sys.executable).parent / "photoscribe"
    started = time.perf_counter()
    done = subprocess.run(
        [str(app), "caption", "--device", "cpu", str(photo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0 or "\t" not in done.stdout:
        raise SystemExit(f"photoscribe caption failed ({done.returncode}):\n{done.stderr}")
    return round(seconds, 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_first_caption.json")
    ap.add_argument("--window-run", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.window_run:
        print(json.dumps(window_run()))
        return 0

    import torch

    env = dict(os.environ)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    load_before = load_average()
    scratch = Path(tempfile.mkdtemp(prefix="photoscribe-bench-"))
    env["PHOTOSCRIBE_INDEX"] = str(scratch / "library.sqlite3")  # not the user's own index
    try:
        photo = scratch / "burger.jpg"
        shutil.copy(SAMPLES / "burger.jpg", photo)
        in_new_process(env)  # warm-up: the disk cache
        command_line_run(photo, env)
        windows = [in_new_process(env) for _ in range(args.runs)]
        command_line = [command_line_run(photo, env) for _ in range(args.runs)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {
        "model": "shipped (core/weights/photoscribe-b0.safetensors), on the CPU",
        "window": {
            "runs": windows,
            "first_caption_s_median": statistics.median(r["first_caption_s"] for r in windows),
            "worst_gap_ms_max": max(r["worst_gap_ms"] for r in windows),
            "ticks_over_100_ms_max": max(r["ticks_over_100_ms"] for r in windows),
        },
        "command_line": {
            "runs_s": command_line,
            "median_s": statistics.median(command_line),
        },
        "machine": machine(
            torch=torch.__version__,
            qt_platform=env.get("QT_QPA_PLATFORM", "(display)"),
            load_average_before=load_before,
            load_average_after=load_average(),
        ),
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
