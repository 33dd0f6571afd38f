"""Merging the frozen encoder and a trained caption model into the fp16 file the app ships."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from core.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


def export_weights(
    checkpoint: Path, backbone: Path, out: Path, history_files: list[Path] | None = None
) -> Path:
    """caption checkpoint (no encoder) + converted B0 -> one fp16 .safetensors with provenance."""
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build_model(backbone=load_file(str(backbone)))
    assert model.backbone is not None, f"{backbone}: no image encoder weights (features.*)"
    provenance = dict(ckpt.provenance)
    for hf in history_files or []:
        provenance[hf.stem] = json.loads(hf.read_text())
    save_checkpoint(out, model, ckpt.vocab, provenance, dtype=torch.float16, extra=ckpt.extra)
    log.info("exported %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out
