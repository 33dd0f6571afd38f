"""Training the image-text matcher (core.matcher) on the training photos' human captions, from the
feature cache's pooled maps; the dev photos are never seen (issue 21's review mark)."""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.matcher import Matcher, MatcherConfig, padded, word_ids
from core.vocab import Vocab
from training.data import Corpus
from training.features import FeatureCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pairs:
    """Training photos' pooled features (N, 2, D: the photo and its mirror image) and, per photo,
    the word ids of its human captions."""

    features: np.ndarray
    captions: list[list[list[int]]]
    names: list[str]


def pooled_cache(cache_dir: Path) -> tuple[np.ndarray, list[str]]:
    """(N, 2, 1280) fp32 means over the 7x7 grid of every cached photo and its mirror, and names."""
    names = json.loads((cache_dir / "index.json").read_text())["names"]
    maps = FeatureCache(cache_dir, names).memmap("r")  # (N, 2, 49, 1280) fp16
    out = np.zeros((len(names), 2, 1280), np.float32)
    for lo in range(0, len(names), 256):
        out[lo : lo + 256] = maps[lo : lo + 256].astype(np.float32).mean(2)
    return out, names


def training_pairs(
    corpus: Corpus, pooled: np.ndarray, names: list[str], vocab: Vocab, max_words: int
) -> Pairs:
    """The corpus's training photos that the cache holds, with their captions' word ids. Dev
    photos are refused outright: the matcher scores dev captions, so it must never see them."""
    dev = {e.name for split in corpus.dev.values() for e in split}
    row = {n: i for i, n in enumerate(names)}
    rows, caps, kept = [], [], []
    for e in corpus.train:
        assert e.name not in dev, f"{e.name} is a dev photo"
        if e.name not in row:
            continue
        ids = [word_ids(c, vocab, max_words) for c in e.captions]
        ids = [i for i in ids if i]
        if ids:
            rows.append(row[e.name])
            caps.append(ids)
            kept.append(e.name)
    return Pairs(pooled[rows], caps, kept)


def train(
    pairs: Pairs,
    cfg: MatcherConfig,
    pad_id: int,
    epochs: int = 30,
    batch: int = 1024,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    negatives: list[list[list[int]]] | None = None,
    matcher: Matcher | None = None,
    average_last: int = 0,
) -> Matcher:
    """In-batch contrastive training (one random caption per photo per step, the mirror image
    half the time), AdamW with cosine decay. negatives: per photo, captions that are wrong for it
    (the caption model's own poor captions of it): each step adds one for every photo in the
    batch that has any, as further columns of the photo-to-caption logits."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    matcher = Matcher(cfg, pad_id) if matcher is None else matcher
    flat = pairs.features.reshape(-1, pairs.features.shape[-1])
    matcher.feature_mean.copy_(torch.from_numpy(flat.mean(0)))
    matcher.feature_scale.copy_(torch.from_numpy(flat.std(0) + 1e-3))
    feats = torch.from_numpy(pairs.features)
    n = len(pairs.captions)
    steps = epochs * (n // batch)
    opt = torch.optim.AdamW(matcher.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    matcher.train()
    t0, step = time.perf_counter(), 0
    averaged: dict[str, torch.Tensor] = {}
    for epoch in range(epochs):
        order = rng.permutation(n)
        total = 0.0
        for lo in range(0, n - batch + 1, batch):
            idx = order[lo : lo + batch]
            side = torch.from_numpy(rng.integers(0, 2, len(idx)))
            x = feats[torch.from_numpy(idx), side]  # (B, D)
            rows = [pairs.captions[i][rng.integers(len(pairs.captions[i]))] for i in idx]
            hard = [] if negatives is None else [negatives[i] for i in idx if negatives[i]]
            if hard:
                extra = [h[rng.integers(len(h))] for h in hard]
                tokens = padded(rows + extra, pad_id)
                images = matcher.embed_images(x)  # (B, dim)
                texts = matcher.embed_tokens(tokens)  # (B + H, dim)
                logits = matcher.logit_scale.exp().clamp(max=100.0) * images @ texts.T
                target = torch.arange(len(idx))
                loss = (
                    torch.nn.functional.cross_entropy(logits, target)
                    + torch.nn.functional.cross_entropy(logits[:, : len(idx)].T, target)
                ) / 2
            else:
                _, loss = matcher(x, padded(rows, pad_id))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            step += 1
        if epoch >= epochs - average_last:  # a running mean of the last epochs' weights
            seen = epoch - (epochs - average_last)
            for k, v in matcher.state_dict().items():
                prev = averaged.get(k, v.detach().clone())
                averaged[k] = prev + (v.detach() - prev) / (seen + 1)
        log.info(
            "epoch %d: loss %.3f, scale %.1f, %.0f s",
            epoch + 1,
            total / max(n // batch, 1),
            matcher.logit_scale.exp().item(),
            time.perf_counter() - t0,
        )
    if averaged:
        matcher.load_state_dict(averaged)
    return matcher.eval()


def attach(
    weights: Path, out: Path, matcher: Matcher, about: dict, vocab_check: Vocab | None = None
) -> Path:
    """Write a copy of the model file `weights` that carries the matcher (tensors "matcher.*",
    its config and how it was trained in the provenance's "matcher")."""
    ckpt = load_checkpoint(weights)
    if vocab_check is not None and vocab_check.itos != ckpt.vocab.itos:
        raise SystemExit(f"{weights}: the matcher was trained on another vocabulary")
    extra = {k: v for k, v in ckpt.extra.items() if not k.startswith("matcher.")}
    extra.update(matcher.to_tensors())
    provenance = {**ckpt.provenance, "matcher": {**matcher.cfg.to_dict(), **about}}
    dtype = next(t.dtype for t in ckpt.state_dict.values() if t.is_floating_point())
    return save_checkpoint(
        out, ckpt.build_model(), ckpt.vocab, provenance, dtype=dtype, extra=extra
    )


def main() -> int:
    from training.data import COCO_DEV_FILE

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m training.matcher", description=__doc__)
    p.add_argument("--data", type=Path, default=Path("../shared/flickr8k"))
    p.add_argument("--coco", type=Path, default=None)
    p.add_argument("--web", type=Path, default=None)
    p.add_argument("--coco-dev", type=Path, default=COCO_DEV_FILE)
    p.add_argument("--features", type=Path, required=True, help="a feature cache directory")
    p.add_argument("--weights", type=Path, required=True, help="the caption model file")
    p.add_argument("--out", type=Path, required=True, help="model file to write")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    vocab = load_checkpoint(args.weights).vocab
    corpus = Corpus.load(args.data, args.coco, args.web, coco_dev_file=args.coco_dev)
    pooled, names = pooled_cache(args.features)
    cfg = MatcherConfig(vocab_size=len(vocab))
    pairs = training_pairs(corpus, pooled, names, vocab, cfg.max_words)
    log.info("%d training photos, %d captions", len(pairs.names), sum(map(len, pairs.captions)))
    t0 = time.perf_counter()
    matcher = train(pairs, cfg, vocab.pad_id, args.epochs, args.batch, seed=args.seed)
    about = {
        "trained_on": "the human captions of the training photos (never a dev photo)",
        "photos": len(pairs.names),
        "captions": sum(map(len, pairs.captions)),
        "epochs": args.epochs,
        "batch": args.batch,
        "seed": args.seed,
        "minutes": round((time.perf_counter() - t0) / 60, 1),
    }
    attach(args.weights, args.out, matcher, about, vocab)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
