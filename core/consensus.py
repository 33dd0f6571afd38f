"""Consensus reranking (Devlin et al. 2015): beam candidates rescored by CIDEr-D agreement with the
captions of the nearest training photos in the image encoder's pooled feature space."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from core.cider import CiderD
from core.datatypes import Candidate

log = logging.getLogger(__name__)

PREFIX = "consensus."
"""Tensors of the datastore in a model file: consensus.mean (D,), consensus.projection (D, d),
consensus.keys (N, d) and consensus.captions (N, L) token ids padded with <pad>."""
KEYS = ("mean", "projection", "keys", "captions")


def pooled_features(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) encoder maps or (B, H*W, D) token features -> (B, D) mean over the grid."""
    if feature_map.dim() == 4:
        return feature_map.float().mean((2, 3))
    return feature_map.float().mean(1)


def rerank_order(scores: Sequence[float], agreements: Sequence[float], weight: float) -> list[int]:
    """Candidate indices, best first, by agreement + weight * log-probability; ties keep the
    beam's order. The one rule the app reranks by and the training code tunes the weight with."""
    return sorted(range(len(scores)), key=lambda i: (-(agreements[i] + weight * scores[i]), i))


@dataclass(frozen=True)
class NeighbourIndex:
    """Training photos' pooled features, centred, projected to d dimensions and made unit length;
    cosine similarity finds a photo's nearest ones."""

    mean: torch.Tensor  # (D,)
    projection: torch.Tensor  # (D, d)
    keys: torch.Tensor  # (N, d), unit rows

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, D) pooled features -> (B, d) unit rows in the index's space."""
        z = (pooled.float() - self.mean.float()) @ self.projection.float()
        return torch.nn.functional.normalize(z, dim=1)

    def search(self, pooled: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine similarities (B, k) and indices (B, k) of the k nearest training photos."""
        sims = self.project(pooled) @ self.keys.float().T  # (B, N)
        top = sims.topk(min(k, sims.shape[1]), dim=1)
        return top.values, top.indices

    @classmethod
    def fit(cls, pooled: torch.Tensor, dims: int | None) -> NeighbourIndex:
        """PCA of the training photos' pooled features (dims None or 0: all, no reduction)."""
        x = pooled.float()
        mean = x.mean(0)
        if not dims or dims >= x.shape[1]:
            projection = torch.eye(x.shape[1])
        else:
            cov = (x - mean).T @ (x - mean) / max(len(x) - 1, 1)
            _, vecs = torch.linalg.eigh(cov.double())  # ascending eigenvalues
            projection = vecs[:, -dims:].flip(1).float().contiguous()
        keys = torch.nn.functional.normalize((x - mean) @ projection, dim=1)
        return cls(mean, projection, keys)


@dataclass(frozen=True)
class ConsensusSettings:
    k: int = 25  # nearest training photos whose captions vote
    weight: float = 1.0  # of the candidate's own log-probability beside its agreement
    # False: the candidates keep the beam's order; the agreement only informs the confidence
    # (the review mark, issue 21).
    rerank: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "weight": self.weight, "rerank": self.rerank}


class Consensus:
    """The datastore: a NeighbourIndex and, per training photo, the captions that vote for it."""

    def __init__(
        self,
        index: NeighbourIndex,
        captions: Sequence[Sequence[Sequence[str]]],
        settings: ConsensusSettings = ConsensusSettings(),
    ) -> None:
        if len(captions) != len(index.keys):
            raise ValueError(f"{len(captions)} caption lists for {len(index.keys)} photos")
        self.index = index
        self.captions = captions
        self.settings = settings
        self._cider: CiderD | None = None  # document frequencies: counted on first use
        self._vectors: dict[int, list] = {}

    @property
    def cider(self) -> CiderD:
        if self._cider is None:
            self._cider = CiderD([[tuple(c) for c in caps] for caps in self.captions])
        return self._cider

    def _refs(self, photos: Sequence[int]) -> list:
        out = []
        for p in photos:
            if p not in self._vectors:
                self._vectors[p] = self.cider.prepare_refs(self.captions[p])
            out += self._vectors[p]
        return out

    def agreement(self, caption: str, photos: Sequence[int]) -> float:
        """CIDEr-D of a caption against the captions of these training photos, all together."""
        refs = self._refs(photos)
        words = caption.split()
        if not refs or not words:
            return 0.0
        return self.cider.score(words, refs)

    def rerank(
        self, candidates: Sequence[Sequence[Candidate]], pooled: torch.Tensor
    ) -> list[list[Candidate]]:
        """Per photo, its candidates with `consensus` and `neighbour_similarity` filled in, best
        first by agreement + weight * log-probability (ties keep the beam's order), or in the
        beam's order when the settings do not rerank."""
        sims, idx = self.index.search(pooled, self.settings.k)
        out = []
        for cands, s, photos in zip(candidates, sims.tolist(), idx.tolist(), strict=True):
            similarity = sum(s) / max(len(s), 1)
            scored = [
                replace(
                    c,
                    consensus=self.agreement(c.caption, photos),
                    neighbour_similarity=similarity,
                )
                for c in cands
            ]
            if not self.settings.rerank:
                out.append(scored)
                continue
            order = rerank_order(
                [c.score for c in scored], [c.consensus for c in scored], self.settings.weight
            )
            out.append([scored[i] for i in order])
        return out

    # ------------------------------------------------------------------ the model file

    def to_tensors(self, stoi: Mapping[str, int], pad_id: int) -> dict[str, torch.Tensor]:
        """The datastore as model-file tensors (fp16 features, int16/int32 token ids). Every
        training photo keeps one caption (the first); words outside stoi are dropped."""
        rows = [[stoi[w] for w in (caps[0] if caps else ()) if w in stoi] for caps in self.captions]
        width = max((len(r) for r in rows), default=1) or 1
        dtype = torch.int16 if len(stoi) < 2**15 else torch.int32
        tokens = torch.full((len(rows), width), pad_id, dtype=dtype)
        for i, r in enumerate(rows):
            tokens[i, : len(r)] = torch.tensor(r, dtype=dtype)
        return {
            PREFIX + "mean": self.index.mean.half().contiguous(),
            PREFIX + "projection": self.index.projection.half().contiguous(),
            PREFIX + "keys": self.index.keys.half().contiguous(),
            PREFIX + "captions": tokens.contiguous(),
        }

    @classmethod
    def from_tensors(
        cls,
        tensors: Mapping[str, torch.Tensor],
        itos: Sequence[str],
        pad_id: int,
        settings: ConsensusSettings,
    ) -> Consensus:
        index = NeighbourIndex(
            tensors[PREFIX + "mean"].float(),
            tensors[PREFIX + "projection"].float(),
            tensors[PREFIX + "keys"].float(),
        )
        captions = [
            [tuple(itos[t] for t in row if t != pad_id)]
            for row in tensors[PREFIX + "captions"].long().tolist()
        ]
        return cls(index, captions, settings)


def settings_from_provenance(provenance: Mapping[str, Any]) -> ConsensusSettings | None:
    """The reranker's settings saved in a model file's provenance ("consensus"), if any."""
    data = provenance.get("consensus")
    if not isinstance(data, dict):
        return None
    try:
        return ConsensusSettings(
            k=int(data["k"]), weight=float(data["weight"]), rerank=bool(data.get("rerank", True))
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("consensus settings ignored (%s): %s", exc, json.dumps(data)[:200])
        return None
