"""Captioning the dev splits' photos with core's Captioner and scoring them with pycocoevalcap."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from core.confidence import confidence_features
from core.datatypes import CaptionSettings
from core.inference import Captioner
from core.library import find_photos
from training.data import Corpus, Example
from training.metrics import auroc, score_captions

log = logging.getLogger(__name__)


def evaluate_split(
    examples: list[Example], captioner: Captioner, settings: CaptionSettings
) -> tuple[dict, dict[str, dict]]:
    """Scores (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, images, seconds, confidence AUROC) and, per
    photo, the caption made, its confidence and confidence features, and its own CIDEr-D."""
    by_path = {e.path: e for e in examples}
    t0 = time.perf_counter()
    made: dict[str, dict] = {}
    for r in captioner.caption_paths([e.path for e in examples], settings):
        if not r.ok:
            log.warning("%s", r.error)
            continue
        made[by_path[r.path].name] = {
            "caption": r.caption or "",
            "confidence": r.confidence,
            "features": list(confidence_features(r.candidates)),
        }
    seconds = time.perf_counter() - t0
    refs = {e.name: list(e.captions) for e in examples if e.name in made}
    per_photo: dict[str, float] = {}
    scores = score_captions(refs, {n: m["caption"] for n, m in made.items()}, True, per_photo)
    for n, c in per_photo.items():
        made[n]["cider"] = c
    good = [m["cider"] >= captioner.calibration.threshold for m in made.values()]
    scores.update(
        {
            "images": len(made),
            "seconds": round(seconds, 1),
            "confidence_auroc": auroc(good, [m["confidence"] for m in made.values()]),
            "poor_captions": good.count(False),
        }
    )
    return scores, made


def caption_folder(
    folder: Path, captioner: Captioner, settings: CaptionSettings
) -> dict[str, dict]:
    """Captions of photos with no references (e.g. the app's sample photos), by file name."""
    photos = sorted(find_photos(folder))
    out: dict[str, dict] = {}
    for r in captioner.caption_paths(photos, settings):
        out[r.path.name] = (
            {"caption": r.caption, "confidence": round(r.confidence, 3)}
            if r.ok
            else {"error": str(r.error)}
        )
        log.info("%s: %s", r.path.name, out[r.path.name])
    return out


def run_evaluate(args: argparse.Namespace) -> int:
    corpus = Corpus.load(args.data, args.coco, coco_dev_file=args.coco_dev)
    captioner = Captioner(args.weights, device=args.device)
    if args.style is not None:
        captioner.style = args.style
    settings = CaptionSettings(beam_size=args.beam, batch_size=args.batch_size)
    result: dict = {
        "settings": {
            "weights": str(args.weights or "shipped model"),
            "beam": args.beam,
            "style": captioner.style if captioner.style is not None else captioner.model.cfg.style,
        }
    }
    examples: dict[str, dict] = {}
    for name, split in corpus.dev.items():
        if not split:
            continue
        log.info("scoring the %s dev split (%d photos)", name, len(split))
        result[name], examples[name] = evaluate_split(list(split), captioner, settings)
    if args.photos is not None:
        result["photos"] = caption_folder(args.photos, captioner, settings)
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.examples:
        args.examples.write_text(json.dumps(examples, indent=1, ensure_ascii=False))
    return 0
