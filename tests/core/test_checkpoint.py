"""Checkpoint files: round trips in fp32/fp16 and every kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from core.checkpoint import FORMAT_NAME, load_checkpoint, save_checkpoint
from core.errors import CheckpointError
from core.model import CaptionModel


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_round_trip(tmp_path: Path, tiny_model: CaptionModel, tiny_vocab, dtype) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_model, tiny_vocab, {"data": "x"}, dtype)
    ckpt = load_checkpoint(path)
    assert ckpt.config == tiny_model.cfg
    assert ckpt.vocab == tiny_vocab
    assert ckpt.provenance == {"data": "x"}
    assert all(t.dtype == dtype for t in ckpt.state_dict.values() if t.is_floating_point())
    model = ckpt.build_model()
    feats = torch.randn(2, 49, 1280)
    tokens = torch.randint(4, len(tiny_vocab), (2, 5))
    with torch.inference_mode():
        a, _ = tiny_model(feats, tokens)
        b, _ = model(feats, tokens)
    tol = 1e-6 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)
    assert not list(tmp_path.glob("*.tmp")), "temporary file left behind"


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found") as info:
        load_checkpoint(tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.safetensors"
    p.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty or truncated"):
        load_checkpoint(p)


def test_truncated_file(tmp_path: Path, tiny_checkpoint: Path) -> None:
    p = tmp_path / "cut.safetensors"
    p.write_bytes(tiny_checkpoint.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_checkpoint(p)
    assert str(p) in str(info.value)


def test_truncated_inside_header(tmp_path: Path, tiny_checkpoint: Path) -> None:
    p = tmp_path / "cut.safetensors"
    p.write_bytes(tiny_checkpoint.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(p)


def test_not_a_safetensors_file(tmp_path: Path) -> None:
    p = tmp_path / "photo.safetensors"
    p.write_bytes(b"\xff\xd8\xff\xe0 this is a jpeg really" * 10)
    with pytest.raises(CheckpointError, match="not a .safetensors"):
        load_checkpoint(p)


def test_safetensors_of_another_kind(tmp_path: Path) -> None:
    p = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    with pytest.raises(CheckpointError, match="wrong format"):
        load_checkpoint(p)


def test_wrong_version(tmp_path: Path, tiny_model: CaptionModel, tiny_vocab) -> None:
    p = tmp_path / "future.safetensors"
    meta = {
        "format": FORMAT_NAME,
        "format_version": "99",
        "config": json.dumps(tiny_model.cfg.to_dict()),
        "vocab": json.dumps(list(tiny_vocab.itos)),
    }
    save_file({"w": torch.zeros(2)}, str(p), metadata=meta)
    with pytest.raises(CheckpointError, match="version 99 is not supported"):
        load_checkpoint(p)


def test_weights_not_matching_config(tmp_path: Path, tiny_model: CaptionModel, tiny_vocab) -> None:
    p = tmp_path / "bad.safetensors"
    meta = {
        "format": FORMAT_NAME,
        "format_version": "1",
        "config": json.dumps(tiny_model.cfg.to_dict()),
        "vocab": json.dumps(list(tiny_vocab.itos)),
    }
    save_file({"token_emb.weight": torch.zeros(3, 3)}, str(p), metadata=meta)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(p).build_model()


def test_loading_never_unpickles(tmp_path: Path, tiny_checkpoint: Path, monkeypatch) -> None:
    import pickle

    def boom(*a, **k):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(torch, "load", boom)
    load_checkpoint(tiny_checkpoint).build_model()
