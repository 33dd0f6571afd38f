"""The feature cache: contents, resume, and invalidation when the encoder changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from training.data import Flickr8k
from training.features import FeatureCache, encoder_key


def tiny_encoder(seed: int) -> nn.Module:
    """(B, 3, 224, 224) -> (B, 1280, 7, 7), like B0's features, but cheap."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.AvgPool2d(8), nn.Conv2d(3, 1280, 4, stride=4)).eval()


def test_cache_holds_photo_and_mirror(tmp_path: Path, tiny_flickr: Path) -> None:
    data = Flickr8k.load(tiny_flickr)
    ex = list(data.train)
    enc = tiny_encoder(0)
    cache = FeatureCache.open(tmp_path, encoder_key(enc), [e.name for e in ex])
    cache.fill(enc, {e.name: e.path for e in ex}, batch_size=4)
    assert cache.complete
    mm = cache.memmap()
    assert mm.shape == (6, 2, 49, 1280) and mm.dtype == np.float16
    assert np.isfinite(mm).all() and not np.allclose(mm[:, 0], mm[:, 1])


def test_other_encoder_weights_use_another_cache(tmp_path: Path, tiny_flickr: Path) -> None:
    names = [e.name for e in Flickr8k.load(tiny_flickr).train]
    a = FeatureCache.open(tmp_path, encoder_key(tiny_encoder(0)), names)
    b = FeatureCache.open(tmp_path, encoder_key(tiny_encoder(1)), names)
    assert encoder_key(tiny_encoder(0)) == encoder_key(tiny_encoder(0))
    assert a.directory != b.directory


def test_mismatched_index_is_refused(tmp_path: Path, tiny_flickr: Path) -> None:
    names = [e.name for e in Flickr8k.load(tiny_flickr).train]
    cache = FeatureCache.open(tmp_path, "k1", names)
    cache.meta_path.write_text('{"key": "other", "names": [], "done": 0}')
    with pytest.raises(ValueError, match="does not match"):
        FeatureCache.open(tmp_path, "k1", names)


def test_interrupted_fill_resumes(tmp_path: Path, tiny_flickr: Path, monkeypatch) -> None:
    data = Flickr8k.load(tiny_flickr)
    ex = list(data.train)
    enc = tiny_encoder(0)
    paths = {e.name: e.path for e in ex}
    full = FeatureCache.open(tmp_path / "full", encoder_key(enc), paths)
    full.fill(enc, paths, batch_size=2)

    cache = FeatureCache.open(tmp_path / "part", encoder_key(enc), paths)
    broken = dict(paths)
    broken[sorted(paths)[4]] = tmp_path / "missing.jpg"  # the third batch fails
    with pytest.raises(Exception, match="not found"):
        cache.fill(enc, broken, batch_size=2)
    assert cache.done == 4
    cache.fill(enc, paths, batch_size=2)
    assert cache.complete
    np.testing.assert_array_equal(cache.memmap(), full.memmap())
