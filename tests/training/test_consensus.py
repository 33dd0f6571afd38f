"""Consensus reranking experiment pieces: own captions, choices, the shippable datastore."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from core.checkpoint import load_checkpoint
from core.consensus import ConsensusSettings
from core.datatypes import Candidate
from core.inference import Captioner
from core.model import CaptionModel
from training.consensus import (
    build_datastore,
    caption_training_photos,
    choose,
    own_captions,
    pooled_features,
    recall_at_share,
    shippable_caption,
    write_with_datastore,
)
from training.data import Example
from training.features import FeatureCache


def _examples(n: int) -> list[Example]:
    return [
        Example(f"p{i}.jpg", Path(f"p{i}.jpg"), (f"A dog number {i} runs .", "a red ball"))
        for i in range(n)
    ]


def test_a_memorised_caption_is_never_the_shippable_one() -> None:
    refs = ("A red ball .", "a dog runs")
    assert shippable_caption(["a red ball", "a red ball on grass"], refs) == "a red ball on grass"
    assert shippable_caption(["a dog runs"], refs) is None
    assert shippable_caption(["a cat"], refs) == "a cat"


def test_own_captions_counts_what_was_memorised() -> None:
    ex = _examples(3)
    rows = [
        {"name": "p0.jpg", "candidates": ["a red ball", "a ball"]},
        {"name": "p1.jpg", "candidates": ["a cat sits"]},
        {"name": "p2.jpg", "candidates": ["a red ball"]},
    ]
    caps, counts = own_captions(rows, ex)
    assert caps == [[("a", "ball")], [("a", "cat", "sits")], []]
    assert counts["best_candidate_is_a_human_caption_of_the_photo"] == 2
    assert counts["no_shippable_candidate"] == 1


def test_choose_weighs_agreement_against_log_probability() -> None:
    cands = [[Candidate(caption="x", score=-0.2), Candidate(caption="y", score=-1.0)]]
    agree = [[0.1, 0.6]]
    assert choose(cands, agree, 0.0) == [1]
    assert choose(cands, agree, 1.0) == [0]  # 0.1 - 0.2 > 0.6 - 1.0


def test_recall_at_share_counts_bad_captions_among_the_lowest() -> None:
    good = np.array([True, False, True, False])
    score = np.array([0.9, 0.1, 0.8, 0.7])
    assert recall_at_share(good, score, 0.25) == 0.5
    assert recall_at_share(good, score, 0.5) == 1.0
    assert recall_at_share(~good, score, 0.5) == 0.0


def _cache(tmp_path: Path, names: list[str]) -> FeatureCache:
    cache = FeatureCache.open(tmp_path / "cache", "key", names)
    mm = cache.memmap("r+")
    g = np.random.default_rng(0)
    mm[:] = g.standard_normal(mm.shape).astype(np.float16)
    mm.flush()
    meta = json.loads(cache.meta_path.read_text())
    cache.meta_path.write_text(json.dumps({**meta, "done": len(names)}))
    return cache


def test_pooled_features_are_the_photos_grid_mean(tmp_path: Path) -> None:
    names = [e.name for e in _examples(5)]
    cache = _cache(tmp_path, names)
    pooled = pooled_features(cache, names[::-1], tmp_path / "pooled.npy")
    expect = cache.load(names[::-1])[:, 0].float().mean(1).numpy()
    assert np.allclose(pooled, expect, atol=1e-3)
    assert (tmp_path / "pooled.npy").exists()


def test_own_captions_resume_where_they_stopped(
    tmp_path: Path, tiny_model: CaptionModel, tiny_vocab
) -> None:
    ex = _examples(5)
    cache = _cache(tmp_path, [e.name for e in ex])
    out = tmp_path / "own.jsonl"
    first = caption_training_photos(tiny_model, tiny_vocab, cache, ex[:2], out, chunk=2)
    assert len(out.read_text().splitlines()) == 2
    rows = caption_training_photos(tiny_model, tiny_vocab, cache, ex, out, chunk=2)
    assert [r["name"] for r in rows] == [e.name for e in ex]
    assert rows[:2] == first
    straight = caption_training_photos(tiny_model, tiny_vocab, cache, ex, tmp_path / "b.jsonl")
    assert rows == straight


def test_datastore_is_written_into_a_model_file_the_app_reads(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    ex = _examples(6)
    rows = [{"name": e.name, "candidates": ["a dog runs on the grass"]} for e in ex]
    rows[2]["candidates"] = ["a red ball"]  # memorised: left out
    pooled = torch.randn(6, 1280)
    cons, counts = build_datastore(ex, pooled, rows, 4, ConsensusSettings(k=3, weight=0.5))
    assert counts["kept"] == 5 and len(cons.captions) == 5
    out = tmp_path / "with_store.safetensors"
    size = write_with_datastore(tiny_checkpoint, out, cons, {"captions": "own", **counts})
    assert size > 0
    ckpt = load_checkpoint(out)
    assert ckpt.provenance["consensus"]["k"] == 3 and ckpt.provenance["consensus"]["kept"] == 5
    assert ckpt.extra["consensus.keys"].shape == (5, 4)
    captioner = Captioner(out, device="cpu")
    assert captioner.consensus is not None
    assert captioner.consensus.captions[0] == [("a", "dog", "runs", "on", "the", "grass")]


def test_consensus_experiment_runs_from_the_command_line(
    tmp_path: Path, tiny_flickr: Path, tiny_coco: Path, tiny_web: Path, tiny_checkpoint: Path
) -> None:
    """features, own-captions, consensus and datastore on all three layouts: one JSON report
    with the grid, the summary and the review signal, and a model file with a datastore."""
    from safetensors.torch import save_file

    from core.model import build_efficientnet_b0
    from training.__main__ import main

    backbone = tmp_path / "b0.safetensors"
    save_file(
        {k: v.contiguous() for k, v in build_efficientnet_b0().state_dict().items()}, str(backbone)
    )
    dev_file = tmp_path / "coco_dev.txt"
    dev_file.write_text("2\n")
    data = ["--data", str(tiny_flickr), "--coco", str(tiny_coco), "--web", str(tiny_web)]
    data += ["--coco-dev", str(dev_file), "--backbone", str(backbone)]
    data += ["--cache", str(tmp_path / "cache"), "--weights", str(tiny_checkpoint)]
    data += ["--pooled", str(tmp_path / "pooled.npy")]
    own = tmp_path / "own.jsonl"
    assert main(["own-captions", *data, "--out", str(own)]) == 0
    report = tmp_path / "consensus.json"
    args = ["--own-captions", str(own), "--work", str(tmp_path / "work"), "--out", str(report)]
    args += ["--k", "2", "--dims", "0", "4", "--weights-grid", "0", "1", "--beam", "3"]
    assert main(["consensus", *data, *args, "--review-k", "2"]) == 0
    result = json.loads(report.read_text())
    assert set(result["splits"]) == {"flickr8k", "coco"}
    assert len(result["splits"]["coco"]["grid"]) == 2 * 3 * 1 * 2  # dims x sources x k x weight
    assert {"human_captions_1280d", "own_captions_4d", "own_closest_captions_4d"} <= set(
        result["summary"]
    )
    assert "auroc_agreement_human_alone" in result["review"]["splits"]["flickr8k"]
    # Own captions of only the first photos (still being made): measured on those alone.
    part = tmp_path / "part.jsonl"
    part.write_text("".join(own.read_text().splitlines(keepends=True)[:3]))
    args[1] = str(part)
    args[5] = str(tmp_path / "partial.json")
    assert main(["consensus", *data, *args, "--sources", "own"]) == 0
    partial = json.loads((tmp_path / "partial.json").read_text())
    assert partial["own_captions"]["photos"] == 3
    assert set(partial["datastore_photos"]) == {"own"}
    out = tmp_path / "store.safetensors"
    assert (
        main(["datastore", *data, "--own-captions", str(own), "--dims", "4", "--out", str(out)])
        == 0
    )
    assert load_checkpoint(out).extra["consensus.keys"].shape[1] == 4


def test_closest_pick_takes_the_candidate_nearest_the_human_captions() -> None:
    ex = _examples(2)
    rows = [
        {"name": "p0.jpg", "candidates": ["a cat on a sofa", "a dog number 0 runs fast"]},
        {"name": "p1.jpg", "candidates": ["a dog number 1 runs", "a ball"]},  # first: verbatim
    ]
    first, _ = own_captions(rows, ex, "first")
    closest, counts = own_captions(rows, ex, "closest")
    assert first[0] == [tuple("a cat on a sofa".split())]
    assert closest[0] == [tuple("a dog number 0 runs fast".split())]
    assert closest[1] == [("a", "ball")]  # a human caption is never picked, however close
    assert counts["pick"] == "closest"
