"""Image-text matching: a small contrastive model (a mini-CLIP trained on the training photos' human
captions) that says how well a caption fits a photo, one of the review mark's signals (issue 21)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from core.vocab import Vocab, tokenize

log = logging.getLogger(__name__)

PREFIX = "matcher."
"""Tensors of the matcher in a model file (its state dict under this prefix); its MatcherConfig is
the provenance's "matcher" entry."""


@dataclass(frozen=True)
class MatcherConfig:
    vocab_size: int  # the caption model's vocabulary (the matcher reads its token ids)
    feature_dim: int = 1280  # the image encoder's pooled features
    hidden: int = 1024  # the image side's hidden layer
    dim: int = 256  # the shared embedding space
    max_words: int = 24  # a caption's words beyond this are not read

    def __post_init__(self) -> None:
        for name in ("vocab_size", "feature_dim", "hidden", "dim", "max_words"):
            if getattr(self, name) < 1:
                raise ValueError(f"matcher {name} must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MatcherConfig:
        return cls(**{k: int(data[k]) for k in cls.__dataclass_fields__ if k in data})


class Matcher(nn.Module):
    """Photo side: standardised pooled features -> MLP -> unit vector. Caption side: mean of its
    words' embeddings (word order is not read) -> residual MLP -> unit vector. Their cosine is
    the match; trained with in-batch negatives (training.matcher)."""

    def __init__(self, cfg: MatcherConfig, pad_id: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad_id = pad_id
        self.register_buffer("feature_mean", torch.zeros(cfg.feature_dim))
        self.register_buffer("feature_scale", torch.ones(cfg.feature_dim))
        self.image_in = nn.Linear(cfg.feature_dim, cfg.hidden)
        self.image_out = nn.Linear(cfg.hidden, cfg.dim)
        self.word_emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.text_in = nn.Linear(cfg.dim, cfg.dim)
        self.text_out = nn.Linear(cfg.dim, cfg.dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.66))  # log(1 / 0.07), as CLIP starts

    def embed_images(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, feature_dim) pooled encoder features -> (B, dim) unit rows."""
        x = (pooled.float() - self.feature_mean) / self.feature_scale
        x = self.image_out(F.gelu(self.image_in(x)))  # (B, dim)
        return F.normalize(x, dim=1)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, T) word ids padded with pad_id -> (N, dim) unit rows."""
        mask = (tokens != self.pad_id).float().unsqueeze(-1)  # (N, T, 1)
        words = self.word_emb(tokens) * mask  # (N, T, dim)
        x = words.sum(1) / mask.sum(1).clamp(min=1.0)  # (N, dim)
        x = x + self.text_out(F.gelu(self.text_in(x)))
        return F.normalize(x, dim=1)

    def forward(
        self, pooled: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """In-batch logits (B, B) of photo i against caption j, and the symmetric InfoNCE loss
        (caption i belongs to photo i)."""
        logits = self.logit_scale.exp().clamp(max=100.0) * (
            self.embed_images(pooled) @ self.embed_tokens(tokens).T
        )
        target = torch.arange(len(logits), device=logits.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        return logits, loss

    # ------------------------------------------------------------------ captions in, scores out

    def token_ids(self, captions: Sequence[str], vocab: Vocab) -> torch.Tensor:
        """(N, T) word ids of the captions (words the vocabulary lacks read as <unk>)."""
        rows = [word_ids(c, vocab, self.cfg.max_words) for c in captions]
        return padded(rows, self.pad_id)

    @torch.inference_mode()
    def similarities(
        self, pooled: torch.Tensor, captions: Sequence[Sequence[str]], vocab: Vocab
    ) -> list[list[float]]:
        """Per photo (rows of pooled, (B, feature_dim)), the cosine of each of its captions."""
        flat = [c for caps in captions for c in caps]
        if not flat:
            return [[] for _ in captions]
        device = self.feature_mean.device
        images = self.embed_images(pooled.to(device))  # (B, dim)
        texts = self.embed_tokens(self.token_ids(flat, vocab).to(device))  # (N, dim)
        owner = torch.tensor([i for i, caps in enumerate(captions) for _ in caps], device=device)
        sims = (images[owner] * texts).sum(1).tolist()
        it = iter(sims)
        return [[float(next(it)) for _ in caps] for caps in captions]

    # ------------------------------------------------------------------ the model file

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The matcher as model-file tensors (fp16; the standardisation stays fp32)."""
        out = {}
        for name, t in self.state_dict().items():
            keep = name.startswith("feature_") or t.dim() == 0
            out[PREFIX + name] = (t.float() if keep else t.half()).detach().cpu().contiguous()
        return out

    @classmethod
    def from_tensors(
        cls, tensors: Mapping[str, torch.Tensor], cfg: MatcherConfig, pad_id: int
    ) -> Matcher:
        """Raises KeyError / RuntimeError when the tensors do not fit the config."""
        matcher = cls(cfg, pad_id)
        state = {
            k.removeprefix(PREFIX): v.float() for k, v in tensors.items() if k.startswith(PREFIX)
        }
        matcher.load_state_dict(state, strict=True)
        return matcher.eval()


def word_ids(caption: str, vocab: Vocab, max_words: int) -> list[int]:
    """The caption's first max_words word ids, as the matcher reads them (unknown: <unk>)."""
    return [vocab.stoi.get(w, vocab.unk_id) for w in tokenize(caption)][:max_words]


def padded(rows: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """(N, T) rows of word ids, padded with pad_id to the longest (at least 1)."""
    width = max((len(r) for r in rows), default=1) or 1
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return tokens


def config_from_provenance(provenance: Mapping[str, Any]) -> MatcherConfig | None:
    """The matcher's config saved in a model file's provenance ("matcher"), if any."""
    data = provenance.get("matcher")
    if not isinstance(data, dict):
        return None
    try:
        return MatcherConfig.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("matcher ignored (%s): %s", exc, json.dumps(data)[:200])
        return None
