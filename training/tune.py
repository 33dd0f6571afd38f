"""Does fine-tuning the image encoder's last stages pay? A measured A/B experiment.

The shipped encoder is frozen, so training runs on cached 7x7x1280 feature maps. To fine-tune
its last stages (torchvision's `features.7`, one MBConv block 192 -> 320, and `features.8`, the
1x1 convolution 320 -> 1280), this caches the output of the stages before them instead and runs
the last stages in every step. Two arms start from the same caption checkpoint and see the same
captions in the same order for the same number of steps: one with the last stages frozen, one
training them. Both are scored on the dev splits (beam 3, cached features), and the time per
step is recorded, so the gain (or its absence) and its cost are in one JSON file.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path

import torch
from torch import nn

from core.checkpoint import Checkpoint, load_checkpoint
from training.data import Corpus, Example
from training.features import FeatureCache, encoder_key, load_encoder
from training.fit import (
    CaptionData,
    DevSplits,
    TrainConfig,
    TrainRun,
    evaluate_splits,
    through,
    train,
)

log = logging.getLogger(__name__)

FIRST_TUNED = 7  # features.7 and features.8 are fine-tuned; features.0-6 stay frozen and cached


class LastStages(nn.Module):
    """The encoder's last stages over cached tokens of an earlier stage: (p, 49, C) -> (p, 49, 1280).

    Always in eval mode: the converted weights fold batch norm into identities, and stochastic
    depth must not drop blocks of a pretrained network being fine-tuned.
    """

    def __init__(self, stages: nn.Module) -> None:
        super().__init__()
        self.stages = stages

    def train(self, mode: bool = True) -> LastStages:
        return super().train(False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        p, n, c = tokens.shape
        side = int(round(n**0.5))
        x = tokens.transpose(1, 2).reshape(p, c, side, side)
        return self.stages(x).flatten(2).transpose(1, 2)


def split_encoder(backbone: Path, first_tuned: int = FIRST_TUNED) -> tuple[nn.Module, nn.Module]:
    """(frozen stages whose output is cached, last stages to fine-tune) of the converted B0."""
    net = load_encoder(backbone)
    return net[:first_tuned].eval(), net[first_tuned:]


def stage_channels(lower: nn.Module) -> int:
    with torch.inference_mode():
        return int(lower(torch.zeros(1, 3, 224, 224)).shape[1])


def cache_earlier_stage(
    lower: nn.Module, root: Path, examples: list[Example], first_tuned: int
) -> tuple[FeatureCache, set[str]]:
    """Cache the frozen stages' output for these photos (resumable); the photos that failed."""
    cache = FeatureCache.open(
        root,
        encoder_key(lower),
        [e.name for e in examples],
        dim=stage_channels(lower),
        prefix=f"b0-upto{first_tuned}",
    )
    if not cache.complete:
        log.info(
            "caching stages 0-%d for %d photos in %s",
            first_tuned - 1,
            len(examples),
            cache.directory,
        )
        cache.fill(lower, {e.name: e for e in examples})
    return cache, set(cache.bad)


def weights_for_steps(
    data: CaptionData, steps: int, batch_size: int
) -> tuple[tuple[str, float], ...]:
    """Per-set sampling weights that make one epoch `steps` steps, drawing every set alike."""
    counts = {s: n for s, n in data.counts().items() if n}
    w = steps * batch_size / sum(counts.values())
    return tuple((s, w) for s in counts)


def run_arm(
    name: str,
    args: argparse.Namespace,
    ckpt: Checkpoint,
    features: torch.Tensor,
    data: CaptionData,
    dev: DevSplits,
    upper: nn.Module,
    head_lr: float,
) -> dict:
    """Train one arm (or read its result if an earlier run finished it)."""
    out = args.run_dir / name
    done = out / "result.json"
    if done.exists():
        log.info("arm %s: already done (%s)", name, done)
        return json.loads(done.read_text())
    cfg = TrainConfig(
        epochs=1,
        batch_size=args.batch_size,
        lr=args.lr,
        min_lr=args.lr / 10,
        warmup_steps=args.warmup,
        eval_from=1,
        weights=weights_for_steps(data, args.steps, args.batch_size),
        device=args.device,
        seed=args.seed,
    )
    head = LastStages(copy.deepcopy(upper))
    before = {k: v.detach().clone() for k, v in head.state_dict().items()}
    t0 = time.perf_counter()
    result = train(
        TrainRun(
            model_cfg=ckpt.config,
            cfg=cfg,
            vocab=ckpt.vocab,
            features=features,
            train_data=data,
            dev=dev,
            out_dir=out,
            init=args.init,
            head=head,
            head_lr=head_lr,
        )
    )
    seconds = time.perf_counter() - t0
    record = result.history[-1]
    moved = max(float((head.state_dict()[k] - v).abs().max()) for k, v in before.items())
    summary = {
        "head_lr": head_lr,
        "steps": record["step"],
        "train_loss": record["train_loss"],
        "seconds_per_step": record["epoch_seconds"] / max(record["step"], 1),
        "seconds": seconds,
        "largest_change_in_last_stages": moved,
        **{
            k: v
            for k, v in record.items()
            if k.startswith("dev_") and k.endswith(("CIDEr", "Bleu_4"))
        },
    }
    done.write_text(json.dumps(summary, indent=1))
    log.info("arm %s: %s", name, json.dumps(summary))
    return summary


def run_tune(args: argparse.Namespace) -> int:
    data = Corpus.load(args.data, args.coco, args.web, args.coco_dev)
    sets = set(args.sets.split(","))
    train_ex = [e for e in data.train if e.source in sets]
    if not train_ex:
        raise SystemExit(f"--sets {args.sets}: no training photos from those sets")
    dev_ex = [e for split in data.dev.values() for e in split]
    lower, upper = split_encoder(args.backbone, args.first_tuned)
    t0 = time.perf_counter()
    cache, bad = cache_earlier_stage(lower, args.cache, train_ex + dev_ex, args.first_tuned)
    cache_seconds = time.perf_counter() - t0
    data = data.without(bad)
    train_ex = [e for e in data.train if e.source in sets]
    ckpt = load_checkpoint(args.init)
    names = [e.name for e in train_ex]
    features = cache.load(names)
    captions = CaptionData.build(train_ex, ckpt.vocab, {n: i for i, n in enumerate(names)})
    dev = {k: (list(v), cache.load([e.name for e in v])[:, 0]) for k, v in data.dev.items() if v}
    start = evaluate_splits(ckpt.build_model(), ckpt.vocab, through(LastStages(upper), dev), 3)
    arms = {
        "frozen": run_arm("frozen", args, ckpt, features, captions, dev, upper, 0.0),
        "tuned": run_arm("tuned", args, ckpt, features, captions, dev, upper, args.head_lr),
    }
    report = {
        "question": "does fine-tuning the encoder's last stages (features.7-8) pay on the dev splits?",
        "init": str(args.init),
        "training_sets": sorted(sets),
        "training_captions": captions.counts(),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "head_lr": args.head_lr,
        "tuned_parameters": sum(p.numel() for p in upper.parameters()),
        "cache_seconds": cache_seconds,
        "start": {k: round(v["CIDEr"], 4) for k, v in start.items()},
        "arms": arms,
        "gain_CIDEr": {  # tuned minus frozen, per dev split and their mean
            k[len("dev_") : -len("CIDEr")].rstrip("_") or "mean": arms["tuned"][k] - v
            for k, v in arms["frozen"].items()
            if k.endswith("CIDEr")
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    log.info("wrote %s: CIDEr-D gain of tuning %s", args.out, report["gain_CIDEr"])
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--init", type=Path, required=True, help="caption checkpoint both arms start from"
    )
    p.add_argument("--sets", default="coco", help="training sets to draw from (comma-separated)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=80)
    p.add_argument("--lr", type=float, default=5e-5, help="caption network (both arms)")
    p.add_argument("--head-lr", type=float, default=5e-5, help="the last stages (tuned arm)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--first-tuned", type=int, default=FIRST_TUNED, help="first stage trained")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="auto")
    p.add_argument("--run-dir", type=Path, default=Path("runs/tune"), help="each arm's checkpoints")
    p.add_argument(
        "--out", type=Path, default=Path("training/reports/encoder_tuning.json"), help="results"
    )
