"""Benchmark: what the image-text matcher (core.matcher) adds to captioning a batch, in CPU time
per photo, measured in one process with the matcher on and off in turn; writes JSON.

python -m tests.benchmarks.matcher_cost [--weights FILE] [--photos 32] [--rounds 5]
                                        [--out runs/bench_matcher_cost.json]

CPU time of one torch thread, not wall time, so other work on a shared machine moves it little;
the rounds alternate so drift hits both arms alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from core.datatypes import CaptionSettings
from core.inference import Captioner, with_matches
from tests.benchmarks.report import load_average, machine, write_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--photos", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_matcher_cost.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    captioner = Captioner(args.weights, device="cpu", precision="fp32")
    matcher = captioner.matcher
    if matcher is None:
        raise SystemExit("this model file has no image-text matcher")
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.photos, 3, 224, 224), dtype=torch.uint8, generator=g)
    settings = CaptionSettings(beam_size=3, batch_size=args.photos)
    load_before = load_average()
    captioner.caption_batch(images, settings)  # warm-up (and the datastore's frequencies)
    on, off, alone = [], [], []
    for _ in range(args.rounds):
        for arm, times in ((matcher, on), (None, off)):
            captioner.matcher = arm
            t = time.process_time()
            found = captioner.caption_batch(images, settings)
            times.append((time.process_time() - t) / args.photos * 1000)
        # The matcher's own step on these candidates and their photos' pooled features.
        _, _, pooled = captioner._encode(images)
        cands = [list(c) for c, _ in found]
        t = time.process_time()
        with_matches(matcher, captioner.vocab, cands, pooled)
        alone.append((time.process_time() - t) / args.photos * 1000)
    captioner.matcher = matcher
    report = {
        "what": "CPU ms per photo (one torch thread, fp32, beam 3, batch of "
        f"{args.photos} 224x224 photos) of Captioner.caption_batch with and without the "
        "image-text matcher, rounds alternated; and of the matcher's own step",
        "machine": machine(torch_threads=1),
        "weights": str(captioner.checkpoint.path),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "with_matcher_ms": round(statistics.median(on), 2),
        "without_matcher_ms": round(statistics.median(off), 2),
        "matcher_step_ms": round(statistics.median(alone), 3),
        "rounds": {"with": on, "without": off, "matcher_step": alone},
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
