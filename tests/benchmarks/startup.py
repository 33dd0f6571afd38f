"""Benchmark: time from launching PhotoScribe to its main window being painted; writes JSON.

python -m tests.benchmarks.startup [--app dist/photoscribe/photoscribe] [--runs 5]
                                   [--out runs/bench_startup.json]

Launches `APP --smoke-gui` (a first start on temporary settings, which closes itself once the
main window is painted) several times after one warm-up launch, so the disk cache is warm, and
reports each launch's time to the window and to the process's exit. --app defaults to the
packaged app when it has been built, else to the venv's `photoscribe`. Without a display it
uses Qt's offscreen platform.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.benchmarks.report import load_average, machine, write_report

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "dist" / "photoscribe" / "photoscribe"
DEVELOPMENT = Path(sys.executable).parent / "photoscribe"


def launch(app: Path, env: dict[str, str]) -> dict[str, float]:
    """One launch: seconds to the first paint of the main window and to the process's exit."""
    started = time.time()
    done = subprocess.run(
        [str(app), "--smoke-gui"], env=env, capture_output=True, text=True, timeout=300
    )
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"{app} --smoke-gui failed ({done.returncode}):\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "window_s": round(report["shown_at"] - started, 3),
        "exit_s": round(ended - started, 3),
        "platform": report["platform"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app", type=Path, default=PACKAGED if PACKAGED.exists() else DEVELOPMENT)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_startup.json")
    args = ap.parse_args(argv)

    env = dict(os.environ)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    load_before = load_average()
    launch(args.app, env)  # warm-up: brings the files into the disk cache
    runs = [launch(args.app, env) for _ in range(args.runs)]
    windows = [r["window_s"] for r in runs]
    report = {
        "app": str(args.app),
        "packaged": args.app.resolve() == PACKAGED.resolve(),
        "qt_platform": runs[0]["platform"],
        "runs": runs,
        "window_s_median": statistics.median(windows),
        "window_s_min": min(windows),
        "window_s_max": max(windows),
        "exit_s_median": statistics.median(r["exit_s"] for r in runs),
        "target_window_s": 3.0,
        "machine": machine(load_average_before=load_before),
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
