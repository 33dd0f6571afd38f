"""Benchmark: do the captions depend on the machine? Captions both dev splits under each setting
that could change the numerics and compares them with fp32, batch 32, all cores; writes JSON.

python -m tests.benchmarks.agreement [--data ../shared/flickr8k] [--coco ../data/coco]
                                     [--limit N] [--weights FILE] [--frozen PATH]
                                     [--out runs/bench_agreement.json]

Compared with the reference (fp32 encoder, batch 32, torch on every core):
- the default path (no precision chosen, $PHOTOSCRIBE_PRECISION unset),
- bf16 and "auto" (where the CPU has native bf16: AVX512-BF16 or AMX),
- one torch thread (or two, when the reference runs on one: --threads 1),
- batch 1, and batch 7 (photos meet other neighbours in a batch, as in the app, whose batches
  start as photos arrive),
- with --frozen PATH, the packaged app's `photoscribe caption` on the same photos (captions only:
  the frozen app decodes its own files, so this also covers decoding).
For each: the share of photos with the identical caption, the largest and mean confidence
difference, and the photos per second of the model alone (photos decoded once, beforehand).
The captions that differ are listed (up to 20 per setting) so a near-tie can be told from a
real change. Dev photos are read from outside the project; nothing of them is written but
file names and captions in the report under runs/ (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from core.datatypes import PRECISION_ENV, CaptionSettings
from core.devices import cpu_supports_bf16
from core.images import load_for_model
from core.inference import Captioner
from tests.benchmarks.report import load_average, machine, write_report


@dataclass(frozen=True)
class Captions:
    """One setting's captions and confidences by photo name, and the model's rate."""

    caption: dict[str, str]
    confidence: dict[str, float]
    photos_per_s: float


def dev_photos(data: Path, coco: Path | None, limit: int | None) -> dict[str, list[Path]]:
    """The dev splits' photo files by split name (training.data's Corpus: the same splits
    `python -m training evaluate` scores)."""
    from training.data import Corpus  # only this benchmark needs the training package

    corpus = Corpus.load(data, coco if coco is not None and coco.is_dir() else None)
    return {name: [e.path for e in split][:limit] for name, split in corpus.dev.items() if split}


def decode_all(paths: list[Path]) -> torch.Tensor:
    return torch.stack([load_for_model(p) for p in paths])  # (N, 3, 224, 224) uint8


def caption_tensors(
    captioner: Captioner, names: list[str], images: torch.Tensor, batch_size: int
) -> Captions:
    settings = CaptionSettings(batch_size=batch_size)
    caption, confidence = {}, {}
    t = time.perf_counter()
    for lo in range(0, len(names), batch_size):
        found = captioner.caption_tensors(images[lo : lo + batch_size], settings)
        for name, cands in zip(names[lo : lo + batch_size], found, strict=True):
            caption[name] = cands[0].caption
            confidence[name] = captioner.confidence(cands)
    return Captions(caption, confidence, round(len(names) / (time.perf_counter() - t), 2))


def frozen_captions(program: Path, paths: list[Path]) -> Captions:
    """Captions of the packaged app's command line, by file name (default settings)."""
    with tempfile.TemporaryDirectory() as folder:
        listing = Path(folder) / "photos"
        listing.mkdir()
        for p in paths:  # one folder of links: one process, one model load
            (listing / f"{p.parent.name}__{p.name}").symlink_to(p)
        env = {k: v for k, v in os.environ.items() if k != PRECISION_ENV}
        t = time.perf_counter()
        out = subprocess.run(
            [str(program), "caption", str(listing), "--format", "jsonl"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        ).stdout
        seconds = time.perf_counter() - t
    caption, confidence = {}, {}
    for line in out.splitlines():
        row = json.loads(line)
        name = Path(row["path"]).name.split("__", 1)[1]
        caption[name], confidence[name] = row["caption"], row["confidence"]
    return Captions(caption, confidence, round(len(caption) / seconds, 2))


def compare(reference: Captions, other: Captions) -> dict:
    names = [n for n in reference.caption if n in other.caption]
    differ = [n for n in names if other.caption[n] != reference.caption[n]]
    deltas = [abs(other.confidence[n] - reference.confidence[n]) for n in names]
    return {
        "photos": len(names),
        "missing": len(reference.caption) - len(names),
        "identical_share": round(1 - len(differ) / max(1, len(names)), 4),
        "captions_that_differ": len(differ),
        "max_confidence_difference": round(max(deltas, default=0.0), 4),
        "mean_confidence_difference": round(sum(deltas) / max(1, len(deltas)), 5),
        "model_photos_per_s": other.photos_per_s,
        "examples": [
            {"photo": n, "reference": reference.caption[n], "this": other.caption[n]}
            for n in differ[:20]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/flickr8k"))
    ap.add_argument("--coco", type=Path, default=Path("../data/coco"))
    ap.add_argument("--limit", type=int, default=None, help="photos per split (default all)")
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--frozen", type=Path, default=None, help="packaged photoscribe to compare")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the reference (default: torch's, one per core); the thread "
        "comparison uses 1, or 2 when this is 1 (a busy machine runs 1 thread much faster)",
    )
    ap.add_argument("--out", type=Path, default=Path("runs/bench_agreement.json"))
    args = ap.parse_args(argv)
    os.environ.pop(PRECISION_ENV, None)  # "default" means what a user gets
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cores = torch.get_num_threads()
    report: dict = {
        "machine": machine(torch_threads=cores, load_average_before=load_average()),
        "reference": f"fp32 encoder, batch 32, {cores} torch threads",
        "splits": {},
    }

    for split, paths in dev_photos(args.data, args.coco, args.limit).items():
        report["splits"][split] = measure_split(split, paths, args.weights, args.frozen)
    report["machine"]["load_average_after"] = load_average()
    write_report(args.out, report)
    return 0


def measure_split(split: str, paths: list[Path], weights: Path | None, frozen: Path | None) -> dict:
    """Every setting against the reference on one split's photos."""
    names = [p.name for p in paths]
    t = time.perf_counter()
    images = decode_all(paths)
    print(
        f"{split}: {len(paths)} photos decoded in {time.perf_counter() - t:.0f} s", file=sys.stderr
    )

    def make(precision: str | None) -> Captioner:
        return Captioner(weights, device="cpu", precision=precision)

    fp32 = make("fp32")
    reference = caption_tensors(fp32, names, images, 32)
    runs: dict[str, Callable[[], Captions]] = {
        "default": lambda: caption_tensors(make(None), names, images, 32),
        "batch_1": lambda: caption_tensors(fp32, names, images, 1),
        "batch_7": lambda: caption_tensors(fp32, names, images, 7),
        f"threads_{other_threads()}": lambda: with_threads(
            other_threads(), lambda: caption_tensors(fp32, names, images, 32)
        ),
    }
    if cpu_supports_bf16():
        runs["bf16"] = lambda: caption_tensors(make("bf16"), names, images, 32)
        runs["auto"] = lambda: caption_tensors(make("auto"), names, images, 32)
    if frozen is not None:
        runs["frozen_app"] = lambda: frozen_captions(frozen, paths)
    result = {"photos": len(paths), "reference_model_photos_per_s": reference.photos_per_s}
    for name, run in runs.items():
        print(f"{split}: {name}", file=sys.stderr)
        result[name] = compare(reference, run())
    return result


def other_threads() -> int:
    return 2 if torch.get_num_threads() == 1 else 1


def with_threads(n: int, run: Callable[[], Captions]) -> Captions:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return run()
    finally:
        torch.set_num_threads(before)


if __name__ == "__main__":
    sys.exit(main())
