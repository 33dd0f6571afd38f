"""The review mark (issue 21): each dev photo's caption signals collected once through the app's
Captioner, and the mark's quality model fitted on them, cross-fitted so no photo scores itself."""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.confidence import FEATURES, Calibration, confidence_features
from core.consensus import ConsensusSettings
from core.datatypes import Candidate
from core.inference import Captioner, CaptionSettings, load_consensus, load_matcher, with_matches
from training.calibrate import _predict, cross_validated, fit_logistic, reliability
from training.data import Corpus, Example
from training.metrics import auroc, score_captions

log = logging.getLogger(__name__)


class _Recording(Captioner):
    """A Captioner that keeps every batch's pooled encoder features, in the order photos go in."""

    recorded: list[torch.Tensor]

    def _encode(self, images):  # type: ignore[override]
        memory, inactive, pooled = super()._encode(images)
        self.recorded.append(pooled.cpu())
        return memory, inactive, pooled


def collect(args: argparse.Namespace) -> int:
    """Caption every dev photo from its file; write per photo its candidates, signals, pooled
    features and its caption's CIDEr-D against the human captions (per split, as evaluate does)."""
    corpus = Corpus.load(args.data, args.coco, coco_dev_file=args.coco_dev)
    captioner = _Recording(args.weights, device="cpu")
    captioner.recorded = []
    settings = CaptionSettings(beam_size=args.beam, batch_size=args.batch_size)
    out: dict = {"settings": {"weights": str(args.weights), "beam": args.beam}, "splits": {}}
    pooled_rows: list[np.ndarray] = []
    names: list[str] = []
    for split, examples in corpus.dev.items():
        examples = list(examples)
        by_path = {e.path: e for e in examples}
        t0 = time.perf_counter()
        made: dict[str, dict] = {}
        start = sum(len(r) for r in captioner.recorded)
        for r in captioner.caption_paths([e.path for e in examples], settings):
            if not r.ok:
                raise RuntimeError(f"{r.path}: {r.error}")  # dev photos all decode
            made[by_path[r.path].name] = {
                "caption": r.caption or "",
                "confidence": r.confidence,
                "features": list(confidence_features(r.candidates)),
                "candidates": [asdict(c) for c in r.candidates],
            }
        pooled = torch.cat(captioner.recorded)[start:].numpy()
        assert len(pooled) == len(made), (len(pooled), len(made))
        # The recorded rows follow the results' order: check by the channel share.
        off = (pooled < 0).mean(1)
        inactive = np.array([m["candidates"][0]["inactive_channels"] for m in made.values()])
        assert np.abs(off - inactive).max() < 1e-5, "pooled features out of order"
        seconds = time.perf_counter() - t0
        refs = {e.name: list(e.captions) for e in examples if e.name in made}
        per_photo: dict[str, float] = {}
        scores = score_captions(refs, {n: m["caption"] for n, m in made.items()}, False, per_photo)
        for n, c in per_photo.items():
            made[n]["cider"] = c
        log.info("%s: %d photos, %.0f s, CIDEr-D %.3f", split, len(made), seconds, scores["CIDEr"])
        out["splits"][split] = {"scores": scores, "seconds": seconds, "photos": made}
        names += [f"{split}/{n}" for n in made]
        pooled_rows.append(pooled)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, ensure_ascii=False) + "\n")
    np.save(args.out.with_suffix(".pooled.npy"), np.concatenate(pooled_rows).astype(np.float32))
    args.out.with_suffix(".names.txt").write_text("\n".join(names) + "\n")
    return 0


# --------------------------------------------------------------------------- the mark


BAD_CIDER = 0.2  # a caption is "bad" below this per-photo CIDEr-D (issue 21's definition)
MAX_MARKED = 0.30  # the mark goes on at most this share of the photos of any dev split
SPLITS = ("flickr8k", "coco")


def signals(collected: dict, pooled: np.ndarray, weights: Path, k: int) -> tuple[np.ndarray, ...]:
    """FEATURES of every collected photo as the app computes them with this model file's
    datastore (its k nearest training photos, no reranking) and image-text matcher (when it has
    one), the photos' per-photo CIDEr-D and their split names."""
    ckpt = load_checkpoint(weights)
    consensus = load_consensus(ckpt)
    matcher = load_matcher(ckpt)
    if consensus is None:
        raise SystemExit(f"{weights}: no datastore (python -m training datastore makes one)")
    consensus.settings = ConsensusSettings(k=k, weight=0.0, rerank=False)
    feats, cider, split_of = [], [], []
    photos = [(s, m) for s, d in collected["splits"].items() for m in d["photos"].values()]
    assert len(photos) == len(pooled)
    for lo in range(0, len(photos), 256):
        chunk = photos[lo : lo + 256]
        cands = [[Candidate(**c) for c in m["candidates"]] for _, m in chunk]
        ranked = consensus.rerank(cands, torch.from_numpy(pooled[lo : lo + 256]))
        if matcher is not None:
            ranked = with_matches(
                matcher, ckpt.vocab, ranked, torch.from_numpy(pooled[lo : lo + 256])
            )
        feats += [confidence_features(c) for c in ranked]
        cider += [m["cider"] for _, m in chunk]
        split_of += [s for s, _ in chunk]
    return np.array(feats), np.array(cider), np.array(split_of)


def cross_fitted(x: np.ndarray, y: np.ndarray, folds: int = 5, seeds: int = 3) -> np.ndarray:
    """Each photo's P(good) from logistic regressions fitted without it (k folds, averaged
    over several fold draws)."""
    return np.mean([cross_validated(x, y, folds, seed) for seed in range(seeds)], axis=0)


def isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the non-decreasing step function of x closest to y (knots)."""
    order = np.argsort(x, kind="mergesort")
    values: list[float] = []
    weights: list[float] = []
    ends: list[float] = []
    for xi, yi in zip(x[order], y[order], strict=True):
        values.append(float(yi))
        weights.append(1.0)
        ends.append(float(xi))
        while len(values) > 1 and values[-2] > values[-1]:
            w = weights[-2] + weights[-1]
            values[-2] = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w
            weights[-2] = w
            ends[-2] = ends[-1]
            del values[-1], weights[-1], ends[-1]
    return np.array(ends), np.array(values)


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    edges = np.minimum((p * bins).astype(int), bins - 1)
    return float(
        sum(
            abs(p[edges == b].mean() - y[edges == b].mean()) * (edges == b).mean()
            for b in range(bins)
            if (edges == b).any()
        )
    )


def operating_point(p: np.ndarray, bad: np.ndarray, split_of: np.ndarray, below: float) -> dict:
    """Per split: the share of photos marked (confidence below `below`) and of bad captions
    among them."""
    out = {}
    for s in SPLITS:
        m = split_of == s
        out[s] = {
            "marked": float((p[m] < below).mean()),
            "bad_caught": float((p[m][bad[m]] < below).mean()),
        }
    return out


def highest_threshold(
    scores: list[np.ndarray], split_of: np.ndarray, most: float = MAX_MARKED
) -> float:
    """The highest threshold (2 decimals) that marks at most `most` of every split's photos by
    each of the scores (cross-fitted, and as shipped: fitted on every photo)."""
    best = 0.0
    for t in np.arange(0.01, 1.0, 0.01):
        if max((p[split_of == s] < t).mean() for p in scores for s in SPLITS) > most:
            break
        best = round(float(t), 2)
    return best


def fit(args: argparse.Namespace) -> int:
    collected = json.loads(args.collected.read_text())
    pooled = np.load(args.collected.with_suffix(".pooled.npy"))
    x, cider, split_of = signals(collected, pooled, args.weights, args.k)
    good = (cider >= BAD_CIDER).astype(np.float64)
    bad = ~good.astype(bool)
    w = fit_logistic(x, good)
    i_margin, i_agree = FEATURES.index("margin"), FEATURES.index("agreement")
    i_match = FEATURES.index("match")
    lone = (float(x[:, i_margin].mean()), float(x[:, i_agree].mean()))
    cal = Calibration(tuple(float(v) for v in w[:-1]), float(w[-1]), BAD_CIDER, lone)
    cv = cross_fitted(x, good)
    fitted = _predict(w, x)
    below = highest_threshold([cv, fitted], split_of)
    knots = isotonic(cv, good)
    iso = np.interp(cv, *knots)
    report: dict = {
        "bad_cider_below": BAD_CIDER,
        "features": list(FEATURES),
        "datastore_k": args.k,
        "check_below": below,
        "splits": {},
        "at_check_below_cross_fitted": operating_point(cv, bad, split_of, below),
        "at_check_below_fitted": operating_point(fitted, bad, split_of, below),
        "at_70_percent_caught": {},
        "calibration_error_cross_fitted": {
            "logistic": expected_calibration_error(cv, good),
            "isotonic_after_logistic_in_sample": expected_calibration_error(iso, good),
        },
        "reliability": reliability(cv, good),
        "calibration": cal.to_dict(),
    }
    for s in SPLITS:
        m = split_of == s
        report["splits"][s] = {
            "photos": int(m.sum()),
            "bad_share": float(bad[m].mean()),
            "auroc_cross_fitted": auroc(good[m].astype(bool), cv[m]),
            "auroc_fitted": auroc(good[m].astype(bool), fitted[m]),
            "auroc_first_eight_features_cross_fitted": auroc(
                good[m].astype(bool), cross_fitted(x[:, :8], good)[m]
            ),
            "auroc_without_match_cross_fitted": auroc(
                good[m].astype(bool), cross_fitted(x[:, :i_match], good)[m]
            ),
        }
        # The share of photos one must mark to catch 70% of this split's bad captions.
        t = float(np.quantile(cv[m][bad[m]], 0.70))
        report["at_70_percent_caught"][s] = {"marked": float((cv[m] <= t).mean())}
    ckpt = load_checkpoint(args.weights)
    provenance = {
        **ckpt.provenance,
        "confidence": {
            **cal.to_dict(),
            "auroc": {s: v["auroc_cross_fitted"] for s, v in report["splits"].items()},
            "check_below": below,
        },
        "consensus": {
            **ckpt.provenance.get("consensus", {}),
            **ConsensusSettings(k=args.k, weight=0.0, rerank=False).to_dict(),
        },
    }
    dtype = next(t.dtype for t in ckpt.state_dict.values() if t.is_floating_point())
    save_checkpoint(
        args.out, ckpt.build_model(), ckpt.vocab, provenance, dtype=dtype, extra=ckpt.extra
    )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    _plot(report, args.report.with_suffix(".png"))
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "splits",
                    "check_below",
                    "at_check_below_cross_fitted",
                    "at_70_percent_caught",
                )
            },
            indent=1,
        )
    )
    return 0


# --------------------------------------------------------------------------- how strict "bad" is

PerPhotoScorer = Callable[[dict[str, list[str]], dict[str, str]], dict[str, float]]


def _coco_per_photo(refs: dict[str, list[str]], hyps: dict[str, str]) -> dict[str, float]:
    per_photo: dict[str, float] = {}
    score_captions(refs, hyps, False, per_photo)
    return per_photo


def human_strictness(
    examples: Sequence[Example],
    captions: Mapping[str, str],
    scorer: PerPhotoScorer = _coco_per_photo,
    references: int = 5,
) -> dict:
    """How often issue 21's rule (per-photo CIDEr-D below BAD_CIDER) calls a caption a person
    wrote "bad": each of a photo's ``references`` human captions scored against the others,
    and the model's caption (``captions``, by photo name) against the same others, so both
    meet the same number of references. Photos with fewer references are left out."""
    kept = [e for e in examples if len(e.captions) >= references and e.name in captions]
    if not kept:
        raise ValueError("no photo has enough references and a caption")
    human = np.empty((references, len(kept)))
    model = np.empty((references, len(kept)))
    for j in range(references):
        others = {
            e.name: [c for i, c in enumerate(e.captions[:references]) if i != j] for e in kept
        }
        by_human = scorer(others, {e.name: e.captions[j] for e in kept})
        by_model = scorer(others, {e.name: captions[e.name] for e in kept})
        human[j] = [by_human[e.name] for e in kept]
        model[j] = [by_model[e.name] for e in kept]
    return {
        "photos": len(kept),
        "references_each_is_scored_against": references - 1,
        "human_captions_bad": float((human < BAD_CIDER).mean()),
        "human_mean_cider": float(human.mean()),
        "photos_with_a_bad_human_caption": float((human < BAD_CIDER).any(0).mean()),
        "model_captions_bad": float((model < BAD_CIDER).mean()),
        "model_mean_cider": float(model.mean()),
    }


def strictness(args: argparse.Namespace) -> int:
    """Write human_strictness for each dev split of a collected file (its model captions)."""
    collected = json.loads(args.collected.read_text())
    corpus = Corpus.load(args.data, args.coco, coco_dev_file=args.coco_dev)
    report: dict = {
        "what": (
            "How strict issue 21's bad label (per-photo CIDEr-D below "
            f"{BAD_CIDER}) is: each of a dev photo's five human captions scored against the "
            "other four, and the model's caption (beam 3, from the collected file) against the "
            "same four. A person's caption is right by definition, so its bad share shows how "
            "often the rule calls a right caption bad."
        ),
        "collected": str(args.collected),
        "splits": {},
    }
    for split, examples in corpus.dev.items():
        made = collected["splits"].get(split, {}).get("photos", {})
        report["splits"][split] = human_strictness(
            examples, {n: m["caption"] for n, m in made.items()}
        )
        log.info("%s: %s", split, report["splits"][split])
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["splits"], indent=1))
    return 0


def _plot(report: dict, out: Path) -> None:
    from training.calibrate import plot

    plot(
        {
            "reliability": report["reliability"],
            "threshold_cider": report["bad_cider_below"],
            "splits": {
                s: {"auroc_cross_validated": v["auroc_cross_fitted"]}
                for s, v in report["splits"].items()
            },
        },
        out,
    )


def main() -> int:
    from training.data import COCO_DEV_FILE

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m training.review", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def dev_photos(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Where the dev photos and their human captions are (Corpus.load's arguments)."""
        parser.add_argument("--data", type=Path, default=Path("../shared/flickr8k"))
        parser.add_argument("--coco", type=Path, default=None)
        parser.add_argument("--coco-dev", type=Path, default=COCO_DEV_FILE)
        return parser

    c = dev_photos(sub.add_parser("collect", help="caption the dev photos once, keep signals"))
    c.add_argument("--weights", type=Path, default=None)
    c.add_argument("--beam", type=int, default=3)
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument("--out", type=Path, required=True)
    f = sub.add_parser("fit", help="fit the confidence on collected signals; write the model")
    f.add_argument("--collected", type=Path, required=True, help="from collect")
    f.add_argument("--weights", type=Path, required=True, help="model file with a datastore")
    f.add_argument("--k", type=int, default=10, help="nearest training photos that vote")
    f.add_argument("--out", type=Path, required=True, help="model file to write")
    f.add_argument("--report", type=Path, default=Path("training/reports/review_mark.json"))
    h = dev_photos(sub.add_parser("strictness", help="how often bad hits human captions"))
    h.add_argument("--collected", type=Path, required=True, help="from collect")
    h.add_argument(
        "--report", type=Path, default=Path("training/reports/review_label_strictness.json")
    )
    args = p.parse_args()
    commands = {"collect": collect, "fit": fit, "strictness": strictness}
    return commands[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
