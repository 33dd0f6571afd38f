"""ImageNet labels as anchors (issue 20, experiment 1): a caption model whose encoder also reads the
plain words of the frozen encoder's top ImageNet classes (training/imagenet_words.json)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from core.checkpoint import load_checkpoint, save_checkpoint
from core.model import CaptionModel, ModelConfig
from core.vocab import Vocab

log = logging.getLogger(__name__)

WORD_MAP = Path(__file__).with_name("imagenet_words.json")


def class_words(vocab: Vocab, path: Path = WORD_MAP) -> torch.Tensor:
    """(n_classes,) vocabulary id of each ImageNet class's word; -1 where it has none (or the
    word is not in this vocabulary)."""
    classes = json.loads(path.read_text())["classes"]
    return torch.tensor(
        [vocab.stoi.get(word, -1) if word else -1 for _, word in classes], dtype=torch.long
    )


def tagged_init(
    cfg: ModelConfig,
    vocab: Vocab,
    backbone: Path,
    out: Path,
    init: Path | None = None,
    word_map: Path = WORD_MAP,
) -> Path:
    """A starting checkpoint with tags: init's weights where they fit (if given), the encoder's
    ImageNet classifier from the converted backbone file, the class -> word map, and the new
    tag parameters fresh. Written to out, for `fit --init`."""
    assert cfg.n_tags > 0, "tagged_init needs a config with n_tags > 0"
    model = CaptionModel(cfg, with_backbone=False)
    if init is not None:
        from training.fit import init_from

        init_from(model, vocab, init)
    head = load_file(str(backbone))
    if "classifier.1.weight" not in head:
        raise SystemExit(f"{backbone}: no ImageNet classifier (classifier.1.*) to take tags from")
    words = class_words(vocab, word_map)
    with torch.no_grad():
        model.tag_head.weight.copy_(head["classifier.1.weight"].float())
        model.tag_head.bias.copy_(head["classifier.1.bias"].float())
        model.tag_words.copy_(words)
    log.info(
        "tags: %d of %d ImageNet classes name one of %d words; %d per photo",
        int((words >= 0).sum()),
        len(words),
        len(set(words[words >= 0].tolist())),
        cfg.n_tags,
    )
    provenance = {"stage": "tagged init", "initialised_from": str(init) if init else None}
    return save_checkpoint(out, model, vocab, provenance)


def tagged_config(cfg: ModelConfig, n_tags: int) -> ModelConfig:
    return replace(cfg, n_tags=n_tags)


def photo_tags(weights: Path, features: torch.Tensor) -> list[list[tuple[str, float]]]:
    """The words (and probabilities) a tagged model gives these (N, 49, 1280) features."""
    ckpt = load_checkpoint(weights)
    model = ckpt.build_model()
    with torch.inference_mode():
        words, scores = model.image_tags(features.float())
    return [
        [(ckpt.vocab.itos[w], round(float(s), 3)) for w, s in zip(ws, ss, strict=True)]
        for ws, ss in zip(words.tolist(), scores.tolist(), strict=True)
    ]
