"""Merging the frozen encoder and a trained caption model into the fp16 file the app ships."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from core.checkpoint import load_checkpoint, save_checkpoint
from core.model import CaptionModel

log = logging.getLogger(__name__)


def export_weights(
    checkpoint: Path, backbone: Path, out: Path, history_files: list[Path] | None = None
) -> Path:
    """caption checkpoint (no encoder) + converted B0 -> one fp16 .safetensors with provenance."""
    ckpt = load_checkpoint(checkpoint)
    model = CaptionModel(ckpt.config, with_backbone=True)
    state = {k: v.float() for k, v in ckpt.state_dict.items()}
    state.setdefault("lm_head.weight", state["token_emb.weight"])
    b0 = load_file(str(backbone))
    for k, v in b0.items():
        if k.startswith("features."):
            state["backbone." + k[len("features.") :]] = v.float()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and not unexpected, f"export mismatch: {missing[:3]} {unexpected[:3]}"
    provenance = dict(ckpt.provenance)
    for hf in history_files or []:
        provenance[hf.stem] = json.loads(hf.read_text())
    save_checkpoint(out, model, ckpt.vocab, provenance, dtype=torch.float16)
    log.info("exported %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out
