"""Self-critical training: the moving average of the weights, and resuming a run exactly."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.checkpoint import load_checkpoint
from training import scst
from training.data import Example
from training.scst import STATE_FILE, WeightAverage


def test_weight_average_moves_towards_the_weights(tiny_model) -> None:
    import copy

    model = copy.deepcopy(tiny_model)
    avg = WeightAverage(model, 0.5)
    before = {k: v.clone() for k, v in avg.shadow.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    avg.update(model)
    name = next(iter(before))
    assert torch.allclose(avg.shadow[name], before[name] + 0.5)
    twin = scst._averaged_copy(model, avg)
    assert torch.allclose(twin.state_dict()[name], before[name] + 0.5)


def _fake_eval(model, vocab, dev, beam, style=None):
    # Deterministic and cheap: a number from the weights, so "best" is chosen reproducibly.
    w = float(sum(p.detach().double().sum() for p in model.parameters()))
    return {"flickr8k": {"CIDEr": w % 1.0}, "mean": {"CIDEr": w % 1.0}}


def _args(out: Path, init: Path, steps: int, resume: bool) -> argparse.Namespace:
    return argparse.Namespace(
        device="cpu",
        seed=3,
        init=init,
        style=None,
        out=out,
        lr=1e-3,
        ema=0.9,
        resume=resume,
        minutes=60.0,
        steps=steps,
        photos_per_step=2,
        samples=2,
        eval_every=2,
    )


@pytest.fixture
def scst_inputs(tiny_vocab):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(4, 49, 1280, generator=g)
    train = [
        Example(f"p{i}.jpg", Path(f"p{i}.jpg"), ("a dog runs on the beach", "a red ball"))
        for i in range(4)
    ]
    return train, features


def test_interrupted_and_resumed_equals_straight(
    tmp_path: Path, tiny_checkpoint: Path, scst_inputs, monkeypatch
) -> None:
    monkeypatch.setattr(scst, "evaluate_splits", _fake_eval)
    train, features = scst_inputs
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert scst.run_scst(_args(straight, tiny_checkpoint, 4, False), train, features, {}) == 0
    assert scst.run_scst(_args(split, tiny_checkpoint, 2, False), train, features, {}) == 0
    assert scst.run_scst(_args(split, tiny_checkpoint, 4, True), train, features, {}) == 0
    a, b = load_file(str(straight / STATE_FILE)), load_file(str(split / STATE_FILE))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for name in ("scst_average.safetensors",):
        x, y = load_file(str(straight / name)), load_file(str(split / name))
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert (straight / "scst_best.safetensors").exists() == (
        split / "scst_best.safetensors"
    ).exists()
    if (straight / "scst_best.safetensors").exists():
        best_a = load_checkpoint(straight / "scst_best.safetensors")
        best_b = load_checkpoint(split / "scst_best.safetensors")
        assert best_a.provenance["scst_steps"] == best_b.provenance["scst_steps"]
        assert best_a.provenance["scst_weights"] == best_b.provenance["scst_weights"]
