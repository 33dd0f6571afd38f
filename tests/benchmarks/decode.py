"""Benchmark: 12 MP JPEGs decoded into the model's input, in this process (as before the reader
processes) and through them (core.isolation, as the app and the command line do); writes JSON.

python -m tests.benchmarks.decode [--images 24] [--threads 1 2] [--rounds 3]
                                  [--out runs/bench_decode.json]

Each figure is photos per second of wall time with that many decode threads, the best of
``--rounds`` passes (the readers started and warm beforehand, as they are after the first
thumbnails or photo). The two ways alternate pass by pass, so a machine whose load drifts
affects both alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.images import isolated_load_for_model, load_for_model
from core.isolation import reader_pool
from tests.benchmarks.inference import make_photos
from tests.benchmarks.report import load_average, machine, write_report


def rate(load, paths: list[Path], threads: int) -> float:
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(load, paths):
            pass
    return len(paths) / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--photos-dir", type=Path, default=Path("runs/bench_photos"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench_decode.json"))
    args = ap.parse_args(argv)

    load_before = load_average()
    paths = make_photos(args.photos_dir, args.images)
    pool = reader_pool()
    pool.reserve(max(args.threads))
    pool.warm()
    for p in paths[: max(args.threads)]:  # every reader has answered once
        isolated_load_for_model(p)
        load_for_model(p)
    results = {}
    for threads in args.threads:
        here, readers = [], []
        for _ in range(args.rounds):
            here.append(rate(load_for_model, paths, threads))
            readers.append(rate(isolated_load_for_model, paths, threads))
        results[f"{threads}_threads"] = {
            "in_process_photos_per_s": round(max(here), 2),
            "reader_processes_photos_per_s": round(max(readers), 2),
            "readers_vs_in_process": round(max(readers) / max(here), 3),
        }
    report = {
        "machine": machine(load_average_before=load_before, load_average_after=load_average()),
        "file": "4000x3000 JPEG q90, generated; decoded at 1/8 scale and resized to 224x224",
        "images": args.images,
        "decode": results,
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
