"""Training the image-text matcher: its pairs (never a dev photo), its training, its model file."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.confidence import FEATURES
from core.consensus import Consensus, ConsensusSettings, NeighbourIndex
from core.datatypes import Candidate
from core.inference import load_matcher
from core.matcher import MatcherConfig
from training.data import Corpus, Example
from training.matcher import Pairs, attach, train, training_pairs
from training.review import signals

WORDS = ("dog", "cat", "man", "woman")


def _corpus(dev: tuple[str, ...] = ("d0.jpg",)) -> Corpus:
    train = tuple(
        Example(f"t{i}.jpg", Path(f"t{i}.jpg"), (f"a {WORDS[i % 4]} on the grass",))
        for i in range(8)
    )
    return Corpus(train, {"flickr8k": tuple(Example(n, Path(n), ("a dog",)) for n in dev)})


def test_pairs_take_the_cached_training_photos_and_never_a_dev_photo(tiny_vocab) -> None:
    pooled = np.arange(10 * 2 * 4, dtype=np.float32).reshape(10, 2, 4)
    names = [f"t{i}.jpg" for i in range(7)] + ["d0.jpg", "x.jpg", "y.jpg"]
    pairs = training_pairs(_corpus(), pooled, names, tiny_vocab, max_words=3)
    assert pairs.names == [f"t{i}.jpg" for i in range(7)]  # t7 is not in the cache
    assert np.array_equal(pairs.features, pooled[:7])
    assert pairs.captions[1] == [[tiny_vocab.stoi[w] for w in ("a", "cat", "on")]]
    with pytest.raises(AssertionError, match="dev photo"):
        training_pairs(_corpus(dev=("t3.jpg",)), pooled, names, tiny_vocab, max_words=3)


def _clusters(tiny_vocab, n: int = 256, seed: int = 0) -> Pairs:
    """Photos in four clusters of the feature space, each captioned with its own animal."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (4, 1280)).astype(np.float32)
    kind = np.arange(n) % 4
    feats = centres[kind][:, None, :] + rng.normal(0, 0.5, (n, 2, 1280)).astype(np.float32)
    caps = [[[tiny_vocab.stoi[w] for w in ("a", WORDS[k], "on", "the", "grass")]] for k in kind]
    return Pairs(feats, caps, [f"p{i}.jpg" for i in range(n)])


def test_training_makes_a_photo_match_its_own_kind_of_caption(tiny_vocab) -> None:
    pairs = _clusters(tiny_vocab)
    cfg = MatcherConfig(vocab_size=len(tiny_vocab), hidden=32, dim=16)
    torch.set_num_threads(1)
    matcher = train(pairs, cfg, tiny_vocab.pad_id, epochs=15, batch=32, lr=3e-3)
    pooled = torch.from_numpy(pairs.features[:8, 0])
    captions = [[f"a {w} on the grass" for w in WORDS] for _ in range(8)]
    sims = np.array(matcher.similarities(pooled, captions, tiny_vocab))  # (8, 4)
    assert (sims.argmax(1) == np.arange(8) % 4).all(), sims


def test_attached_matcher_loads_and_informs_the_review_signals(
    tmp_path: Path, tiny_model, tiny_vocab
) -> None:
    g = torch.Generator().manual_seed(3)
    store = torch.randn(12, 1280, generator=g)
    cons = Consensus(
        NeighbourIndex.fit(store, 4),
        [[("a", WORDS[i % 4])] for i in range(12)],
        ConsensusSettings(k=3, weight=0.0, rerank=False),
    )
    plain = tmp_path / "store.safetensors"
    save_checkpoint(
        plain,
        tiny_model,
        tiny_vocab,
        {"consensus": cons.settings.to_dict()},
        extra=cons.to_tensors(tiny_vocab.stoi, tiny_vocab.pad_id),
    )
    pairs = _clusters(tiny_vocab, n=64)
    cfg = MatcherConfig(vocab_size=len(tiny_vocab), hidden=16, dim=8)
    matcher = train(pairs, cfg, tiny_vocab.pad_id, epochs=2, batch=16)
    out = attach(plain, tmp_path / "matched.safetensors", matcher, {"epochs": 2}, tiny_vocab)
    ckpt = load_checkpoint(out)
    assert ckpt.provenance["matcher"]["epochs"] == 2
    assert ckpt.provenance["consensus"] == cons.settings.to_dict()  # the datastore stays
    loaded = load_matcher(ckpt)
    assert loaded is not None and loaded.cfg == cfg
    photos = {
        f"p{i}.jpg": {
            "candidates": [asdict(Candidate(caption=f"a {WORDS[i % 4]}", score=-0.5))],
            "cider": 0.5,
        }
        for i in range(4)
    }
    collected = {"splits": {"flickr8k": {"photos": photos}}}
    x, _, _ = signals(collected, pairs.features[:4, 0], out, k=3)
    i = FEATURES.index("match")
    expect = matcher.similarities(
        torch.from_numpy(pairs.features[:4, 0]), [[f"a {WORDS[k]}"] for k in range(4)], tiny_vocab
    )
    assert x[:, i] == pytest.approx([e[0] for e in expect], abs=5e-3)
    x_plain, _, _ = signals(collected, pairs.features[:4, 0], plain, k=3)
    assert (x_plain[:, i] == 0).all()
    json.dumps(ckpt.provenance)  # the provenance stays plain JSON
