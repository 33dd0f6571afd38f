"""Self-describing model checkpoints: one .safetensors file with weights, config and vocabulary."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from core.errors import CheckpointError
from core.model import CaptionModel, ModelConfig
from core.vocab import Vocab

log = logging.getLogger(__name__)

FORMAT_NAME = "photoscribe-caption-model"
FORMAT_VERSION = 1
EXTRA_PREFIXES = ("consensus.", "matcher.")
"""Tensor name prefixes of a model file that are data beside the network, not its weights."""


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """Everything a checkpoint file holds, loaded without unpickling anything."""

    config: ModelConfig
    vocab: Vocab
    state_dict: dict[str, torch.Tensor]
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    # Tensors that are not the network's (the consensus reranker's datastore, "consensus.*";
    # the image-text matcher, "matcher.*").
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def build_model(self, backbone: Mapping[str, torch.Tensor] | None = None) -> CaptionModel:
        """The network with these weights, in fp32 and eval mode.

        backbone: image-encoder weights (torchvision's `features.*` keys) to add to a model
        trained on cached features, as the export does.
        """
        state = {k: v.float() for k, v in self.state_dict.items()}
        for k, v in (backbone or {}).items():
            if k.startswith("features."):
                state["backbone." + k.removeprefix("features.")] = v.float()
        model = CaptionModel(
            self.config, with_backbone=any(k.startswith("backbone.") for k in state)
        )
        if self.config.tie_embeddings:
            state.setdefault("lm_head.weight", state["token_emb.weight"])
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                self.path, f"the weights do not fit the model described in the file ({exc})"
            ) from exc
        return model.eval()


def save_checkpoint(
    path: str | Path,
    model: CaptionModel,
    vocab: Vocab,
    provenance: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
    extra: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write atomically: a temp file in the same folder, fsync, then replace.

    extra: tensors stored as they are beside the network's (names with an EXTRA_PREFIXES prefix).
    """
    path = Path(path)
    assert len(vocab) == model.cfg.vocab_size, "vocabulary size differs from the model config"
    state = {}
    for name, tensor in model.state_dict().items():
        if model.cfg.tie_embeddings and name == "lm_head.weight":
            continue  # shared with token_emb.weight; safetensors refuses shared storage
        tensor = tensor.detach().cpu()
        state[name] = (tensor.to(dtype) if tensor.is_floating_point() else tensor).contiguous()
    for name, tensor in (extra or {}).items():
        assert name.startswith(EXTRA_PREFIXES) and name not in state, name
        state[name] = tensor.detach().cpu().contiguous()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(model.cfg.to_dict()),
        "vocab": json.dumps(list(vocab.itos), ensure_ascii=False),
        "provenance": json.dumps(provenance or {}, ensure_ascii=False),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp makes 0600; a model file is not a secret. (Reading the umask would mean
        # setting it, which is process-wide and unsafe with other threads running.)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("saved checkpoint %s (%d tensors, %s)", path, len(state), dtype)
    return path


def _read_metadata(path: Path) -> dict[str, str]:
    """The file's string metadata; safetensors' own header errors said in a user's words."""
    try:
        with safe_open(str(path), "pt") as f:
            return f.metadata() or {}
    except SafetensorError as exc:
        msg = str(exc)
        if "too small" in msg:
            raise CheckpointError(
                path, "the file is empty or truncated; reinstall or re-download it"
            ) from exc
        if "invalid header length" in msg or "not fully covered" in msg:
            raise CheckpointError(
                path, "the file is truncated; reinstall or re-download it"
            ) from exc
        raise CheckpointError(path, "this is not a .safetensors model file") from exc


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint; every problem becomes a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "model file not found")
    meta = _read_metadata(path)
    if meta.get("format") != FORMAT_NAME:
        raise CheckpointError(path, "this is not a PhotoScribe caption model (wrong format)")
    version = meta.get("format_version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(
            path,
            f"model file format version {version} is not supported "
            f"(this PhotoScribe reads version {FORMAT_VERSION}); update PhotoScribe or the model",
        )
    try:
        config = ModelConfig.from_dict(json.loads(meta["config"]))
        vocab = Vocab(tuple(json.loads(meta["vocab"])))
        provenance = json.loads(meta.get("provenance", "{}"))
    except (KeyError, ValueError, TypeError, AssertionError) as exc:
        raise CheckpointError(
            path, f"the model description in the file is damaged ({exc})"
        ) from exc
    if len(vocab) != config.vocab_size:
        raise CheckpointError(path, "the vocabulary does not match the model's size")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            path, f"the weights could not be read, the file may be truncated ({exc})"
        ) from exc
    extra = {k: state.pop(k) for k in [k for k in state if k.startswith(EXTRA_PREFIXES)]}
    return Checkpoint(
        config=config, vocab=vocab, state_dict=state, provenance=provenance, path=path, extra=extra
    )
