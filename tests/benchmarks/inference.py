"""Benchmark: end-to-end captioning of 12-megapixel JPEGs vs the image encoder alone; writes JSON.

python -m tests.benchmarks.inference [--images 32] [--weights FILE] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from core.images import load_for_model
from core.inference import Captioner, CaptionSettings
from tests.imagegen import textured_image


def make_photos(folder: Path, n: int, size: tuple[int, int] = (4000, 3000)) -> list[Path]:
    """n distinct 12 MP JPEGs with photographic texture (cached between runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = textured_image(*size, seed=0)
    paths = []
    for i in range(n):
        p = folder / f"photo_{i:03d}.jpg"
        if not p.exists():
            # Shift and tint the same texture so every file decodes differently.
            img = base.rotate(0, translate=(i * 37 % 400, i * 53 % 300)).point(
                lambda v, i=i: (v + 7 * i) % 256
            )
            img.save(p, quality=90)
        paths.append(p)
    return paths


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--beam", type=int, default=3)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--photos-dir", type=Path, default=Path("runs/bench_photos"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench_inference.json"))
    args = ap.parse_args(argv)

    paths = make_photos(args.photos_dir, args.images)
    captioner = Captioner(args.weights, device=args.device)
    settings = CaptionSettings(beam_size=args.beam, batch_size=args.batch_size)
    list(captioner.caption_paths(paths[: args.batch_size], settings))  # warm-up

    # Stage 1: decoding alone (one thread), per image.
    t = time.perf_counter()
    decoded = [load_for_model(p) for p in paths]
    decode_s = (time.perf_counter() - t) / len(paths)

    # Stage 2: the image encoder alone on pre-decoded tensors.
    batches = [
        torch.stack(decoded[i : i + args.batch_size])
        for i in range(0, len(decoded), args.batch_size)
    ]
    enc_times = []
    with torch.inference_mode():
        for b in batches:
            t = time.perf_counter()
            captioner.encode(b)
            enc_times.append(time.perf_counter() - t)
    encoder_ips = len(decoded) / sum(enc_times)

    # Stage 3: beam search alone on encoded memories.
    dec_times = []
    with torch.inference_mode():
        for b in batches:
            memory = captioner.encode(b)
            t = time.perf_counter()
            captioner.beam_search(memory, settings)
            dec_times.append(time.perf_counter() - t)

    # End to end: files -> captions, decoding overlapped with compute.
    t = time.perf_counter()
    results = list(captioner.caption_paths(paths, settings))
    e2e_s = time.perf_counter() - t
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    e2e_ips = len(paths) / e2e_s

    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "device": captioner.device_name,
            "encoder_dtype": str(captioner.backbone_dtype),
        },
        "images": len(paths),
        "image_size": "4000x3000 JPEG q90",
        "beam": args.beam,
        "batch_size": args.batch_size,
        "end_to_end_images_per_s": round(e2e_ips, 2),
        "encoder_only_images_per_s": round(encoder_ips, 2),
        "ratio_end_to_end_vs_encoder": round(e2e_ips / encoder_ips, 3),
        "stage_ms_per_image": {
            "decode_and_resize_one_thread": round(decode_s * 1000, 1),
            "image_encoder": round(sum(enc_times) / len(paths) * 1000, 1),
            "beam_search": round(sum(dec_times) / len(paths) * 1000, 1),
        },
        "encoder_batch_ms_median": round(statistics.median(enc_times) * 1000, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "example": {"path": results[0].path.name, "caption": results[0].caption},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
