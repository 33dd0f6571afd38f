"""The caption network: shapes, the key/value cache, TF padding and the EfficientNet-B0 encoder."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from core.model import CaptionModel, Conv2dSame, EfficientNetB0, ModelConfig, build_efficientnet_b0
from tests.conftest import requires_torchvision, tiny_config


def test_shapes_from_images_to_logits(tiny_model: CaptionModel) -> None:
    images = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        feats = tiny_model.backbone_features(images)
        assert feats.shape == (2, 1280, 7, 7)
        memory = tiny_model.encode_features(feats)
        assert memory.shape == (2, 49, 32)
        tokens = torch.randint(4, tiny_model.cfg.vocab_size, (2, 7))
        logits, loss = tiny_model(feats, tokens, tokens)
    assert logits.shape == (2, 7, tiny_model.cfg.vocab_size)
    assert loss is not None and loss.ndim == 0 and torch.isfinite(loss)


def test_features_accepted_as_map_or_tokens(tiny_model: CaptionModel) -> None:
    feats = torch.randn(3, 1280, 7, 7)
    with torch.inference_mode():
        a = tiny_model.encode_features(feats)
        b = tiny_model.encode_features(feats.flatten(2).transpose(1, 2))
    torch.testing.assert_close(a, b)


def test_wrong_feature_shape_is_rejected(tiny_model: CaptionModel) -> None:
    with pytest.raises(AssertionError, match="expected features"):
        tiny_model.encode_features(torch.randn(1, 10, 1280))


def test_cached_steps_equal_full_recompute(tiny_vocab) -> None:
    torch.manual_seed(1)
    model = CaptionModel(tiny_config(tiny_vocab, n_decoder_layers=3), with_backbone=False).eval()
    memory = model.encode_features(torch.randn(2, 49, 1280))
    tokens = torch.randint(4, len(tiny_vocab), (2, 10))
    with torch.inference_mode():
        full = F.log_softmax(model.decode(tokens, memory), dim=-1)  # (B, T, V)
        cache = model.start_cache(memory)
        for t in range(tokens.shape[1]):
            step_logp, cache = model.step(tokens[:, t], cache)
            torch.testing.assert_close(step_logp, full[:, t], atol=1e-5, rtol=1e-5)
    assert cache.length == 10


def test_cache_reorder_selects_rows(tiny_model: CaptionModel) -> None:
    memory = torch.randn(3, 49, 32)
    cache = tiny_model.start_cache(memory)
    _, cache = tiny_model.step(torch.tensor([4, 5, 6]), cache)
    picked = cache.reorder(torch.tensor([2, 0]), torch.tensor([2, 0]))
    torch.testing.assert_close(picked.memory_kv[0][0], cache.memory_kv[0][0][[2, 0]])
    torch.testing.assert_close(picked.self_kv[0][0], cache.self_kv[0][0][[2, 0]])
    beams_only = cache.reorder(torch.tensor([2, 0]))  # memory rows stay: they serve groups
    assert beams_only.memory_kv[0][0] is cache.memory_kv[0][0]


def test_tied_embeddings_share_storage(tiny_model: CaptionModel) -> None:
    assert tiny_model.lm_head.weight.data_ptr() == tiny_model.token_emb.weight.data_ptr()


@requires_torchvision
def test_backbone_has_five_tf_padded_convs_and_torchvision_keys() -> None:
    import torchvision

    net = build_efficientnet_b0()
    same = [m for m in net.modules() if isinstance(m, Conv2dSame)]
    assert len(same) == 5
    assert net.state_dict().keys() == torchvision.models.efficientnet_b0().state_dict().keys()


@requires_torchvision
def test_our_efficientnet_b0_is_torchvisions_to_the_bit() -> None:
    """Same modules in the same order: same keys, same seeded weights, same outputs (also in
    training, stochastic depth and dropout drawn from the same random numbers)."""
    import torchvision

    torch.manual_seed(0)
    theirs = torchvision.models.efficientnet_b0()
    torch.manual_seed(0)
    ours = EfficientNetB0()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    x = torch.randn(2, 3, 224, 224)
    for training in (False, True):
        theirs.train(training)
        ours.train(training)
        torch.manual_seed(1)
        expected = theirs(x)
        torch.manual_seed(1)
        torch.testing.assert_close(ours(x), expected, atol=0, rtol=0)


def test_captioning_does_not_import_torchvision(tmp_path, tiny_checkpoint) -> None:
    """torchvision's import (about 1.2 s, it pulls in torch._dynamo) stays out of the path to a
    caption on the CPU; it is needed only for GPU JPEG decoding."""
    from tests.imagegen import textured_image

    photo = tmp_path / "p.jpg"
    textured_image(96, 64, seed=0).save(photo)
    code = (
        "import sys\n"
        "from core.inference import Captioner\n"
        f"r = Captioner({str(tiny_checkpoint)!r}, device='cpu').caption_file({str(photo)!r})\n"
        "assert r.ok, r.error\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] == 'torchvision'"
        " or m == 'torch._dynamo'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("kernel", [3, 5])
def test_tf_same_padding_pads_bottom_right(kernel: int) -> None:
    conv = Conv2dSame(2, 2, kernel, stride=2, bias=False)
    x = torch.randn(1, 2, 16, 16)
    total = kernel - 2  # TF "SAME" for stride 2 on an even size
    expected = F.conv2d(F.pad(x, [total // 2, total - total // 2] * 2), conv.weight, stride=2)
    torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape[-1] == 8


def test_config_rejects_bad_heads() -> None:
    with pytest.raises(AssertionError, match="divisible"):
        ModelConfig(d_model=30, n_heads=4)


def test_config_round_trip() -> None:
    cfg = ModelConfig(vocab_size=10, d_model=64, n_heads=4)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_beams_sharing_a_photo_memory_equal_beams_with_copies(tiny_model) -> None:
    """Grouped cross-attention (k beams per memory row) = attention to a copied memory."""
    torch.manual_seed(0)
    memory = tiny_model.encode_features(torch.randn(2, 49, 1280))  # (2, 49, C)
    tokens = torch.randint(4, tiny_model.cfg.vocab_size, (6,))  # 3 beams per photo
    shared = tiny_model.start_cache(memory)
    copied = tiny_model.start_cache(memory.repeat_interleave(3, dim=0))
    for _ in range(3):
        a, shared = tiny_model.step(tokens, shared)
        b, copied = tiny_model.step(tokens, copied)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        tokens = a.argmax(-1)
    # Reordering beams, then dropping photo 0, keeps the two in step.
    shared = shared.reorder(torch.tensor([5, 3, 4]), torch.tensor([1]))
    copied = copied.reorder(torch.tensor([5, 3, 4]), torch.tensor([5, 3, 4]))
    a, _ = tiny_model.step(tokens[[5, 3, 4]], shared)
    b, _ = tiny_model.step(tokens[[5, 3, 4]], copied)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_a_model_without_tags_has_the_v3_layout(tiny_vocab) -> None:
    """n_tags 0 (every model file before v4) adds no tensor: old files load strictly."""
    model = CaptionModel(tiny_config(tiny_vocab), with_backbone=False)
    assert not any(k.startswith("tag_") for k in model.state_dict())


def tagged_model(tiny_vocab, n_tags: int = 2) -> CaptionModel:
    """Four ImageNet-like classes: 0 and 1 say the same word, 2 another, 3 none."""
    torch.manual_seed(0)
    model = CaptionModel(
        tiny_config(tiny_vocab, n_tags=n_tags, n_classes=4), with_backbone=False
    ).eval()
    words = [tiny_vocab.stoi[w] for w in ("dog", "dog", "ball")] + [-1]
    with torch.no_grad():
        model.tag_words.copy_(torch.tensor(words))
        model.tag_head.weight.zero_()
    return model


def test_tags_sum_the_classes_of_one_word_and_skip_unmapped_ones(tiny_vocab) -> None:
    model = tagged_model(tiny_vocab)
    with torch.no_grad():
        # class 3 (no word) is the likeliest; classes 0 and 1 ("dog") together beat class 2
        model.tag_head.bias.copy_(torch.tensor([1.0, 1.0, 1.5, 3.0]))
        words, scores = model.image_tags(torch.zeros(1, 49, 1280))
    assert [tiny_vocab.itos[w] for w in words[0].tolist()] == ["dog", "ball"]
    p = torch.tensor([1.0, 1.0, 1.5, 3.0]).softmax(0)
    torch.testing.assert_close(scores[0], torch.stack([p[0] + p[1], p[2]]))


def test_tags_join_the_image_tokens_and_change_the_caption_memory(tiny_vocab) -> None:
    model = tagged_model(tiny_vocab)
    feats = torch.randn(2, 49, 1280)
    with torch.inference_mode():
        memory = model.encode_features(feats)
        assert memory.shape == (2, 49 + 2, 32)
        model.tag_words[2] = tiny_vocab.stoi["grass"]  # another word, same probabilities
        assert not torch.allclose(model.encode_features(feats), memory)


def test_a_tagged_model_round_trips_through_a_checkpoint(tmp_path, tiny_vocab) -> None:
    from core.checkpoint import load_checkpoint, save_checkpoint

    model = tagged_model(tiny_vocab)
    path = save_checkpoint(tmp_path / "tags.safetensors", model, tiny_vocab, dtype=torch.float16)
    loaded = load_checkpoint(path).build_model()
    assert loaded.tag_words.tolist() == model.tag_words.tolist()  # ids stay integers
    assert not any(p.requires_grad for p in loaded.tag_head.parameters())
    feats = torch.randn(1, 49, 1280)
    with torch.inference_mode():
        assert loaded.image_tags(feats)[0].tolist() == model.image_tags(feats)[0].tolist()


def copying_model(tiny_vocab) -> CaptionModel:
    """tagged_model with the pointer/copy distribution, its gate opened wide."""
    torch.manual_seed(0)
    model = CaptionModel(
        tiny_config(tiny_vocab, n_tags=2, n_classes=4, tag_copy=True), with_backbone=False
    ).eval()
    words = [tiny_vocab.stoi[w] for w in ("dog", "dog", "ball")] + [-1]
    with torch.no_grad():
        model.tag_words.copy_(torch.tensor(words))
        model.tag_head.weight.zero_()
        model.copy_gate.bias.fill_(5.0)  # nearly everything copied
    return model


def test_a_model_without_copying_has_no_copy_tensors(tiny_vocab) -> None:
    model = CaptionModel(tiny_config(tiny_vocab, n_tags=2, n_classes=4), with_backbone=False)
    assert not any(k.startswith("copy_") for k in model.state_dict())
    copying = CaptionModel(
        tiny_config(tiny_vocab, n_tags=2, n_classes=4, tag_copy=True), with_backbone=False
    )
    gate = float(torch.sigmoid(copying.copy_gate.bias.detach()))
    assert gate < 0.06  # a copying model starts almost never copying


def test_copying_puts_the_tag_words_probability_in_the_next_word(tiny_vocab) -> None:
    """With the gate open the next word is nearly always one of the photo's tag words, and the
    output is a distribution (log-probabilities that sum to one)."""
    model = copying_model(tiny_vocab)
    feats = torch.randn(2, 49, 1280)
    tokens = torch.randint(4, len(tiny_vocab), (2, 5))
    with torch.inference_mode():
        logp, _ = model(feats, tokens)  # (2, 5, V)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, 5))
    tag_ids = [tiny_vocab.stoi["dog"], tiny_vocab.stoi["ball"]]
    assert (logp.exp()[..., tag_ids].sum(-1) > 0.9).all()
    with torch.no_grad():
        model.copy_gate.bias.fill_(-30.0)  # gate shut: the vocabulary distribution alone
        shut, _ = model(feats, tokens)
    assert (shut.exp()[..., tag_ids].sum(-1) < 0.9).all()


def test_copying_decodes_the_same_step_by_step_as_teacher_forced(tiny_vocab) -> None:
    """The key/value cache with beams sharing a photo's row gives the teacher-forced numbers."""
    model = copying_model(tiny_vocab)
    with torch.no_grad():
        model.copy_gate.bias.fill_(0.0)
    feats = torch.randn(2, 49, 1280)
    tokens = torch.randint(4, len(tiny_vocab), (6, 4))  # 3 captions per photo
    with torch.inference_mode():
        memory = model.encode_features(feats)
        words = model.copy_words(feats)
        forced = model.decode(tokens, memory, repeats=3, tag_words=words)  # (6, 4, V)
        cache = model.start_cache(memory, words)
        for t in range(4):
            logp, cache = model.step(tokens[:, t], cache)
            torch.testing.assert_close(logp, forced[:, t].log_softmax(-1), atol=1e-5, rtol=1e-5)
        cache = cache.reorder(torch.tensor([3, 4, 5]), torch.tensor([1]))
        assert cache.tags is not None and cache.tags[1].tolist() == words[1:].tolist()


def test_beam_search_copies_tag_words(tiny_vocab) -> None:
    from core.beam import beam_search
    from core.datatypes import CaptionSettings

    model = copying_model(tiny_vocab)
    feats = torch.randn(2, 49, 1280)
    memory = model.encode_features(feats)
    found = beam_search(
        model, tiny_vocab, memory, CaptionSettings(beam_size=3), tag_words=model.copy_words(feats)
    )
    assert all(set(c[0].caption.split()) <= {"dog", "ball"} for c in found)
