"""Consensus reranking: the neighbour index, the agreement, the rerank and the model file's datastore."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.consensus import Consensus, ConsensusSettings, NeighbourIndex, pooled_features
from core.datatypes import Candidate, CaptionSettings
from core.inference import Captioner


def _index(n: int = 40, dim: int = 16, dims: int | None = 8, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    pooled = torch.randn(n, dim, generator=g)
    return pooled, NeighbourIndex.fit(pooled, dims)


def test_a_training_photo_is_its_own_nearest_neighbour() -> None:
    pooled, index = _index(dims=None)
    sims, idx = index.search(pooled[:5], 3)
    assert idx[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert torch.allclose(sims[:, 0], torch.ones(5), atol=1e-5)
    assert (sims[:, :-1] >= sims[:, 1:]).all()


def test_pca_keeps_the_requested_dimensions_as_unit_rows() -> None:
    pooled, index = _index(dims=4)
    assert index.projection.shape == (16, 4)
    assert index.keys.shape == (40, 4)
    assert torch.allclose(index.keys.norm(dim=1), torch.ones(40), atol=1e-5)
    # The first component carries the most variance.
    z = (pooled - index.mean) @ index.projection
    assert z.var(0)[0] >= z.var(0)[-1]


def test_pooled_features_are_the_grid_mean_in_either_layout() -> None:
    maps = torch.randn(2, 6, 3, 3)
    tokens = maps.flatten(2).transpose(1, 2)
    assert torch.allclose(pooled_features(maps), maps.mean((2, 3)))
    assert torch.allclose(pooled_features(tokens), maps.mean((2, 3)))


def _consensus(weight: float) -> tuple[Consensus, torch.Tensor]:
    # Photos 0-2 (dogs) lie together along one axis, the others along two more.
    pooled = torch.tensor(
        [
            [5.0, 0.1, 0.0, 0.0],
            [5.0, 0.0, 0.2, 0.0],
            [5.0, 0.0, 0.0, 0.3],
            [0.0, 5.0, 0.0, 0.1],
            [0.0, 5.0, 0.2, 0.0],
            [0.0, 0.0, 5.0, 0.0],
        ]
    )
    index = NeighbourIndex.fit(pooled, None)
    captions = [
        [("a", "dog", "runs", "on", "the", "beach")],
        [("a", "dog", "runs", "on", "the", "grass")],
        [("a", "dog", "runs", "in", "the", "water")],
        [("a", "man", "sits", "on", "the", "street")],
        [("a", "woman", "sits", "on", "the", "grass")],
        [("a", "cat", "sits", "in", "the", "street")],
    ]
    return Consensus(index, captions, ConsensusSettings(k=3, weight=weight)), pooled


def test_agreement_is_higher_for_what_the_neighbours_say() -> None:
    cons, _ = _consensus(1.0)
    assert cons.agreement("a dog runs on the beach", [0, 1, 2]) > cons.agreement(
        "a cat sits in the street", [0, 1, 2]
    )
    assert cons.agreement("", [0]) == 0.0


def test_rerank_promotes_the_candidate_the_neighbours_agree_with() -> None:
    cons, pooled = _consensus(0.0)
    # A query photo close to the three dog photos: its neighbours all say "a dog runs ...".
    query = pooled[:3].mean(0, keepdim=True)
    cands = [
        [
            Candidate(caption="a cat sits in the street", score=-0.3),
            Candidate(caption="a dog runs on the sand", score=-0.9),
        ]
    ]
    out = cons.rerank(cands, query)[0]
    assert [c.caption for c in out] == ["a dog runs on the sand", "a cat sits in the street"]
    assert out[0].consensus > out[1].consensus > 0 or out[1].consensus == 0
    assert out[0].neighbour_similarity == out[1].neighbour_similarity != 0


def test_a_large_weight_keeps_the_beam_order() -> None:
    cons, pooled = _consensus(1000.0)
    query = pooled[:3].mean(0, keepdim=True)
    cands = [
        [
            Candidate(caption="a cat sits in the street", score=-0.3),
            Candidate(caption="a dog runs on the sand", score=-0.9),
        ]
    ]
    assert cons.rerank(cands, query)[0][0].caption == "a cat sits in the street"


def test_datastore_round_trips_through_tensors(tiny_vocab) -> None:
    cons, pooled = _consensus(0.5)
    tensors = cons.to_tensors(tiny_vocab.stoi, tiny_vocab.pad_id)
    assert tensors["consensus.captions"].dtype == torch.int16
    assert tensors["consensus.keys"].dtype == torch.float16
    back = Consensus.from_tensors(tensors, tiny_vocab.itos, tiny_vocab.pad_id, cons.settings)
    assert back.captions == cons.captions
    q = pooled[:2]
    assert torch.equal(back.index.search(q, 2)[1], cons.index.search(q, 2)[1])


@pytest.fixture
def checkpoint_with_datastore(tmp_path: Path, tiny_model, tiny_vocab) -> Path:
    g = torch.Generator().manual_seed(1)
    pooled = torch.randn(30, 1280, generator=g)
    words = ["dog", "cat", "man", "woman"]
    captions = [[("a", words[i % 4], "on", "the", "grass")] for i in range(30)]
    cons = Consensus(NeighbourIndex.fit(pooled, 8), captions, ConsensusSettings(k=5, weight=0.5))
    path = tmp_path / "with_store.safetensors"
    save_checkpoint(
        path,
        tiny_model,
        tiny_vocab,
        {"consensus": cons.settings.to_dict()},
        extra=cons.to_tensors(tiny_vocab.stoi, tiny_vocab.pad_id),
    )
    return path


def test_checkpoint_keeps_the_datastore_apart_from_the_weights(checkpoint_with_datastore) -> None:
    ckpt = load_checkpoint(checkpoint_with_datastore)
    assert set(ckpt.extra) == {
        "consensus.mean",
        "consensus.projection",
        "consensus.keys",
        "consensus.captions",
    }
    assert not any(k.startswith("consensus.") for k in ckpt.state_dict)
    ckpt.build_model()  # the network loads strictly, datastore or not


def test_captioner_reranks_with_the_files_datastore(checkpoint_with_datastore) -> None:
    captioner = Captioner(checkpoint_with_datastore, device="cpu")
    assert captioner.consensus is not None
    assert captioner.consensus.settings == ConsensusSettings(k=5, weight=0.5)
    images = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    found = captioner.caption_tensors(images, CaptionSettings(beam_size=4, n_candidates=2))
    for cands in found:
        assert 1 <= len(cands) <= 2
        assert all(c.neighbour_similarity != 0 for c in cands)
        keys = [c.consensus + 0.5 * c.score for c in cands]
        assert keys == sorted(keys, reverse=True)


def test_captioner_without_a_datastore_does_not_rerank(tiny_checkpoint) -> None:
    captioner = Captioner(tiny_checkpoint, device="cpu")
    assert captioner.consensus is None
    images = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8)
    cands = captioner.caption_tensors(images, CaptionSettings(beam_size=3))[0]
    assert all(c.consensus == 0 and c.neighbour_similarity == 0 for c in cands)
