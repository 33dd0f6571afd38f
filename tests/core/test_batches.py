"""The engine's batches: decoded for the captioner's device; a photo no decoder reads fails alone."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import torch

import core.images
from core.batches import Batches
from core.datatypes import CaptionSettings
from core.errors import ImageError
from core.inference import Captioner
from tests.imagegen import textured_image


@dataclass(frozen=True)
class Item:
    path: Path


def test_batches_read_for_the_captioners_device_and_drop_what_fails_to_stack(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.jpg")
        textured_image(96, 64, seed=i).save(paths[-1])
    seen: list[object] = []
    real_read, real_stack = core.images.read_for_device, core.images.stack_on_device

    def read(path, device):
        seen.append(device)
        return real_read(path, device)

    def stack(items, device):  # as the GPU decoder does for a JPEG it cannot decode
        batch, _ = real_stack([x for i, x in enumerate(items) if i != 1], device)
        return batch, [(1, ImageError(paths[1], "the image is damaged or truncated"))]

    monkeypatch.setattr(core.images, "read_for_device", read)
    monkeypatch.setattr(core.images, "stack_on_device", stack)
    captioner = Captioner(tiny_checkpoint, device="cpu")
    batches: Batches[Item] = Batches(
        captioner.caption_batch,
        CaptionSettings(batch_size=3),
        threading.Event(),
        device=captioner.device,
    )
    try:
        for p in paths:
            batches.add(Item(p))
        done = {item.path: result for item, result in batches.take()}
    finally:
        batches.close()
    assert seen == [torch.device("cpu")] * 3
    assert not done[paths[1]].ok and "p1.jpg" in done[paths[1]].error
    assert done[paths[0]].ok and done[paths[2]].ok and done[paths[0]].confidence is not None


def test_a_cancelled_take_waits_for_no_decode(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """take() looks at the cancel before each decode it would wait for: with every decode
    still running it returns None at once."""
    photo = tmp_path / "p.jpg"
    textured_image(96, 64, seed=0).save(photo)
    release = threading.Event()  # lets the decodes finish; set by take's end or a watchdog
    watchdog = threading.Timer(30, release.set)
    watchdog.start()
    cancel = threading.Event()
    batches: Batches[Item] = Batches(
        Captioner(tiny_checkpoint, device="cpu").caption_batch,
        CaptionSettings(batch_size=3),
        cancel,
    )
    real_load = batches._load
    batches._load = lambda path: release.wait() and real_load(path)
    try:
        for _ in range(3):
            batches.add(Item(photo))
        cancel.set()
        assert batches.take() is None
        assert not release.is_set(), "take waited for a decode after the cancel"
    finally:
        release.set()
        watchdog.cancel()
        batches.close()
