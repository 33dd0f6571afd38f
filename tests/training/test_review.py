"""The review mark's fit (issue 21): signals as the app computes them, the threshold, the model."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.confidence import FEATURES
from core.consensus import Consensus, ConsensusSettings, NeighbourIndex
from core.datatypes import Candidate
from core.inference import load_calibration, load_consensus
from training.data import Example
from training.review import (
    fit,
    highest_threshold,
    human_strictness,
    isotonic,
    operating_point,
)


def test_isotonic_is_the_closest_non_decreasing_fit() -> None:
    ends, values = isotonic(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 1.0, 0.0, 1.0]))
    assert list(values) == [0.0, 0.5, 1.0] and list(ends) == [0.1, 0.3, 0.4]
    assert np.all(np.diff(values) >= 0)


def test_the_threshold_marks_at_most_the_share_asked_on_every_split() -> None:
    split_of = np.array(["flickr8k"] * 10 + ["coco"] * 10)
    p = np.r_[np.linspace(0.05, 0.95, 10), np.linspace(0.35, 0.99, 10)]
    t = highest_threshold([p], split_of, most=0.3)
    assert (p[:10] < t).mean() <= 0.3 and (p[10:] < t).mean() <= 0.3
    assert (p[:10] < t + 0.01).mean() > 0.3 or (p[10:] < t + 0.01).mean() > 0.3
    bad = p < 0.5
    point = operating_point(p, bad, split_of, t)
    assert point["flickr8k"]["marked"] == (p[:10] < t).mean()
    assert point["flickr8k"]["bad_caught"] == (p[:10][bad[:10]] < t).mean()


def test_fit_writes_a_calibrated_signal_only_model(tmp_path: Path, tiny_model, tiny_vocab) -> None:
    g = torch.Generator().manual_seed(3)
    store = torch.randn(40, 1280, generator=g)
    words = ["dog", "cat", "man", "woman"]
    captions = [[("a", words[i % 4], "on", "the", "grass")] for i in range(40)]
    cons = Consensus(NeighbourIndex.fit(store, 8), captions, ConsensusSettings(k=5, weight=0.5))
    weights = tmp_path / "store.safetensors"
    save_checkpoint(
        weights,
        tiny_model,
        tiny_vocab,
        {"consensus": cons.settings.to_dict()},
        extra=cons.to_tensors(tiny_vocab.stoi, tiny_vocab.pad_id),
    )
    # Photos near the dog photos captioned "a dog ..." are good; the others are poor.
    rng = np.random.default_rng(0)
    pooled = np.zeros((60, 1280), dtype=np.float32)
    splits: dict = {"flickr8k": {"photos": {}}, "coco": {"photos": {}}}
    for i in range(60):
        near = i % 4
        pooled[i] = store[near].numpy() + rng.normal(0, 0.3, 1280)
        good = i % 3 != 0
        caption = f"a {words[near] if good else 'bus'} on the grass"
        cands = [
            Candidate(caption=caption, score=-0.5 - rng.random()),
            Candidate(caption="a bus", score=-1.5),
        ]
        splits["flickr8k" if i < 40 else "coco"]["photos"][f"p{i}.jpg"] = {
            "caption": caption,
            "candidates": [asdict(c) for c in cands],
            "cider": 0.8 if good else 0.05,
        }
    collected = tmp_path / "dev.json"
    collected.write_text(json.dumps({"splits": splits}))
    np.save(tmp_path / "dev.pooled.npy", pooled)
    out, report = tmp_path / "marked.safetensors", tmp_path / "reports" / "mark"
    args = argparse.Namespace(collected=collected, weights=weights, k=5, out=out, report=report)
    assert fit(args) == 0

    written = json.loads(report.with_suffix(".json").read_text())
    assert written["splits"]["flickr8k"]["auroc_fitted"] > 0.9, "agreement separates them"
    assert report.with_suffix(".png").is_file()
    ckpt = load_checkpoint(out)
    assert load_consensus(ckpt).settings == ConsensusSettings(k=5, weight=0.0, rerank=False)
    calibration = load_calibration(ckpt)
    assert len(calibration.weights) == len(FEATURES) and calibration.threshold == 0.2
    assert ckpt.provenance["confidence"]["check_below"] == written["check_below"]


def test_strictness_scores_each_human_caption_against_the_others() -> None:
    """Each reference is left out in turn and scored against the other four, and the model's
    caption against the same four; a photo with fewer than five references is left out."""
    calls: list[tuple[int, str]] = []

    def exact(refs: dict[str, list[str]], hyps: dict[str, str]) -> dict[str, float]:
        for name, refs_of in refs.items():
            calls.append((len(refs_of), hyps[name]))
        return {n: 1.0 if hyps[n] in refs[n] else 0.0 for n in hyps}

    same = Example("a.jpg", Path("a.jpg"), ("a dog",) * 5)  # every caption agrees
    one_off = Example("b.jpg", Path("b.jpg"), ("a cat",) * 4 + ("a sofa",))
    few = Example("c.jpg", Path("c.jpg"), ("a car",) * 3)
    report = human_strictness(
        [same, one_off, few], {"a.jpg": "a dog", "b.jpg": "a sofa", "c.jpg": "a car"}, exact
    )
    assert report["photos"] == 2
    assert report["references_each_is_scored_against"] == 4
    assert {n for n, _ in calls} == {4}, "always the other four"
    assert report["human_captions_bad"] == 1 / 10  # only "a sofa", against four "a cat"
    assert report["photos_with_a_bad_human_caption"] == 1 / 2
    # "a sofa" from the model meets "a sofa" among the references only when it is not left out.
    assert report["model_captions_bad"] == 1 / 10
