"""The image-text matcher: its model-file tensors, its scores, and the Captioner's use of them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.confidence import FEATURES, Calibration, confidence_features
from core.datatypes import Candidate, CaptionSettings
from core.inference import Captioner, load_matcher
from core.matcher import PREFIX, Matcher, MatcherConfig, config_from_provenance


def _matcher(vocab_size: int, seed: int = 0) -> Matcher:
    torch.manual_seed(seed)
    cfg = MatcherConfig(vocab_size=vocab_size, hidden=32, dim=16)
    matcher = Matcher(cfg).eval()
    with torch.no_grad():  # a standardisation other than the identity, as training sets
        matcher.feature_mean.normal_()
        matcher.feature_scale.uniform_(0.5, 2.0)
    return matcher


@pytest.fixture
def checkpoint_with_matcher(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    ckpt = load_checkpoint(tiny_checkpoint)
    matcher = _matcher(len(ckpt.vocab))
    provenance = {**ckpt.provenance, "matcher": matcher.cfg.to_dict()}
    path = tmp_path / "with_matcher.safetensors"
    save_checkpoint(path, ckpt.build_model(), ckpt.vocab, provenance, extra=matcher.to_tensors())
    return path


def test_config_is_validated_and_read_back() -> None:
    cfg = MatcherConfig(vocab_size=50, hidden=8, dim=4)
    assert MatcherConfig.from_dict(cfg.to_dict()) == cfg
    assert config_from_provenance({"matcher": cfg.to_dict()}) == cfg
    assert config_from_provenance({}) is None
    with pytest.raises(ValueError, match="dim"):
        MatcherConfig(vocab_size=50, dim=0)


def test_similarities_are_cosines_of_each_photos_own_captions(tiny_vocab) -> None:
    matcher = _matcher(len(tiny_vocab))
    pooled = torch.randn(2, 1280)
    captions = [["a dog runs on the beach", "a cat sits"], ["a man in the water"]]
    sims = matcher.similarities(pooled, captions, tiny_vocab)
    assert [len(s) for s in sims] == [2, 1]
    with torch.no_grad():
        images = matcher.embed_images(pooled)
        texts = matcher.embed_tokens(matcher.token_ids(["a cat sits"], tiny_vocab))
    assert sims[0][1] == pytest.approx(float(images[0] @ texts[0]), abs=1e-5)
    assert all(-1.0 <= s <= 1.0 for row in sims for s in row)
    # Padding does not change a caption's embedding: scored alone or beside a longer one.
    alone = matcher.similarities(pooled[:1], [["a cat sits"]], tiny_vocab)
    assert alone[0][0] == pytest.approx(sims[0][1], abs=1e-5)
    assert matcher.similarities(pooled, [[], []], tiny_vocab) == [[], []]


def test_unknown_words_read_as_unk_and_long_captions_are_cut(tiny_vocab) -> None:
    matcher = _matcher(len(tiny_vocab))
    tokens = matcher.token_ids(["a zebra", " ".join(["dog"] * 40)], tiny_vocab)
    assert tokens[0, 1] == tiny_vocab.unk_id
    assert tokens.shape[1] == matcher.cfg.max_words


def test_tensors_round_trip_in_fp16(tiny_vocab) -> None:
    matcher = _matcher(len(tiny_vocab))
    tensors = matcher.to_tensors()
    assert all(k.startswith(PREFIX) for k in tensors)
    assert tensors[PREFIX + "word_emb.weight"].dtype == torch.float16
    assert tensors[PREFIX + "feature_mean"].dtype == torch.float32
    back = Matcher.from_tensors(tensors, matcher.cfg, tiny_vocab.pad_id)
    pooled = torch.randn(3, 1280)
    caps = [["a dog"], ["a red ball in the grass"], ["a woman sits on the street"]]
    a = matcher.similarities(pooled, caps, tiny_vocab)
    b = back.similarities(pooled, caps, tiny_vocab)
    assert [x for r in b for x in r] == pytest.approx([x for r in a for x in r], abs=5e-3)


def test_captioner_fills_in_each_candidates_match(checkpoint_with_matcher: Path) -> None:
    captioner = Captioner(checkpoint_with_matcher, device="cpu")
    assert captioner.matcher is not None
    images = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    found = captioner.caption_tensors(images, CaptionSettings(beam_size=3))
    _, _, pooled = captioner._encode(images)
    for cands, row in zip(found, pooled, strict=True):
        expect = captioner.matcher.similarities(
            row[None], [[c.caption for c in cands]], captioner.vocab
        )[0]
        assert [c.match for c in cands] == pytest.approx(expect, abs=1e-5)
        assert all(c.match != 0 for c in cands)
    # The matcher informs the confidence only: the captions are the beam's, as without it.
    plain = Captioner(checkpoint_with_matcher, device="cpu")
    plain.matcher = None
    without = plain.caption_tensors(images, CaptionSettings(beam_size=3))
    assert [[c.caption for c in cs] for cs in found] == [[c.caption for c in cs] for cs in without]
    assert all(c.match == 0 for cs in without for c in cs)


def test_the_confidence_reads_the_best_candidates_match() -> None:
    cands = [
        Candidate(caption="a dog runs", score=-0.5, match=0.4),
        Candidate(caption="a cat sits", score=-0.9, match=0.1),
    ]
    f = dict(zip(FEATURES, confidence_features(cands), strict=True))
    assert f["match"] == 0.4
    weights = [0.0] * len(FEATURES)
    weights[FEATURES.index("match")] = 5.0
    calibration = Calibration(tuple(weights), 0.0)
    worse = [cands[0].__class__(**{**cands[0].__dict__, "match": -0.2}), cands[1]]
    assert calibration.confidence(cands) > 0.5 > calibration.confidence(worse)


def test_a_calibration_made_before_the_match_gives_it_no_weight() -> None:
    old = {"features": list(FEATURES[:-1]), "weights": [0.1] * (len(FEATURES) - 1), "bias": 0.0}
    calibration = Calibration.from_dict(old)
    assert calibration.weights[FEATURES.index("match")] == 0.0


def test_a_damaged_matcher_is_ignored_with_a_warning(
    tmp_path: Path, checkpoint_with_matcher: Path, caplog
) -> None:
    ckpt = load_checkpoint(checkpoint_with_matcher)
    extra = dict(ckpt.extra)
    extra[PREFIX + "image_in.weight"] = torch.zeros(3, 3)  # not the config's shape
    path = tmp_path / "damaged.safetensors"
    save_checkpoint(path, ckpt.build_model(), ckpt.vocab, ckpt.provenance, extra=extra)
    with caplog.at_level(logging.WARNING):
        assert load_matcher(load_checkpoint(path)) is None
    assert "matcher ignored" in caplog.text
    # The file still captions, its confidence without the match.
    captioner = Captioner(path, device="cpu")
    images = torch.randint(0, 256, (1, 3, 224, 224), dtype=torch.uint8)
    assert all(c.match == 0 for c in captioner.caption_tensors(images)[0])


def test_a_file_without_a_matcher_has_none(tiny_checkpoint: Path) -> None:
    assert load_matcher(load_checkpoint(tiny_checkpoint)) is None
