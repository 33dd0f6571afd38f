"""Reduced, fair A/B arms (issue 20, experiments 3, 4 and 1 with copying), one arm per call.

Every arm starts from the same checkpoint and trains the same steps, batch, learning rate and
seed on the same balanced subset of the training mix, and is scored on both dev splits (beam 3)
from features cached by the same code. What differs is the arm's one idea: a larger input
(`res288`: a 9x9 grid, the learned positions interpolated from 7x7), the encoder's last stages
trained from a cache of the stage before them (`tune`), or tag words given as tokens
(`tags`), also to be copied (`copy`). `start224` / `start288` score the starting checkpoint
without training. Each arm writes `<run>/<arm>/result.json` and is skipped once that exists;
training resumes from the last finished epoch. `--report` gathers the results into JSON reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from core.checkpoint import load_checkpoint, save_checkpoint
from core.datatypes import IMAGE_SIZE
from core.model import CaptionModel
from training.data import SOURCES, Corpus, Example
from training.features import FEATURE_DIM, FeatureCache, encoder_key, grid_side, load_encoder
from training.fit import (
    CaptionData,
    DevSplits,
    TrainConfig,
    TrainRun,
    evaluate_splits,
    through,
    train,
)
from training.tune import FIRST_TUNED, LastStages, weights_for_steps

log = logging.getLogger(__name__)

STAGE_DIM = 192  # channels out of features.6, the input of the tuned stages


@dataclasses.dataclass(frozen=True, kw_only=True)
class Arm:
    """One arm: what it changes against the control (nothing, for the control)."""

    size: int = IMAGE_SIZE  # input pixels (square): 224 -> 7x7 tokens, 288 -> 9x9
    tune_last: bool = False  # train features.7-8 (from the stage-6 cache) with head_lr
    tags: int = 0  # tag words given as extra tokens (fit --tags)
    copy: bool = False  # the decoder may copy a tag word (ModelConfig.tag_copy)
    train: bool = True  # False: score the starting checkpoint only


ARMS = {
    "start224": Arm(train=False),
    "control": Arm(),
    "start288": Arm(size=288, train=False),
    "res288": Arm(size=288),
    "tune": Arm(tune_last=True),
    "copy": Arm(tags=5, copy=True),
    "tags": Arm(tags=5),
}


def balanced_subset(corpus: Corpus, per_source: int, seed: int) -> list[Example]:
    """per_source training photos drawn at random from each set (all of a smaller set)."""
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    for source in SOURCES:
        pool = sorted((e for e in corpus.train if e.source == source), key=lambda e: e.name)
        if len(pool) > per_source:
            pool = [pool[i] for i in sorted(rng.choice(len(pool), per_source, replace=False))]
        out += pool
    return out


class StageAndFinal(nn.Module):
    """The encoder with its stage-6 output kept: (B, 3, S, S) -> (B, 192 + 1280, S/32, S/32).

    One cache then serves both the frozen-encoder arms (channels 192:) and the arm that tunes
    the last stages (channels :192)."""

    def __init__(self, encoder: nn.Module, first_tuned: int = FIRST_TUNED) -> None:
        super().__init__()
        self.lower, self.upper = encoder[:first_tuned], encoder[first_tuned:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stage = self.lower(x)  # (B, 192, h, w)
        return torch.cat([stage, self.upper(stage)], dim=1)  # (B, 1472, h, w)


def stage_cache(
    backbone: Path, examples: list[Example], size: int, root: Path, workers: int = 1
) -> FeatureCache:
    """Stage-6 and final maps of these photos (and their mirrors) at this size (resumable)."""
    net = StageAndFinal(load_encoder(backbone)).eval()
    side = grid_side(size)
    cache = FeatureCache.open(
        root,
        encoder_key(net),
        [e.name for e in examples],
        dim=STAGE_DIM + FEATURE_DIM,
        prefix=f"b0-stage6-final-{size}",
        n_tokens=side * side,
    )
    if not cache.complete:
        t0 = time.perf_counter()
        start = cache.done
        cache.fill(net, {e.name: e for e in examples}, workers=workers, size=size)
        seconds = time.perf_counter() - t0
        log.info("cached %d photos at %d px in %.0f s", cache.done - start, size, seconds)
    return cache


def load_channels(cache: FeatureCache, names: list[str], channels: slice) -> torch.Tensor:
    """(len(names), 2, tokens, c) fp16 of these photos' channels, read in chunks."""
    parts = [
        cache.load(names[lo : lo + 500])[..., channels].contiguous()
        for lo in range(0, len(names), 500)
    ]
    return torch.cat(parts) if parts else torch.zeros(0)


def positions_for_grid(pos: torch.Tensor, side: int) -> torch.Tensor:
    """(1, n*n, C) learned positions of an n x n grid -> (1, side*side, C), bicubic."""
    _, n_tok, c = pos.shape
    n = int(round(n_tok**0.5))
    assert n * n == n_tok, f"{n_tok} positions are not a square grid"
    grid = pos.reshape(1, n, n, c).permute(0, 3, 1, 2)  # (1, C, n, n)
    grid = F.interpolate(grid.float(), size=(side, side), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, side * side, c).to(pos.dtype)


def init_at_grid(init: Path, side: int, out: Path) -> Path:
    """init's weights for a side x side grid of image tokens (positions interpolated)."""
    ckpt = load_checkpoint(init)
    model = ckpt.build_model()
    cfg = dataclasses.replace(ckpt.config, n_image_tokens=side * side)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    state["image_pos"] = positions_for_grid(state["image_pos"], side)
    wider = CaptionModel(cfg, with_backbone=False)
    wider.load_state_dict(state)
    provenance = {**ckpt.provenance, "image_grid": f"{side}x{side}, positions interpolated"}
    return save_checkpoint(out, wider, ckpt.vocab, provenance)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Plan:
    """What every arm shares: data, steps, optimisation, where things go."""

    init: Path  # the checkpoint every arm starts from
    backbone: Path  # the converted B0 with its ImageNet head
    run_dir: Path  # caches, each arm's checkpoints and result.json
    per_source: int = 2000  # training photos drawn from each set
    steps: int = 300  # optimizer steps per arm
    epochs: int = 3  # the steps in this many epochs (an interrupted arm resumes from the last)
    batch_size: int = 80  # captions per step
    lr: float = 1e-4  # caption network, warm-up then cosine to lr / 10
    head_lr: float = 5e-5  # the encoder's last stages (arm tune)
    warmup: int = 20
    seed: int = 1234
    device: str = "cpu"


def arm_data(
    plan: Plan, corpus: Corpus, arm: Arm, with_train: bool = True
) -> tuple[list[Example], torch.Tensor, DevSplits]:
    """The subset's photos, their (P, 2, tokens, C) features (empty without with_train) and the
    dev splits, for this arm."""
    train_ex = balanced_subset(corpus, plan.per_source, plan.seed)
    dev_ex = [e for split in corpus.dev.values() for e in split]
    cache = stage_cache(plan.backbone, train_ex + dev_ex, arm.size, plan.run_dir / "cache")
    bad = set(cache.bad)
    train_ex = [e for e in train_ex if e.name not in bad]
    channels = slice(0, STAGE_DIM) if arm.tune_last else slice(STAGE_DIM, None)
    features = load_channels(cache, [e.name for e in train_ex] if with_train else [], channels)
    dev = {
        name: (kept, load_channels(cache, [e.name for e in kept], channels)[:, 0])
        for name, split in corpus.dev.items()
        if (kept := [e for e in split if e.name not in bad])
    }
    return train_ex, features, dev


def arm_model(plan: Plan, arm: Arm, out: Path) -> tuple[Path, object]:
    """The arm's starting checkpoint (written to out when it differs from plan.init) and config."""
    from training.tags import tagged_init

    init = plan.init
    if arm.size != IMAGE_SIZE:
        init = init_at_grid(init, grid_side(arm.size), out / "init_grid.safetensors")
    ckpt = load_checkpoint(init)
    cfg = dataclasses.replace(ckpt.config, n_tags=arm.tags, tag_copy=arm.copy)
    if arm.tags:
        init = tagged_init(cfg, ckpt.vocab, plan.backbone, out / "init_tags.safetensors", init)
    return init, cfg


def run_arm(plan: Plan, corpus: Corpus, name: str) -> dict:
    """Train (or only score) one arm; its result, also written to run_dir/name/result.json."""
    arm, out = ARMS[name], plan.run_dir / name
    done = out / "result.json"
    if done.exists():
        log.info("arm %s: already done (%s)", name, done)
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_ex, features, dev = arm_data(plan, corpus, arm)
    load_seconds = time.perf_counter() - t0
    init, model_cfg = arm_model(plan, arm, out)
    ckpt = load_checkpoint(init)
    head = None
    if arm.tune_last:
        head = LastStages(load_encoder(plan.backbone)[FIRST_TUNED:])
    record: dict = {}
    if not arm.train:
        t1 = time.perf_counter()
        scores = evaluate_splits(ckpt.build_model(), ckpt.vocab, through(head, dev), 3)
        one = len(dev) == 1  # named as Trainer names them: dev_<split>_<metric>, dev_<metric>
        record = {
            f"dev_{'' if s == 'mean' or one else s + '_'}{k}": v
            for s, sc in scores.items()
            for k, v in sc.items()
        }
        record["eval_seconds"] = time.perf_counter() - t1
    else:
        captions = CaptionData.build(
            train_ex, ckpt.vocab, {e.name: i for i, e in enumerate(train_ex)}
        )
        cfg = TrainConfig(
            epochs=plan.epochs,
            batch_size=plan.batch_size,
            lr=plan.lr,
            min_lr=plan.lr / 10,
            warmup_steps=plan.warmup,
            eval_from=plan.epochs,
            weights=weights_for_steps(captions, plan.steps // plan.epochs, plan.batch_size),
            device=plan.device,
            seed=plan.seed,
        )
        run = TrainRun(
            model_cfg=model_cfg,
            cfg=cfg,
            vocab=ckpt.vocab,
            features=features,
            train_data=captions,
            dev=dev,
            out_dir=out,
            resume=True,
            provenance={"experiment": f"issue 20 A/B arm {name}", "init": str(plan.init)},
            init=init,
            head=head,
            head_lr=plan.head_lr if arm.tune_last else 0.0,
        )
        record = train(run).history[-1]
        record["training_captions"] = captions.counts()
    result = {
        "arm": dataclasses.asdict(arm),
        "photos": {s: sum(e.source == s for e in train_ex) for s in SOURCES},
        "feature_load_seconds": round(load_seconds, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        **record,
    }
    done.write_text(json.dumps(result, indent=1))
    log.info("arm %s: %s", name, json.dumps(result))
    return result


def dev_captions(plan: Plan, corpus: Corpus, name: str) -> dict:
    """Each dev photo's caption and own CIDEr-D by the arm's trained weights (its start for the
    untrained arms), per split, kept in run_dir/name/per_photo.json for paired comparisons."""
    from safetensors.torch import load_file

    from core.checkpoint import Checkpoint
    from training.fit import caption_features
    from training.metrics import score_captions

    arm, out = ARMS[name], plan.run_dir / name
    path = out / "per_photo.json"
    if path.exists():
        return json.loads(path.read_text())
    _, _, dev = arm_data(plan, corpus, arm, with_train=False)
    weights: Path = out / "best.safetensors" if arm.train else arm_model(plan, arm, out)[0]
    ckpt: Checkpoint = load_checkpoint(weights)
    head = None
    if arm.tune_last:  # the tuned stages live in the training state, not in the checkpoint
        head = LastStages(load_encoder(plan.backbone)[FIRST_TUNED:])
        state = load_file(str(out / "last_state.safetensors"))
        head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
    model = ckpt.build_model()
    result: dict = {}
    for split, (examples, feats) in through(head, dev).items():
        caps = caption_features(model, ckpt.vocab, feats, 3)
        per: dict[str, float] = {}
        refs = {e.name: list(e.captions) for e in examples}
        score_captions(refs, dict(zip(refs, caps, strict=True)), False, per)
        result[split] = {
            e.name: [c, round(per[e.name], 5)] for e, c in zip(examples, caps, strict=True)
        }
    path.write_text(json.dumps(result))
    return result


def paired_difference(arm: dict, control: dict, draws: int = 2000, seed: int = 0) -> dict:
    """Per split and for the mean of the splits: the arm's CIDEr-D minus the control's on the
    same photos, with a 95% bootstrap interval (photos resampled, pairs kept)."""
    rng = np.random.default_rng(seed)
    out: dict = {}
    boots = []
    for split in sorted(set(arm) & set(control)):
        names = sorted(set(arm[split]) & set(control[split]))
        d = np.array([arm[split][n][1] - control[split][n][1] for n in names])
        boot = d[rng.integers(0, len(d), (draws, len(d)))].mean(1)
        boots.append(boot)
        out[split] = _interval(float(d.mean()), boot)
    if boots:
        mean = np.mean(boots, axis=0)
        out["mean"] = _interval(float(np.mean([v["difference"] for v in out.values()])), mean)
    return out


def _interval(diff: float, boot: np.ndarray) -> dict:
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"difference": round(diff, 4), "ci95": [round(float(low), 4), round(float(high), 4)]}


def encoder_cost(backbone: Path, sizes: tuple[int, ...], seconds: float = 3.0) -> dict:
    """The encoder's time per photo in ms at each size, this process's threads, batches of 8:
    fp32 with batch norms folded (the app's default) and bf16 autocast (the feature caches)."""
    from core.model import fold_batch_norms

    net = load_encoder(backbone)
    fold_batch_norms(net)
    net = net.to(memory_format=torch.channels_last)
    out: dict = {"threads": torch.get_num_threads()}
    for size in sizes:
        x = torch.randn(8, 3, size, size).contiguous(memory_format=torch.channels_last)
        for mode in ("fp32", "bf16"):
            amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16")
            with torch.inference_mode(), amp:
                net(x)
                t0, n = time.perf_counter(), 0
                while time.perf_counter() - t0 < seconds:
                    net(x)
                    n += len(x)
            out[f"{size}px_{mode}_ms"] = round((time.perf_counter() - t0) / n * 1000, 1)
    return out


def _scores(result: dict) -> dict:
    """Per dev split (and "mean") CIDEr-D and BLEU-4 of an arm's record, rounded."""
    out: dict = {}
    for key, value in result.items():
        for metric in ("CIDEr", "Bleu_4"):
            if key.startswith("dev_") and key.endswith(metric):
                split = key[len("dev_") : -len(metric)].rstrip("_") or "mean"
                out.setdefault(split, {})[metric] = round(value, 4)
    return out


def write_reports(plan: Plan, reports: Path, cost: dict | None = None) -> dict[str, Path]:
    """resolution_ab.json, encoder_mix_ab.json and copy_ab.json from the arms finished so far."""
    results = {
        name: json.loads((plan.run_dir / name / "result.json").read_text())
        for name in ARMS
        if (plan.run_dir / name / "result.json").exists()
    }
    per_photo = {
        name: json.loads((plan.run_dir / name / "per_photo.json").read_text())
        for name in ARMS
        if (plan.run_dir / name / "per_photo.json").exists()
    }
    settings = {
        k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(plan).items()
    }
    groups = {
        "resolution_ab.json": (
            "exp 3: 288 px input (9x9 tokens)",
            ["start224", "start288", "res288"],
        ),
        "encoder_mix_ab.json": ("exp 4: features.7-8 trained on the mix", ["tune"]),
        "copy_ab.json": ("exp 1: tag words as tokens, and copied", ["tags", "copy"]),
    }
    written = {}
    control = _scores(results.get("control", {}))
    for file, (question, names) in groups.items():
        arms = {n: results[n] for n in ["control", *names] if n in results}
        report = {
            "question": question,
            "settings": settings,
            "arms": {n: {"scores": _scores(r), **r} for n, r in arms.items()},
            "CIDEr_minus_control": {
                n: {
                    s: round(v["CIDEr"] - control[s]["CIDEr"], 4)
                    for s, v in _scores(r).items()
                    if s in control and "CIDEr" in v
                }
                for n, r in arms.items()
                if n != "control" and control
            },
        }
        paired = {
            n: paired_difference(per_photo[n], per_photo["control"])
            for n in arms
            if n != "control" and n in per_photo and "control" in per_photo
        }
        if paired:
            report["paired_CIDEr_minus_control"] = paired
        if cost is not None and file == "resolution_ab.json":
            report["encoder_cost_per_photo"] = cost
        reports.mkdir(parents=True, exist_ok=True)
        (reports / file).write_text(json.dumps(report, indent=1) + "\n")
        written[file] = reports / file
    return written


# Plan's fields that the command line sets, each as --name with Plan's default
TUNABLE = ("per_source", "steps", "epochs", "batch_size", "lr", "head_lr", "warmup", "seed")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init", type=Path, required=True, help="the checkpoint every arm starts from")
    p.add_argument("--run-dir", type=Path, required=True, help="caches, arms' checkpoints")
    p.add_argument("--arm", action="append", choices=sorted(ARMS), default=[], help="repeatable")
    p.add_argument(
        "--per-photo",
        action="append",
        choices=sorted(ARMS),
        default=[],
        help="caption the dev photos again with a finished arm, keeping each photo's CIDEr-D "
        "(for the reports' paired intervals); repeatable",
    )
    p.add_argument("--report", type=Path, default=None, help="write the reports to this folder")
    p.add_argument("--measure-encoder", action="store_true", help="time the encoder per size")
    defaults = Plan(init=Path(), backbone=Path(), run_dir=Path())
    for name in TUNABLE:
        value = getattr(defaults, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    p.add_argument("--device", default="cpu")


def run_ab(args: argparse.Namespace) -> int:
    plan = Plan(
        init=args.init,
        backbone=args.backbone,
        run_dir=args.run_dir,
        device=args.device,
        **{name: getattr(args, name) for name in TUNABLE},
    )
    if args.arm or args.per_photo:
        corpus = Corpus.load(args.data, args.coco, args.web, args.coco_dev)
        for name in args.arm:
            run_arm(plan, corpus, name)
        for name in args.per_photo:
            dev_captions(plan, corpus, name)
    if args.report is not None:
        cost = encoder_cost(plan.backbone, (224, 288, 320)) if args.measure_encoder else None
        for path in write_reports(plan, args.report, cost).values():
            log.info("wrote %s", path)
    return 0
