"""Caching the frozen encoder's feature maps (7x7x1280 at 224 px; photo and mirrored photo), fp16,
memory-mapped."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from core.datatypes import IMAGE_SIZE
from core.devices import autocast
from core.errors import PhotoScribeError
from core.images import load_for_model, normalize_batch, open_image, to_model_input
from core.model import FEATURE_GRID, build_efficientnet_b0
from training.data import Example

log = logging.getLogger(__name__)

N_TOKENS = FEATURE_GRID * FEATURE_GRID  # 49
FEATURE_DIM = 1280


def load_encoder(backbone_file: str | Path) -> torch.nn.Module:
    """The ImageNet B0 `features` stack from a converted torchvision state dict, in eval mode.

    The converted weights fold batch norm into identities, so it must stay in eval mode.
    """
    net = build_efficientnet_b0()
    state = load_file(str(backbone_file))
    net.load_state_dict(state, strict=True)
    return net.features.eval()


def encoder_key(encoder: torch.nn.Module) -> str:
    """A hash of the encoder's weights: a cache made with other weights is never reused."""
    h = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def grid_side(size: int) -> int:
    """Side of the encoder's feature grid for a square input of this many pixels (stride 32)."""
    return -(-size // 32)


def load_example(example: Example | Path, size: int = IMAGE_SIZE) -> torch.Tensor:
    """(3, size, size) uint8 of the picture: the whole file, or its crop box (letterbox removed).

    size 224 is the app's input; larger sizes (issue 20, experiment 3) squash the frame the same
    way, from a decode at least that large."""
    if size != IMAGE_SIZE:
        return _square(example, size)
    if isinstance(example, Path):
        return load_for_model(example)
    if example.crop is None:
        return load_for_model(example.path)
    # Crop boxes are in the stored file's pixels, so decode at full size (these files are small).
    return to_model_input(open_image(example.path, draft_size=None).crop(example.crop))


def _square(example: Example | Path, size: int) -> torch.Tensor:
    if isinstance(example, Path) or example.crop is None:
        path = example if isinstance(example, Path) else example.path
        img = open_image(path, draft_size=(size, size))
    else:
        img = open_image(example.path, draft_size=None).crop(example.crop)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return pixels.view(size, size, 3).permute(2, 0, 1)  # (3, size, size)


class FeatureCache:
    """features.f16: (N, 2, 49, dim) fp16 memmap; [:, 0] the photo, [:, 1] the mirrored photo.

    dim is 1280 for the whole encoder; an earlier stage's output (for fine-tuning the last
    stages, training.tune) has fewer channels. n_tokens is 49 at 224 px, 81 at 288 px."""

    def __init__(
        self,
        directory: Path,
        names: Sequence[str],
        dim: int = FEATURE_DIM,
        n_tokens: int = N_TOKENS,
    ) -> None:
        self.directory = directory
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.shape = (len(self.names), 2, n_tokens, dim)
        self.data_path = directory / "features.f16"
        self.meta_path = directory / "index.json"

    @classmethod
    def open(
        cls,
        root: str | Path,
        key: str,
        names: Sequence[str],
        dim: int = FEATURE_DIM,
        prefix: str = "b0",
        n_tokens: int = N_TOKENS,
    ) -> FeatureCache:
        """The cache for this encoder key and photo list (created empty if new)."""
        names = sorted(names)
        digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:8]
        cache = cls(Path(root) / f"{prefix}-{key}-{digest}", names, dim, n_tokens)
        cache.directory.mkdir(parents=True, exist_ok=True)
        if not cache.meta_path.exists():
            _atomic_json(cache.meta_path, {"key": key, "names": names, "done": 0})
        meta = json.loads(cache.meta_path.read_text())
        if meta.get("key") != key or meta.get("names") != names:
            raise ValueError(f"{cache.meta_path}: cache does not match the encoder or photo list")
        return cache

    @property
    def done(self) -> int:
        return int(json.loads(self.meta_path.read_text())["done"])

    @property
    def complete(self) -> bool:
        return self.done >= len(self.names)

    @property
    def bad(self) -> dict[str, str]:
        """Photos that could not be decoded (name -> reason); their rows hold zeros."""
        return dict(json.loads(self.meta_path.read_text()).get("bad", {}))

    def memmap(self, mode: str = "r") -> np.memmap:
        if mode != "r" and not self.data_path.exists():
            mm = np.memmap(self.data_path, dtype=np.float16, mode="w+", shape=self.shape)
            del mm
        return np.memmap(self.data_path, dtype=np.float16, mode=mode, shape=self.shape)

    def load(self, names: Sequence[str]) -> torch.Tensor:
        """(len(names), 2, 49, dim) fp16 of these photos, in memory."""
        mm = self.memmap("r")
        return torch.from_numpy(np.ascontiguousarray(mm[[self.index[n] for n in names]]))

    def fill(
        self,
        encoder: torch.nn.Module,
        photos: Mapping[str, Path | Example],
        batch_size: int = 32,
        workers: int = 2,
        size: int = IMAGE_SIZE,
    ) -> None:
        """Compute what is missing, checkpointing after every batch so an interrupted run resumes.

        A photo that cannot be decoded is logged, listed under "bad" in the index and left as
        zeros; the run goes on.
        """
        start = self.done
        if start >= len(self.names):
            return
        amp = autocast(next(encoder.parameters()).device)
        encoder = encoder.to(memory_format=torch.channels_last)
        mm = self.memmap("r+")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool, torch.inference_mode():
            for lo in range(start, len(self.names), batch_size):
                names = self.names[lo : lo + batch_size]
                loaded = list(pool.map(_try_load, [photos[n] for n in names], [size] * len(names)))
                bad = {n: r for n, r in zip(names, loaded, strict=True) if isinstance(r, str)}
                for reason in bad.values():
                    log.warning("photo skipped: %s", reason)
                blank = torch.zeros(3, size, size, dtype=torch.uint8)
                images = torch.stack([blank if isinstance(r, str) else r for r in loaded])
                both = torch.cat([images, images.flip(dims=[3])])  # (2b, 3, H, W): photo, mirror
                x = normalize_batch(both).contiguous(memory_format=torch.channels_last)
                with amp:
                    f = encoder(x).float()  # (2b, dim, side, side)
                f = f.flatten(2).transpose(1, 2)  # (2b, side*side, dim)
                b = len(names)
                f = torch.stack([f[:b], f[b:]], dim=1)  # (b, 2, side*side, dim)
                f[[i for i, n in enumerate(names) if n in bad]] = 0.0
                mm[lo : lo + b] = f.to(torch.float16).numpy()
                mm.flush()
                done = lo + b
                meta = json.loads(self.meta_path.read_text())
                _atomic_json(
                    self.meta_path,
                    {**meta, "done": done, "bad": {**meta.get("bad", {}), **bad}},
                )
                rate = (done - start) / (time.perf_counter() - t0)
                log.info(
                    "features %d/%d (%.1f photos/s, ETA %.0fs)",
                    done,
                    len(self.names),
                    rate,
                    (len(self.names) - done) / max(rate, 1e-9),
                )
        del mm


def _try_load(photo: Path | Example, size: int = IMAGE_SIZE) -> torch.Tensor | str:
    """The decoded photo, or the reason it could not be decoded (naming the file)."""
    try:
        return load_example(photo, size)
    except PhotoScribeError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad photo never stops hours of caching
        return f"{getattr(photo, 'path', photo)}: unexpected error ({exc})"
