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


class Interrupt(Exception):
    pass


def test_interrupted_fill_resumes(tmp_path: Path, tiny_flickr: Path) -> None:
    data = Flickr8k.load(tiny_flickr)
    ex = list(data.train)
    enc = tiny_encoder(0)
    paths = {e.name: e.path for e in ex}
    full = FeatureCache.open(tmp_path / "full", encoder_key(enc), paths)
    full.fill(enc, paths, batch_size=2)

    calls = 0

    def dies_on_third_batch(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Interrupt  # as if the machine went down mid-run
        return enc(x)

    cache = FeatureCache.open(tmp_path / "part", encoder_key(enc), paths)
    flaky = nn.Module()
    flaky.forward = dies_on_third_batch  # type: ignore[method-assign]
    flaky.p = nn.Parameter(torch.zeros(1))  # fill() asks the encoder for its device
    with pytest.raises(Interrupt):
        cache.fill(flaky, paths, batch_size=2)
    assert cache.done == 4
    cache.fill(enc, paths, batch_size=2)
    assert cache.complete
    np.testing.assert_array_equal(cache.memmap(), full.memmap())


def test_damaged_photos_are_listed_and_the_run_goes_on(tmp_path: Path, tiny_flickr: Path) -> None:
    ex = list(Flickr8k.load(tiny_flickr).train)
    enc = tiny_encoder(0)
    paths = {e.name: e.path for e in ex}
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(ex[0].path.read_bytes()[:300])
    broken = {**paths, ex[0].name: truncated, ex[3].name: tmp_path / "missing.jpg"}
    cache = FeatureCache.open(tmp_path / "c", encoder_key(enc), paths)
    cache.fill(enc, broken, batch_size=2)
    assert cache.complete
    assert set(cache.bad) == {ex[0].name, ex[3].name}
    assert "truncated.jpg" in cache.bad[ex[0].name] and "not found" in cache.bad[ex[3].name]
    mm = cache.memmap()
    bad_rows = [cache.index[ex[0].name], cache.index[ex[3].name]]
    assert not mm[bad_rows].any() and mm[cache.index[ex[1].name]].any()


def test_letterboxed_web_photo_is_cropped_before_squashing(tmp_path: Path) -> None:
    from PIL import Image

    from training.data import Example
    from training.features import load_example

    img = Image.new("RGB", (256, 256), "white")
    img.paste(Image.new("RGB", (256, 192), (200, 30, 30)), (0, 32))  # a 4:3 photo, bars above/below
    path = tmp_path / "k.jpg"
    img.save(path, quality=95)
    cropped = load_example(Example("k", path, ("c",), "cc3m", (0, 32, 256, 224)))
    whole = load_example(Example("k", path, ("c",), "cc3m", None))
    assert cropped.shape == (3, 224, 224)
    assert cropped[:, :4].float().mean() < 150  # no white bar at the top
    assert whole[:, :4].float().mean() > 240
