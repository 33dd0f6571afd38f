"""The encoder fine-tuning experiment: its split of the encoder, and both arms end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.model import build_efficientnet_b0
from training.tune import LastStages, split_encoder


@pytest.fixture
def random_backbone(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "b0.safetensors"
    save_file(
        {k: v.contiguous() for k, v in build_efficientnet_b0().state_dict().items()}, str(path)
    )
    return path


def test_cached_stage_plus_last_stages_is_the_whole_encoder(random_backbone: Path) -> None:
    lower, upper = split_encoder(random_backbone)
    whole = torch.nn.Sequential(*lower, *upper).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        cached = lower(x).flatten(2).transpose(1, 2)  # what the cache stores: (2, 49, 192)
        assert cached.shape == (2, 49, 192)
        got = LastStages(upper)(cached)
        want = whole(x).flatten(2).transpose(1, 2)  # the usual (2, 49, 1280) feature tokens
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_last_stages_stay_in_eval_mode(random_backbone: Path) -> None:
    head = LastStages(split_encoder(random_backbone)[1])
    head.train()
    assert not any(m.training for m in head.modules())


def test_both_arms_run_and_only_the_tuned_one_moves_the_encoder(
    tmp_path: Path, tiny_flickr: Path, random_backbone: Path, tiny_checkpoint: Path
) -> None:
    from training.__main__ import main

    out = tmp_path / "encoder_tuning.json"
    argv = [
        "tune-encoder",
        "--data",
        str(tiny_flickr),
        "--backbone",
        str(random_backbone),
        "--cache",
        str(tmp_path / "cache"),
        "--init",
        str(tiny_checkpoint),
        "--sets",
        "flickr8k",
        "--steps",
        "3",
        "--batch-size",
        "10",
        "--warmup",
        "1",
        "--head-lr",
        "1e-3",
        "--run-dir",
        str(tmp_path / "runs"),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    frozen, tuned = report["arms"]["frozen"], report["arms"]["tuned"]
    assert frozen["largest_change_in_last_stages"] == 0.0
    assert tuned["largest_change_in_last_stages"] > 0.0
    for arm in (frozen, tuned):
        assert arm["steps"] >= 1 and np.isfinite(arm["train_loss"])
        assert 0.0 <= arm["dev_CIDEr"] and arm["seconds_per_step"] > 0
    assert set(report["gain_CIDEr"]) == {"mean"}  # one dev split: its score is the mean
    assert report["gain_CIDEr"]["mean"] == pytest.approx(tuned["dev_CIDEr"] - frozen["dev_CIDEr"])
    (cache,) = (tmp_path / "cache").glob("b0-upto7-*")
    assert json.loads((cache / "index.json").read_text())["done"] == 8
    # A second run reuses each finished arm instead of training it again.
    (tmp_path / "runs" / "tuned" / "result.json").write_text(
        json.dumps({**tuned, "dev_CIDEr": 9.0})
    )
    assert main(argv) == 0
    assert json.loads(out.read_text())["arms"]["tuned"]["dev_CIDEr"] == 9.0
