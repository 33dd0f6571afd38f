"""The reduced A/B arms (issue 20): caches at two sizes, position interpolation, every arm end to
end on a tiny dataset, resuming, and the reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from core.checkpoint import load_checkpoint
from core.model import build_efficientnet_b0
from training.ab import _scores, init_at_grid, paired_difference, positions_for_grid
from training.features import grid_side, load_example


@pytest.fixture
def random_backbone(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "b0.safetensors"
    save_file(
        {k: v.contiguous() for k, v in build_efficientnet_b0().state_dict().items()}, str(path)
    )
    return path


def test_grid_sides_and_larger_inputs(tiny_flickr: Path) -> None:
    assert (grid_side(224), grid_side(288), grid_side(320)) == (7, 9, 10)
    photo = next((tiny_flickr / "images").iterdir())
    assert load_example(photo, 288).shape == (3, 288, 288)
    assert load_example(photo).shape == (3, 224, 224)


def test_positions_are_interpolated_smoothly() -> None:
    pos = torch.arange(49.0).reshape(1, 49, 1).repeat(1, 1, 3)  # a ramp: row * 7 + column
    same = positions_for_grid(pos, 7)
    torch.testing.assert_close(same, pos)
    wider = positions_for_grid(pos, 9).reshape(9, 9, 3)
    assert wider.shape == (9, 9, 3)
    assert torch.all(wider[:, 1:, 0] > wider[:, :-1, 0])  # still increasing along each row
    assert abs(float(wider[0, 0, 0]) - 0.0) < 1.0 and abs(float(wider[-1, -1, 0]) - 48.0) < 1.0


def test_a_checkpoint_moves_to_a_9x9_grid(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = init_at_grid(tiny_checkpoint, 9, tmp_path / "grid.safetensors")
    model = load_checkpoint(out).build_model()
    assert model.cfg.n_image_tokens == 81
    with torch.inference_mode():
        assert model.encode_features(torch.randn(2, 81, 1280)).shape == (2, 81, 32)


def run_ab(
    tmp_path: Path, data: Path, backbone: Path, init: Path, *arms: str, per_photo: bool = False
) -> int:
    from training.__main__ import main

    argv = ["ab", "--data", str(data), "--backbone", str(backbone), "--init", str(init)]
    argv += ["--run-dir", str(tmp_path / "ab"), "--per-source", "4", "--steps", "4"]
    argv += ["--epochs", "2", "--batch-size", "10", "--warmup", "1", "--head-lr", "1e-3"]
    for arm in arms:
        argv += ["--arm", arm] + (["--per-photo", arm] if per_photo else [])
    return main(argv + ["--report", str(tmp_path / "reports")])


def test_every_arm_trains_the_same_steps_and_the_reports_compare_them(
    tmp_path: Path, tiny_flickr: Path, random_backbone: Path, tiny_checkpoint: Path
) -> None:
    arms = ("start224", "control", "res288", "tune", "copy")
    assert (
        run_ab(tmp_path, tiny_flickr, random_backbone, tiny_checkpoint, *arms, per_photo=True) == 0
    )
    results = {a: json.loads((tmp_path / "ab" / a / "result.json").read_text()) for a in arms}
    assert {results[a]["step"] for a in arms[1:]} == {4}
    assert all(results[a]["photos"]["flickr8k"] == 4 for a in arms)
    assert "dev_CIDEr" in results["start224"]  # scored as the trained arms are
    assert (
        load_checkpoint(tmp_path / "ab" / "res288" / "best.safetensors").config.n_image_tokens == 81
    )
    copy = load_checkpoint(tmp_path / "ab" / "copy" / "best.safetensors").config
    assert copy.tag_copy and copy.n_tags == 5
    caches = sorted(p.name.split("-")[3] for p in (tmp_path / "ab" / "cache").iterdir())
    assert caches == ["224", "288"]  # one cache per size serves every arm at that size
    reports = {p.name: json.loads(p.read_text()) for p in (tmp_path / "reports").iterdir()}
    assert set(reports) == {"resolution_ab.json", "encoder_mix_ab.json", "copy_ab.json"}
    gain = reports["encoder_mix_ab.json"]["CIDEr_minus_control"]["tune"]
    assert set(gain) == {"mean"}  # one dev split: its scores are the mean
    paired = reports["encoder_mix_ab.json"]["paired_CIDEr_minus_control"]["tune"]
    assert set(paired) == {"flickr8k", "mean"}
    low, high = paired["flickr8k"]["ci95"]
    assert low <= paired["flickr8k"]["difference"] <= high
    per_photo = json.loads((tmp_path / "ab" / "tune" / "per_photo.json").read_text())
    assert len(per_photo["flickr8k"]) == 2  # the two dev photos, each with its caption and score
    # A finished arm is not run again.
    before = (tmp_path / "ab" / "control" / "result.json").stat().st_mtime_ns
    assert run_ab(tmp_path, tiny_flickr, random_backbone, tiny_checkpoint, "control") == 0
    assert (tmp_path / "ab" / "control" / "result.json").stat().st_mtime_ns == before


def test_the_tuned_arm_moves_the_last_stages(
    tmp_path: Path, tiny_flickr: Path, random_backbone: Path, tiny_checkpoint: Path
) -> None:
    from safetensors.torch import load_file

    assert run_ab(tmp_path, tiny_flickr, random_backbone, tiny_checkpoint, "tune") == 0
    state = load_file(str(tmp_path / "ab" / "tune" / "last_state.safetensors"))
    tuned = {k[len("head.stages.") :]: v for k, v in state.items() if k.startswith("head.")}
    original = load_file(str(random_backbone))  # the sliced stack keeps its indices (7, 8)
    moved = max(float((v - original[f"features.{k}"]).abs().max()) for k, v in tuned.items())
    assert moved > 0


def test_scores_are_read_per_split_as_the_trainer_names_them() -> None:
    record = {
        "dev_flickr8k_CIDEr": 0.5,
        "dev_flickr8k_Bleu_4": 0.2,
        "dev_coco_CIDEr": 0.7,
        "dev_coco_Bleu_1": 0.6,
        "dev_CIDEr": 0.6,
        "train_loss": 3.0,
    }
    assert _scores(record) == {
        "flickr8k": {"CIDEr": 0.5, "Bleu_4": 0.2},
        "coco": {"CIDEr": 0.7},
        "mean": {"CIDEr": 0.6},
    }


def test_paired_differences_and_their_interval() -> None:
    control = {"a": {f"p{i}": ["x", 0.5] for i in range(50)}}
    better = {"a": {f"p{i}": ["y", 0.5 + (0.1 if i % 2 else 0.0)] for i in range(50)}}
    got = paired_difference(better, control)
    assert got["a"]["difference"] == 0.05 and got["mean"]["difference"] == 0.05
    low, high = got["a"]["ci95"]
    assert 0.0 < low < 0.05 < high < 0.1
    same = paired_difference(control, control)["a"]
    assert same == {"difference": 0.0, "ci95": [0.0, 0.0]}
