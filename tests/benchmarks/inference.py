"""Benchmark: end-to-end captioning of 12 MP JPEGs, phone HEICs and RAW files, the core time of
each stage (decode, image encoder, beam search) and the pipeline's bound; writes JSON.

python -m tests.benchmarks.inference [--images 32] [--slow-images 12] [--device auto]
                                     [--weights FILE] [--out runs/bench_inference.json]

Core time is CPU time (decoding: the decoding thread's; encoder and beam search: the whole
process's), so on the CPU the bound is the number of cores divided by the summed core time per
photo of decoding, encoding and beam search: the rate the pipeline would reach if every core
were busy with it alone. Other work on the machine (a training job, say) lowers the end-to-end
rates, and raises the encoder's core time too (torch's worker threads spin while they wait for
a descheduled peer), so the report records the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from core.datatypes import CaptionSettings
from core.images import (
    _heif_items,
    load_for_model,
    open_image,
    read_for_device,
    stack_on_device,
)
from core.inference import Captioner
from tests.benchmarks.report import load_average, write_report
from tests.imagegen import textured_image

DATA = Path(__file__).resolve().parents[1] / "data"
HEIC_WITH_THUMBNAIL = DATA / "iphonexr_thumbnail.heic"  # 12 MP, 320x240 thumbnail
RAW_WITH_PREVIEW = DATA / "canon_eos_r6.cr3"  # 1620x1080 JPEG preview


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


def copies(source: Path, folder: Path, n: int, data: bytes | None = None) -> list[Path]:
    """n copies of one sample file (the decoder's cost does not depend on the picture)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{source.stem}_{i:03d}{source.suffix}"
        if not p.exists():
            if data is None:
                shutil.copyfile(source, p)
            else:
                p.write_bytes(data)
        paths.append(p)
    return paths


def without_thumbnail(heic: Path) -> bytes:
    """The HEIC with its thumbnail references renamed: the same 12 MP photo, no thumbnail."""
    data = bytearray(heic.read_bytes())
    items = _heif_items(bytes(data))
    assert items is not None, f"{heic} has no thumbnail"
    for _, ref_at in items.thumbnails:
        data[ref_at : ref_at + 4] = b"xthm"
    return bytes(data)


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def timed(fn: Callable[[], object], sync: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def decode_core_s(paths: list[Path]) -> float:
    """CPU seconds per photo to decode and resize on one thread, as a decode worker does."""
    cpu = time.thread_time()
    for p in paths:
        load_for_model(p)
    return (time.thread_time() - cpu) / len(paths)


def end_to_end(captioner: Captioner, paths: list[Path], settings: CaptionSettings) -> float:
    t = time.perf_counter()
    results = list(captioner.caption_paths(paths, settings))
    rate = len(paths) / (time.perf_counter() - t)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=32, help="JPEGs, HEICs with thumbnail, RAWs")
    ap.add_argument("--slow-images", type=int, default=12, help="HEICs decoded in full")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--beam", type=int, default=3)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--photos-dir", type=Path, default=Path("runs/bench_photos"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench_inference.json"))
    args = ap.parse_args(argv)

    load_before = load_average()
    jpegs = make_photos(args.photos_dir, args.images)
    heics = copies(HEIC_WITH_THUMBNAIL, args.photos_dir / "heic", args.images)
    bare = without_thumbnail(HEIC_WITH_THUMBNAIL)
    heics_bare = copies(
        HEIC_WITH_THUMBNAIL.with_stem("no_thumbnail"),
        args.photos_dir / "heic_bare",
        args.slow_images,
        bare,
    )
    raws = copies(RAW_WITH_PREVIEW, args.photos_dir / "raw", args.images)

    captioner = Captioner(args.weights, device=args.device)
    device = captioner.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    settings = CaptionSettings(beam_size=args.beam, batch_size=args.batch_size)
    list(captioner.caption_paths(jpegs[: args.batch_size], settings))  # warm-up

    # Stage 1: decoding, one thread, per photo (as each decode worker does on the CPU).
    decode_s = {
        "jpeg_12mp": decode_core_s(jpegs),
        "heic_with_thumbnail": decode_core_s(heics),
        "heic_without_thumbnail": decode_core_s(heics_bare),
        "raw_with_preview": decode_core_s(raws),
    }
    decoded = [load_for_model(p) for p in jpegs]
    batches = [
        torch.stack(decoded[i : i + args.batch_size])
        for i in range(0, len(decoded), args.batch_size)
    ]

    # Stage 1b on CUDA: the JPEG batch decoded on the GPU (workers only read the bytes).
    device_decode = None
    if device.type == "cuda":
        prepared = [read_for_device(p, device) for p in jpegs]
        chunks = [
            prepared[i : i + args.batch_size] for i in range(0, len(prepared), args.batch_size)
        ]
        stack_on_device(chunks[0], device)  # warm-up: nvJPEG's first call sets itself up
        wall, _ = timed(lambda: [stack_on_device(c, device) for c in chunks], sync)
        device_decode = wall / len(jpegs)

    # Stage 2: the image encoder alone on decoded photos.
    enc_walls, enc_cpu = [], 0.0
    with torch.inference_mode():
        for b in batches:
            wall, cpu = timed(lambda b=b: captioner.encode(b), sync)
            enc_walls.append(wall)
            enc_cpu += cpu
    encoder_s = sum(enc_walls) / len(jpegs)

    # Stage 3: beam search alone on encoded photos.
    beam_wall, beam_cpu = 0.0, 0.0
    with torch.inference_mode():
        for b in batches:
            memory = captioner.encode(b)
            sync()
            wall, cpu = timed(lambda m=memory: captioner.beam_search(m, settings), sync)
            beam_wall += wall
            beam_cpu += cpu

    n_cores = cores()
    enc_core = enc_cpu / len(jpegs)
    beam_core = beam_cpu / len(jpegs)

    def bound(decode: float) -> float:
        """Photos/s if every core did nothing but this pipeline (CPU only)."""
        return n_cores / (decode + enc_core + beam_core)

    rates = {
        "jpeg_12mp": end_to_end(captioner, jpegs, settings),
        "heic_with_thumbnail": end_to_end(captioner, heics, settings),
        "heic_without_thumbnail": end_to_end(captioner, heics_bare, settings),
        "raw_with_preview": end_to_end(captioner, raws, settings),
    }
    formats = {}
    for name, rate in rates.items():
        entry = {
            "end_to_end_photos_per_s": round(rate, 2),
            "decode_core_ms_per_photo": round(decode_s[name] * 1000, 1),
        }
        if device.type == "cpu":
            entry["pipeline_bound_photos_per_s"] = round(bound(decode_s[name]), 2)
            entry["end_to_end_vs_bound"] = round(rate / bound(decode_s[name]), 3)
        formats[name] = entry
    formats["jpeg_12mp"]["file"] = "4000x3000 JPEG q90, generated"
    formats["heic_with_thumbnail"]["file"] = (
        f"{HEIC_WITH_THUMBNAIL.name}: 12 MP, decoded from its "
        f"{'x'.join(map(str, open_image(heics[0]).size))} thumbnail"
    )
    formats["heic_without_thumbnail"]["file"] = (
        f"{HEIC_WITH_THUMBNAIL.name} with its thumbnail reference renamed: the 12 MP image "
        "decoded in full"
    )
    formats["raw_with_preview"]["file"] = (
        f"{RAW_WITH_PREVIEW.name}: decoded from its 1620x1080 JPEG preview"
    )

    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": n_cores,
            "torch_threads": torch.get_num_threads(),
            "device": captioner.device_name,
            "encoder_dtype": str(captioner.backbone_dtype),
            "niceness": os.nice(0),
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "beam": args.beam,
        "batch_size": args.batch_size,
        "images": {"fast_formats": args.images, "heic_without_thumbnail": args.slow_images},
        "formats": formats,
        "stage_core_ms_per_photo": {
            "decode_jpeg_12mp_one_thread": round(decode_s["jpeg_12mp"] * 1000, 1),
            "image_encoder": round(enc_core * 1000, 1),
            "beam_search": round(beam_core * 1000, 1),
        },
        "stage_wall_ms_per_photo": {
            "image_encoder": round(encoder_s * 1000, 1),
            "beam_search": round(beam_wall / len(jpegs) * 1000, 1),
            **(
                {"jpeg_decode_on_device": round(device_decode * 1000, 2)}
                if device_decode is not None
                else {}
            ),
        },
        "encoder_only_photos_per_s": round(1 / encoder_s, 2),
        "encoder_batch_ms_median": round(statistics.median(enc_walls) * 1000, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
