"""Mixing the sets: sampling weights, style tokens in training, warm start, confidence fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.inference import Captioner
from core.model import CaptionModel, ModelConfig
from core.vocab import Vocab
from training.calibrate import calibrate
from training.data import Example
from training.fit import (
    CaptionData,
    config_with_vocab,
    epoch_order,
    init_from,
    repeat_factors,
)
from training.metrics import auroc


def mixed(n_flickr: int = 4, n_web: int = 6):
    ex = [Example(f"f{i}.jpg", Path("x"), ("a dog runs",) * 5, "flickr8k") for i in range(n_flickr)]
    ex += [Example(f"w{i}.jpg", Path("x"), ("a red car",), "cc3m") for i in range(n_web)]
    vocab = Vocab.build(
        (c for e in ex for c in e.captions), min_count=1, styles=["cc3m", "flickr8k"]
    )
    data = CaptionData.build(ex, vocab, {e.name: i for i, e in enumerate(ex)})
    return ex, vocab, data


def test_every_caption_gets_its_sets_style_token() -> None:
    ex, vocab, data = mixed()
    assert data.counts() == {"flickr8k": 20, "coco": 0, "cc3m": 6}
    second = data.tokens[:, 0, 1]
    assert (second[:20] == vocab.stoi["<style:flickr8k>"]).all()
    assert (second[20:] == vocab.stoi["<style:cc3m>"]).all()
    assert (data.feature_rows[:5] == 0).all() and data.feature_rows[20] == 4


def test_sampling_weights_set_how_often_each_set_is_drawn() -> None:
    _, _, data = mixed(n_flickr=40, n_web=400)
    order, mirror = epoch_order(data, seed=1, epoch=0, weights={"flickr8k": 2.0, "cc3m": 0.25})
    src = data.source[order]
    assert (src == 0).sum() == 400  # 200 Flickr8k captions, each twice
    assert 60 < (src == 2).sum() < 140  # a quarter of 400, drawn at random
    assert len(mirror) == len(order)
    again, _ = epoch_order(data, seed=1, epoch=0, weights={"flickr8k": 2.0, "cc3m": 0.25})
    np.testing.assert_array_equal(order, again)  # same on resume and on every process
    other, _ = epoch_order(data, seed=1, epoch=1, weights={"flickr8k": 2.0, "cc3m": 0.25})
    assert not np.array_equal(order[:50], other[:50])


def test_captions_with_rare_words_are_repeated() -> None:
    # 100 captions: "a dog runs" 96 times, "a rocket" 4 times (f = 0.04).
    ex = [Example(f"d{i}.jpg", Path("x"), ("a dog runs",), "flickr8k") for i in range(96)]
    ex += [Example(f"r{i}.jpg", Path("x"), ("a rocket",), "cc3m") for i in range(4)]
    vocab = Vocab.build((c for e in ex for c in e.captions), min_count=1, styles=["cc3m"])
    data = CaptionData.build(ex, vocab, {e.name: i for i, e in enumerate(ex)})
    np.testing.assert_array_equal(repeat_factors(data, vocab, 0.0), np.ones(100))
    r = repeat_factors(data, vocab, threshold=0.16)
    assert r[:96] == pytest.approx(1.0)  # "a", "dog", "runs" are common (f >= 0.16)
    assert r[96:] == pytest.approx(2.0)  # sqrt(0.16 / 0.04): the style token does not count
    assert repeat_factors(data, vocab, threshold=1.0, cap=4.0)[96:] == pytest.approx(4.0)
    order, _ = epoch_order(data, seed=1, epoch=0, repeat=r)
    assert (order >= 96).sum() == 8 and (order < 96).sum() == 96
    # With set weights the two multiply; fractions are drawn at random, the same every time.
    order, _ = epoch_order(data, 1, 0, {"flickr8k": 0.5, "cc3m": 1.5}, r)
    assert (order >= 96).sum() == 12
    assert 30 < (order < 96).sum() < 66
    again, _ = epoch_order(data, 1, 0, {"flickr8k": 0.5, "cc3m": 1.5}, r)
    np.testing.assert_array_equal(order, again)


def test_warm_start_keeps_what_the_old_model_knew(tmp_path: Path) -> None:
    old_vocab = Vocab.build(["a dog runs on grass"], min_count=1)
    cfg = ModelConfig(vocab_size=len(old_vocab), d_model=32, n_heads=2, d_ff=64)
    torch.manual_seed(0)
    old = CaptionModel(cfg, with_backbone=False)
    save_checkpoint(tmp_path / "old.safetensors", old, old_vocab)
    new_vocab = Vocab.build(["a cat runs on a sofa", "a dog"], min_count=1, styles=["coco"])
    new = CaptionModel(config_with_vocab(cfg, new_vocab), with_backbone=False)
    init_from(new, new_vocab, tmp_path / "old.safetensors")
    for w in ("dog", "runs", "a"):
        torch.testing.assert_close(
            new.token_emb.weight[new_vocab.stoi[w]], old.token_emb.weight[old_vocab.stoi[w]]
        )
    torch.testing.assert_close(new.feature_proj.weight, old.feature_proj.weight)
    torch.testing.assert_close(
        new.decoder_layers[0].ff.fc1.weight, old.decoder_layers[0].ff.fc1.weight
    )


def test_auroc() -> None:
    assert auroc([True, True, False, False], [0.9, 0.8, 0.3, 0.1]) == 1.0
    assert auroc([True, False], [0.1, 0.9]) == 0.0
    assert auroc([True, False, True, False], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(auroc([True, True], [0.1, 0.2]))


def test_calibration_fit_separates_and_is_written_into_the_model(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    rng = np.random.default_rng(0)
    examples = {}
    for split in ("flickr8k", "coco"):
        made = {}
        for i in range(300):
            good = rng.random() < 0.6
            score = rng.normal(-0.5 if good else -1.1, 0.25)
            made[f"{split}{i}"] = {
                "features": [score, abs(rng.normal(0.3, 0.2)), score * 3, 9.0, 0.7, -2.0, 2.5, 0.3],
                "cider": 0.8 if good else 0.05,
            }
        examples[split] = made
    cal, report = calibrate(examples)
    # Greedy decoding's lone caption is given the dev photos' mean margin and agreement.
    margins = [m["features"][1] for made in examples.values() for m in made.values()]
    assert cal.lone == pytest.approx((np.mean(margins), 0.7))
    for split in ("flickr8k", "coco"):
        assert report["splits"][split]["auroc_cross_validated"] > 0.8
    assert sum(r["photos"] for r in report["reliability"]) == 600
    # The fitted confidence is calibrated: bins' share of good captions tracks their confidence.
    for r in report["reliability"]:
        if r["photos"] >= 40:
            assert abs(r["mean_confidence"] - r["good_share"]) < 0.2
    ex_file = tmp_path / "ex.json"
    ex_file.write_text(json.dumps(examples))
    from training.__main__ import main

    out = tmp_path / "calibrated.safetensors"
    assert (
        main(
            [
                "calibrate",
                "--examples",
                str(ex_file),
                "--weights",
                str(tiny_checkpoint),
                "--out",
                str(out),
                "--report",
                str(tmp_path / "conf"),
            ]
        )
        == 0
    )
    assert (tmp_path / "conf.png").stat().st_size > 1000
    ckpt = load_checkpoint(out)
    assert ckpt.provenance["confidence"]["weights"] == pytest.approx(list(cal.weights))
    before = load_checkpoint(tiny_checkpoint).state_dict
    for name, tensor in ckpt.state_dict.items():  # the weights themselves are untouched
        assert tensor.dtype == before[name].dtype
        torch.testing.assert_close(tensor, before[name], atol=0, rtol=0)
    assert Captioner(out, device="cpu").calibration == cal
