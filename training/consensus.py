"""Consensus reranking (issue 20, experiment 2) and neighbour agreement as a review signal (issue
21), measured on cached features; the shippable datastore built from the model's own captions."""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from core.beam import beam_search
from core.checkpoint import load_checkpoint, save_checkpoint
from core.cider import CiderD
from core.confidence import confidence_features
from core.consensus import Consensus, ConsensusSettings, NeighbourIndex, rerank_order
from core.datatypes import Candidate, CaptionSettings
from core.model import CaptionModel
from core.vocab import Vocab, normalize_caption, tokenize
from training.calibrate import cross_validated
from training.data import Example
from training.features import FeatureCache
from training.metrics import auroc

log = logging.getLogger(__name__)

BAD_CIDER = 0.2  # a caption is "bad" below this per-photo CIDEr-D (issue 21's definition)


# --------------------------------------------------------------------------- features


def pooled_features(cache: FeatureCache, names: Sequence[str], path: Path) -> np.ndarray:
    """(N, 1280) fp32 mean over the 7x7 grid of each photo (not its mirror), cached in path."""
    if path.exists():
        pooled = np.load(path)
        if pooled.shape[0] == len(names):
            return pooled
    mm = cache.memmap("r")
    rows = np.array([cache.index[n] for n in names])
    order = np.argsort(rows)  # read the memmap front to back
    out = np.zeros((len(names), mm.shape[-1]), dtype=np.float32)
    for lo in range(0, len(order), 512):
        pick = order[lo : lo + 512]
        out[pick] = mm[rows[pick], 0].astype(np.float32).mean(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def beam_candidates(
    model: CaptionModel,
    vocab: Vocab,
    features: torch.Tensor,
    beam: int,
    batch_size: int = 50,
) -> list[list[Candidate]]:
    """Up to `beam` candidates per photo from (P, 49, 1280) cached features (the app's beam
    search and its confidence signals, the channel share included)."""
    settings = CaptionSettings(beam_size=beam, n_candidates=beam)
    out: list[list[Candidate]] = []
    with torch.inference_mode():
        for lo in range(0, len(features), batch_size):
            f = features[lo : lo + batch_size].float()
            off = (f.mean(1) < 0).float().mean(1).tolist()
            memory = model.encode_features(f)
            found = beam_search(model, vocab, memory, settings)
            out += [
                [replace(c, inactive_channels=o) for c in cands]
                for cands, o in zip(found, off, strict=True)
            ]
    return out


# --------------------------------------------------------------------------- own captions


def shippable_caption(candidates: Sequence[str], references: Sequence[str]) -> str | None:
    """The best of the model's candidates for a training photo that is not word for word one of
    the photo's own human captions (a memorised caption would put that text in the file)."""
    refs = {normalize_caption(r) for r in references}
    for c in candidates:
        if c and normalize_caption(c) not in refs:
            return c
    return None


def caption_training_photos(
    model: CaptionModel,
    vocab: Vocab,
    cache: FeatureCache,
    examples: Sequence[Example],
    out: Path,
    beam: int = 3,
    chunk: int = 256,
) -> list[dict]:
    """The model's own candidates for every training photo, as JSON lines in out, resuming after
    the lines already there (each line: name, candidates)."""
    done: list[dict] = []
    if out.exists():
        done = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    names = [e.name for e in examples]
    if [d["name"] for d in done] != names[: len(done)]:
        raise ValueError(f"{out}: written for another photo list; delete it to start again")
    t0, start = time.perf_counter(), len(done)
    with out.open("a") as f:
        for lo in range(len(done), len(names), chunk):
            part = names[lo : lo + chunk]
            feats = cache.load(part)[:, 0]
            cands = beam_candidates(model, vocab, feats, beam)
            for n, cs in zip(part, cands, strict=True):
                row = {"name": n, "candidates": [c.caption for c in cs]}
                f.write(json.dumps(row) + "\n")
                done.append(row)
            f.flush()
            rate = (len(done) - start) / (time.perf_counter() - t0)
            log.info(
                "own captions %d/%d (%.1f photos/s, ETA %.0f s)",
                len(done),
                len(names),
                rate,
                (len(names) - len(done)) / max(rate, 1e-9),
            )
    return done


def own_captions(
    rows: Sequence[dict], examples: Sequence[Example], pick: str = "first"
) -> tuple[list[list[tuple[str, ...]]], dict]:
    """Per training photo, its shippable own caption (as words; none if every candidate was
    one of its human captions), and counts of how often the best one was memorised.

    pick "first": the model's best candidate; "closest": the candidate closest to the photo's
    human captions (CIDEr-D, document frequencies of all the photos' captions): still text the
    model wrote, chosen by what people said (as training fits the weights to it)."""
    out, verbatim, none = [], 0, 0
    cider = None
    if pick == "closest":
        cider = CiderD([[tokenize(c) for c in e.captions] for e in examples])
    for row, e in zip(rows, examples, strict=True):
        assert row["name"] == e.name
        cands = row["candidates"]
        refs = {normalize_caption(r) for r in e.captions}
        verbatim += bool(cands) and normalize_caption(cands[0]) in refs
        allowed = [c for c in cands if c and normalize_caption(c) not in refs]
        if cider is not None and len(allowed) > 1:
            prepared = cider.prepare_refs([tokenize(c) for c in e.captions])
            allowed.sort(key=lambda c: -cider.score(c.split(), prepared))
        chosen = allowed[0] if allowed else None
        none += chosen is None
        out.append([tuple(chosen.split())] if chosen else [])
    return out, {
        "photos": len(out),
        "pick": pick,
        "best_candidate_is_a_human_caption_of_the_photo": verbatim,
        "no_shippable_candidate": none,
    }


# --------------------------------------------------------------------------- scoring


class SplitScorer:
    """pycocoevalcap's CIDEr-D (PTB tokenizer) for one dev split, candidates tokenized once."""

    def __init__(self, examples: Sequence[Example], candidates: Sequence[Sequence[str]]) -> None:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tok = PTBTokenizer()
        self.names = [e.name for e in examples]
        self.gts = tok.tokenize(
            {
                n: [{"caption": c} for c in e.captions]
                for n, e in zip(self.names, examples, strict=True)
            }
        )
        flat = {
            f"{i}#{j}": [{"caption": c or "a"}]
            for i, cs in enumerate(candidates)
            for j, c in enumerate(cs)
        }
        self.hyp = tok.tokenize(flat)

    def cider(self, choice: Sequence[int]) -> tuple[float, list[float]]:
        """Mean and per-photo CIDEr-D when photo i says its candidate choice[i]."""
        from pycocoevalcap.cider.cider import Cider

        res = {
            n: self.hyp[f"{i}#{j}"] for i, (n, j) in enumerate(zip(self.names, choice, strict=True))
        }
        mean, each = Cider().compute_score(self.gts, res)
        per = dict(zip(self.gts.keys(), (float(x) for x in each), strict=True))
        return float(mean), [per[n] for n in self.names]


def agreements(
    consensus: Consensus,
    candidates: Sequence[Sequence[Candidate]],
    neighbours: torch.Tensor,
    k: int,
) -> list[list[float]]:
    """Per photo and candidate, CIDEr-D against the captions of the photo's k nearest."""
    return [
        [consensus.agreement(c.caption, photos[:k]) for c in cands]
        for cands, photos in zip(candidates, neighbours.tolist(), strict=True)
    ]


def choose(
    candidates: Sequence[Sequence[Candidate]], agree: Sequence[Sequence[float]], weight: float
) -> list[int]:
    """Per photo, the candidate with the best agreement + weight * log-probability."""
    return [
        rerank_order([c.score for c in cs], a, weight)[0]
        for cs, a in zip(candidates, agree, strict=True)
    ]


def recall_at_share(good: np.ndarray, score: np.ndarray, share: float) -> float:
    """Share of the bad captions among the `share` of photos with the lowest score."""
    n_marked = int(round(share * len(score)))
    marked = np.argsort(score, kind="stable")[:n_marked]
    bad = ~good
    return float(bad[marked].sum() / max(bad.sum(), 1))


# --------------------------------------------------------------------------- the experiment


def run_consensus(
    args: argparse.Namespace,
    train: Sequence[Example],
    dev: Mapping[str, tuple[list[Example], torch.Tensor]],
    cache: FeatureCache,
) -> int:
    torch.manual_seed(0)
    ckpt = load_checkpoint(args.weights)
    model, vocab = ckpt.build_model(), ckpt.vocab
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pooled = torch.from_numpy(
        pooled_features(cache, [e.name for e in train], work / "pooled_train.npy")
    )
    log.info(
        "pooled features of %d training photos (%.0f s)", len(pooled), time.perf_counter() - t0
    )
    report: dict = {
        "weights": str(args.weights),
        "features": "cached encoder maps (bf16 autocast encoder on this AMX CPU, stored fp16)",
        "beam": args.beam,
        "splits": {},
    }
    sources, subsets = _caption_sources(args, train, report)
    report["datastore_photos"] = {name: len(p) for name, p in subsets.items()}
    indexes = {
        (name, d): NeighbourIndex.fit(pooled[torch.tensor(photos)], d)
        for name, photos in subsets.items()
        for d in args.dims
    }
    for split, (examples, feats) in dev.items():
        report["splits"][split] = _measure_split(
            args, split, examples, feats, (model, vocab), sources, indexes
        )
    report["review"] = review_report(report, list(sources), args)
    for split in report["splits"].values():
        split.pop("_signal")
    report["summary"] = summarise(report, list(sources))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, indent=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(json.dumps(report["summary"], indent=1))
    print(json.dumps(report["review"], indent=1))
    return 0


def _caption_sources(
    args: argparse.Namespace, train: Sequence[Example], report: dict
) -> tuple[dict[str, Consensus], dict[str, list[int]]]:
    """Per caption source: the training photos that have captions of that kind and their
    captions (own captions may cover a prefix of the photos while the rest are still being
    captioned); the own captions' counts go into the report."""
    sources: dict[str, Consensus] = {}
    subsets: dict[str, list[int]] = {}
    wanted = getattr(args, "sources", None) or ["human", "own"]

    def add_source(name: str, captions: list, photos: list[int]) -> None:
        dummy = NeighbourIndex(torch.zeros(1), torch.zeros(1, 1), torch.zeros(len(photos), 1))
        sources[name] = Consensus(dummy, [captions[i] for i in photos])
        subsets[name] = photos

    if "human" in wanted:
        human = [[tuple(tokenize(c)) for c in e.captions] for e in train]
        add_source("human", human, list(range(len(train))))
    own_sources = {"own": "first", "own_closest": "closest"}
    if set(own_sources) & set(wanted) and args.own_captions is not None:
        rows = [json.loads(x) for x in args.own_captions.read_text().splitlines() if x.strip()]
        rows = rows[: len(train)]
        if len(rows) < len(train):
            log.warning("%s: %d of %d photos captioned", args.own_captions, len(rows), len(train))
        for name, pick in own_sources.items():
            if name in wanted:
                own, counts = own_captions(rows, train[: len(rows)], pick)
                add_source(name, own, [i for i, caps in enumerate(own) if caps])
                report[f"{name}_captions"] = {**counts, "of_training_photos": len(train)}
    return sources, subsets


def _measure_split(
    args: argparse.Namespace,
    split: str,
    examples: list[Example],
    feats: torch.Tensor,
    model_vocab: tuple[CaptionModel, Vocab],
    sources: dict[str, Consensus],
    indexes: dict[tuple[str, int], NeighbourIndex],
) -> dict:
    """One dev split's report: plain beam search, the oracle, the grid of reranking settings,
    and (under "_signal") the review signal of the app's caption."""
    model, vocab = model_vocab
    t = time.perf_counter()
    beam3 = beam_candidates(model, vocab, feats, 3)
    wide = beam_candidates(model, vocab, feats, args.beam)
    log.info("%s: beam candidates in %.0f s", split, time.perf_counter() - t)
    scorer = SplitScorer(examples, [[c.caption for c in cs] for cs in wide])
    scorer3 = SplitScorer(examples, [[c.caption for c in cs] for cs in beam3])
    base3, per3 = scorer3.cider([0] * len(examples))
    base_wide, _ = scorer.cider([0] * len(examples))
    per_cand = [scorer.cider([min(j, len(cs) - 1) for cs in wide])[1] for j in range(args.beam)]
    oracle = float(np.mean(np.max(np.array(per_cand), axis=0)))
    rows = []
    pooled_dev = feats.float().mean(1)
    for (src, dims), index in indexes.items():
        sims, idx = index.search(pooled_dev, max(args.k))
        for k in args.k:
            agree = agreements(sources[src], wide, idx, k)
            for w in args.weights_grid:
                mean, per = scorer.cider(choose(wide, agree, w))
                row = {"captions": src, "dims": dims or 1280, "k": k, "weight": w, "CIDEr": mean}
                rows.append(row)
                log.info("%s %s", split, json.dumps(row))
    # Review signal (issue 21): agreement of the app's caption (beam 3, best) with the
    # neighbours' captions, and the neighbours' mean similarity.
    signal: dict = {
        "good": [c >= BAD_CIDER for c in per3],
        "features": [list(confidence_features(cs)) for cs in beam3],
    }
    for src, cons in sources.items():
        sims, idx = indexes[(src, args.review_dims)].search(pooled_dev, args.review_k)
        signal.setdefault("similarity", sims.mean(1).tolist())  # of the first source's photos
        signal[f"agreement_{src}"] = [
            cons.agreement(cs[0].caption, photos) if cs else 0.0
            for cs, photos in zip(beam3, idx.tolist(), strict=True)
        ]
    return {
        "photos": len(examples),
        "v3_beam3": base3,
        f"v3_beam{args.beam}": base_wide,
        f"oracle_beam{args.beam}": oracle,
        "grid": rows,
        "_signal": signal,
    }


def summarise(report: dict, sources: Sequence[str]) -> dict:
    """Per caption source and dimension, the setting with the best mean CIDEr-D over the splits."""
    splits = list(report["splits"])
    table: dict[tuple, dict[str, float]] = {}
    for split in splits:
        for r in report["splits"][split]["grid"]:
            key = (r["captions"], r["dims"], r["k"], r["weight"])
            table.setdefault(key, {})[split] = r["CIDEr"]
    out: dict = {"v3_beam3": {s: report["splits"][s]["v3_beam3"] for s in splits}}
    for src in sources:
        for dims in sorted({k[1] for k in table}):
            keys = [
                k for k in table if k[0] == src and k[1] == dims and len(table[k]) == len(splits)
            ]
            if not keys:
                continue
            best = max(keys, key=lambda k: np.mean(list(table[k].values())))
            out[f"{src}_captions_{dims}d"] = {
                "k": best[2],
                "weight": best[3],
                **table[best],
                "mean": float(np.mean(list(table[best].values()))),
            }
    return out


def review_report(report: dict, sources: Sequence[str], args: argparse.Namespace) -> dict:
    """AUROC of each signal for good vs bad captions per split, alone and together with today's
    eight confidence features (logistic regression, 5-fold cross-validated over both splits)."""
    splits = list(report["splits"])
    sig = {s: report["splits"][s]["_signal"] for s in splits}
    good = np.concatenate([np.array(sig[s]["good"], dtype=bool) for s in splits])
    which = np.concatenate([np.full(len(sig[s]["good"]), s) for s in splits])
    base = np.concatenate([np.array(sig[s]["features"], dtype=np.float64) for s in splits])
    extra = {
        name: np.concatenate([np.array(sig[s][name], dtype=np.float64) for s in splits])
        for name in ["similarity", *(f"agreement_{src}" for src in sources)]
    }
    variants: dict[str, np.ndarray] = {"confidence_8_features": base}
    for name, v in extra.items():
        variants[f"8_features+{name}"] = np.column_stack([base, v])
    for src in sources:
        variants[f"8_features+agreement_{src}+similarity"] = np.column_stack(
            [base, extra[f"agreement_{src}"], extra["similarity"]]
        )
    out: dict = {
        "caption": "the app's caption (beam 3, best), v3",
        "bad": f"per-photo CIDEr-D < {BAD_CIDER}",
        "neighbours": {"k": args.review_k, "dims": args.review_dims or 1280},
        "splits": {},
    }
    scores = {name: cross_validated(x, good.astype(np.float64)) for name, x in variants.items()}
    for s in splits:
        m = which == s
        row: dict = {"photos": int(m.sum()), "bad_share": float(1 - good[m].mean())}
        for name, v in extra.items():
            row[f"auroc_{name}_alone"] = auroc(good[m], v[m])
        for name, p in scores.items():
            row[f"auroc_{name}_cv"] = auroc(good[m], p[m])
            row[f"bad_caught_at_30pct_marked_{name}"] = recall_at_share(good[m], p[m], 0.3)
        out["splits"][s] = row
    return out


# --------------------------------------------------------------------------- the shipped file


def build_datastore(
    train: Sequence[Example],
    pooled: torch.Tensor,
    rows: Sequence[dict],
    dims: int | None,
    settings: ConsensusSettings,
    pick: str = "first",
) -> tuple[Consensus, dict]:
    """The shippable datastore: the training photos' reduced pooled features and the model's own
    caption of each (never one of the photo's human captions; pick: see own_captions). Photos
    without one are left out."""
    own, counts = own_captions(rows, train, pick)
    keep = [i for i, caps in enumerate(own) if caps]
    index = NeighbourIndex.fit(pooled[keep], dims)
    return Consensus(index, [own[i] for i in keep], settings), {**counts, "kept": len(keep)}


def write_with_datastore(
    weights: Path, out: Path, consensus: Consensus, provenance_extra: dict
) -> int:
    """Copy a model file, adding the datastore tensors and the reranker's settings."""
    ckpt = load_checkpoint(weights)
    model = ckpt.build_model()
    vocab = ckpt.vocab
    tensors = consensus.to_tensors(vocab.stoi, vocab.pad_id)
    provenance = {
        **ckpt.provenance,
        "consensus": {**consensus.settings.to_dict(), **provenance_extra},
    }
    dtype = next(t.dtype for t in ckpt.state_dict.values() if t.is_floating_point())
    save_checkpoint(out, model, vocab, provenance, dtype=dtype, extra=tensors)
    return sum(t.numel() * t.element_size() for t in tensors.values())
