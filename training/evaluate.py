"""Captioning a split's photos with core's Captioner and scoring them with pycocoevalcap."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from core.inference import Captioner, CaptionSettings
from training.data import read_captions, read_split
from training.metrics import score_captions

log = logging.getLogger(__name__)


def evaluate_split(
    images: Path,
    captions_file: Path,
    split_file: Path,
    weights: Path | None,
    beam: int = 3,
    batch_size: int = 16,
    device: str = "auto",
) -> tuple[dict, dict[str, str]]:
    """Scores (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, images, beam) and every caption made."""
    refs = read_captions(captions_file)
    names = [n for n in read_split(split_file) if n in refs and (images / n).is_file()]
    captioner = Captioner(weights, device=device)
    settings = CaptionSettings(beam_size=beam, batch_size=batch_size)
    t0 = time.perf_counter()
    hyps: dict[str, str] = {}
    for r in captioner.caption_paths([images / n for n in names], settings):
        if r.ok:
            hyps[r.path.name] = r.caption or ""
        else:
            log.warning("%s", r.error)
    seconds = time.perf_counter() - t0
    scores = score_captions({n: refs[n] for n in hyps}, hyps)
    scores.update({"images": len(hyps), "beam": beam, "seconds": round(seconds, 1)})
    return scores, hyps


def run_evaluate(args: argparse.Namespace) -> int:
    scores, hyps = evaluate_split(
        args.images,
        args.captions,
        args.split,
        args.weights,
        args.beam,
        args.batch_size,
        args.device,
    )
    text = json.dumps(scores, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.examples:
        args.examples.write_text(json.dumps(hyps, indent=1, ensure_ascii=False))
    return 0
