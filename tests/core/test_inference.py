"""The Captioner: greedy and beam search, candidates, batching, cancel, bad files."""

from __future__ import annotations

import copy
import math
import threading
from pathlib import Path

import pytest
import torch

from core.checkpoint import load_checkpoint
from core.datatypes import PRECISION_ENV, CaptionSettings
from core.devices import available_devices, pick_device
from core.errors import NoModelError
from core.inference import Captioner
from core.model import fold_batch_norms
from tests.imagegen import textured_image


@pytest.fixture(scope="module")
def captioner(tiny_checkpoint: Path) -> Captioner:
    return Captioner(tiny_checkpoint, device="cpu")


def greedy_by_recompute(captioner: Captioner, memory: torch.Tensor, max_tokens: int) -> list[str]:
    """Reference greedy decoding that re-runs the whole prefix every step (no cache)."""
    model, vocab = captioner.model, captioner.vocab
    out = []
    for b in range(memory.shape[0]):
        seq = [vocab.start_id]
        while len(seq) < max_tokens:
            logits = model.decode(torch.tensor([seq]), memory[b : b + 1])[0, -1]
            logits[[vocab.pad_id, vocab.start_id, vocab.unk_id]] = -math.inf
            if len(seq) == max_tokens - 1:
                nxt = vocab.end_id
            else:
                nxt = int(logits.argmax())
            seq.append(nxt)
            if nxt == vocab.end_id:
                break
        out.append(vocab.decode(seq))
    return out


def test_beam_one_equals_greedy_by_full_recompute(captioner: Captioner) -> None:
    torch.manual_seed(3)
    images = torch.randint(0, 256, (4, 3, 224, 224), dtype=torch.uint8)
    with torch.inference_mode():
        memory = captioner.encode(images)
        expected = greedy_by_recompute(captioner, memory, 25)
    got = captioner.beam_search(memory, CaptionSettings(beam_size=1))
    assert [c[0].caption for c in got] == expected


def test_beam_candidates_are_ranked_and_distinct(captioner: Captioner) -> None:
    images = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    results = captioner.caption_tensors(images, CaptionSettings(beam_size=4, n_candidates=4))
    for cands in results:
        assert 1 <= len(cands) <= 4
        scores = [c.score for c in cands]
        assert scores == sorted(scores, reverse=True)
        assert len({c.caption for c in cands}) == len(cands)
        assert all(len(c.caption.split()) <= 23 for c in cands)


def test_beam_search_is_no_worse_than_greedy(captioner: Captioner) -> None:
    """Beam search explores more: its best normalised score is >= greedy's."""
    images = torch.randint(0, 256, (3, 3, 224, 224), dtype=torch.uint8)
    greedy = captioner.caption_tensors(images, CaptionSettings(beam_size=1))
    beam = captioner.caption_tensors(images, CaptionSettings(beam_size=5))
    for g, b in zip(greedy, beam, strict=True):
        assert b[0].score >= g[0].score - 1e-6


def test_batches_give_the_same_captions_as_single_photos(captioner: Captioner, photo_dir) -> None:
    paths = sorted(photo_dir.glob("*.jpg"))
    one = [captioner.caption_file(p).caption for p in paths]
    many = [r.caption for r in captioner.caption_paths(paths, CaptionSettings(batch_size=2))]
    assert one == many


def test_bad_file_gives_error_result_and_batch_goes_on(captioner: Captioner, photo_dir) -> None:
    bad = photo_dir / "broken.jpg"
    bad.write_bytes(b"not really a jpeg")
    paths = [photo_dir / "photo0.jpg", bad, photo_dir / "photo1.jpg", photo_dir / "missing.jpg"]
    results = list(captioner.caption_paths(paths, CaptionSettings(batch_size=2)))
    by_path = {r.path: r for r in results}
    assert set(by_path) == set(paths)
    assert by_path[paths[0]].ok and by_path[paths[2]].ok
    assert not by_path[bad].ok and "broken.jpg" in by_path[bad].error
    assert not by_path[paths[3]].ok and "not found" in by_path[paths[3]].error
    good = by_path[paths[0]]
    assert good.caption and good.candidates and good.candidates[0].caption == good.caption


def test_cancel_stops_between_batches(captioner: Captioner, tmp_path: Path) -> None:
    paths = []
    for i in range(12):
        p = tmp_path / f"{i}.png"
        textured_image(64, 64, seed=i).save(p)
        paths.append(p)
    cancel = threading.Event()
    seen = []
    for r in captioner.caption_paths(paths, CaptionSettings(batch_size=2), cancel):
        seen.append(r)
        cancel.set()
    assert 1 <= len(seen) <= 2


def test_cancel_takes_no_further_path_and_starts_no_further_decode(
    captioner: Captioner, tmp_path: Path
) -> None:
    """A regression: after the first batch's results, a cancelled run went on filling its
    decode window (16 more paths taken from a folder scan, 10 decodes started) before it
    looked at the cancel."""
    photo = tmp_path / "p.png"
    textured_image(64, 64, seed=0).save(photo)
    pulled: list[int] = []

    def scan():
        for i in range(200):
            pulled.append(i)
            yield photo

    cancel = threading.Event()
    it = captioner.caption_paths(scan(), CaptionSettings(batch_size=16), cancel)
    assert next(it).ok
    cancel.set()
    taken_at_cancel = len(pulled)
    rest = list(it)
    assert len(pulled) == taken_at_cancel
    assert len(rest) <= 15  # at most the rest of the batch already captioned


def test_cancel_stops_inside_decoding(captioner: Captioner) -> None:
    from core.errors import Cancelled

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        captioner.caption_tensors(torch.zeros(1, 3, 224, 224, dtype=torch.uint8), cancel=cancel)


def test_lazy_path_iterables_are_consumed_in_a_bounded_window(
    captioner: Captioner, photo_dir
) -> None:
    pulled = []

    def gen():
        for i in range(50):
            pulled.append(i)
            yield photo_dir / "photo0.jpg"

    it = captioner.caption_paths(gen(), CaptionSettings(batch_size=2))
    next(it)
    assert len(pulled) < 20  # never reads the whole scan ahead


def test_default_precision_is_fp32_whatever_the_cpu(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.devices

    monkeypatch.delenv(PRECISION_ENV, raising=False)
    for has_bf16 in (True, False):  # an AMX or AVX512-BF16 CPU, and one without bf16
        monkeypatch.setattr(core.devices, "cpu_supports_bf16", lambda h=has_bf16: h)
        captioner = Captioner(tiny_checkpoint, device="cpu")
        assert captioner.precision == "fp32"
        assert captioner.backbone_dtype == torch.float32
        auto = Captioner(tiny_checkpoint, device="cpu", precision="auto")
        assert auto.backbone_dtype == (torch.bfloat16 if has_bf16 else torch.float32)
    assert Captioner(tiny_checkpoint, device="cpu", precision="bf16").backbone_dtype == (
        torch.bfloat16
    )


def test_precision_environment_variable(tiny_checkpoint: Path, monkeypatch) -> None:
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    assert Captioner(tiny_checkpoint, device="cpu").backbone_dtype == torch.bfloat16
    # A choice made in the call wins over the environment.
    assert Captioner(tiny_checkpoint, device="cpu", precision="fp32").precision == "fp32"
    monkeypatch.setenv(PRECISION_ENV, "half")
    with pytest.raises(ValueError, match=f"{PRECISION_ENV}='half' is not a precision"):
        Captioner(tiny_checkpoint, device="cpu")


def test_folded_batch_norms_give_the_same_features(tiny_checkpoint: Path) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint)
    plain = checkpoint.build_model().backbone
    with torch.no_grad():  # batch norms that do something: random statistics
        for m in plain.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    folded = copy.deepcopy(plain)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert fold_batch_norms(folded) == n_bn > 40
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        want, got = plain(x), folded(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_fp32_and_bf16_captioners_both_caption(tiny_checkpoint: Path, photo_dir) -> None:
    paths = sorted(photo_dir.glob("*.jpg"))
    for precision in ("fp32", "bf16"):
        results = list(
            Captioner(tiny_checkpoint, device="cpu", precision=precision).caption_paths(paths)
        )
        assert [r.path for r in results] == paths and all(r.ok and r.caption for r in results)


def test_missing_default_model_says_no_model_installed(monkeypatch, tmp_path: Path) -> None:
    import core.datatypes

    monkeypatch.setattr(core.datatypes, "DEFAULT_WEIGHTS", tmp_path / "none.safetensors")
    with pytest.raises(NoModelError, match="no trained caption model is installed"):
        Captioner()


def test_device_choice() -> None:
    assert pick_device("cpu").type == "cpu"
    assert available_devices()[-1] == "cpu"
    assert pick_device("auto").type == available_devices()[0]
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")
    if "cuda" not in available_devices():
        with pytest.raises(ValueError, match="not available"):
            pick_device("cuda")


def test_settings_validate() -> None:
    with pytest.raises(ValueError):
        CaptionSettings(beam_size=0)


def test_checkpoint_without_encoder_is_refused(tmp_path: Path, tiny_vocab) -> None:
    from core.checkpoint import save_checkpoint
    from core.model import CaptionModel
    from tests.conftest import tiny_config

    path = tmp_path / "noenc.safetensors"
    save_checkpoint(path, CaptionModel(tiny_config(tiny_vocab), with_backbone=False), tiny_vocab)
    assert load_checkpoint(path).config.vocab_size == len(tiny_vocab)
    with pytest.raises(NoModelError, match="no image encoder"):
        Captioner(path)


def test_style_token_is_forced_after_start_and_changes_nothing_else(tiny_vocab) -> None:
    """Beam search with a style equals greedy decoding from the prefix <start> <style:...>."""
    from core.model import CaptionModel
    from core.vocab import Vocab, style_token
    from tests.conftest import tiny_config

    vocab = Vocab(
        tiny_vocab.itos[:4] + (style_token("coco"), style_token("web")) + tiny_vocab.itos[4:]
    )
    torch.manual_seed(1)
    model = CaptionModel(tiny_config(vocab, style="coco"), with_backbone=False).eval()
    memory = model.encode_features(torch.randn(3, 49, 1280))
    from core.beam import beam_search

    got = beam_search(model, vocab, memory, CaptionSettings(beam_size=1))
    for b in range(3):
        seq = [vocab.start_id, vocab.stoi["<style:coco>"]]
        while len(seq) < 25:
            logits = model.decode(torch.tensor([seq]), memory[b : b + 1])[0, -1]
            banned = [vocab.pad_id, vocab.start_id, vocab.unk_id, 4, 5]
            logits[banned] = -math.inf
            nxt = vocab.end_id if len(seq) == 24 else int(logits.argmax())
            seq.append(nxt)
            if nxt == vocab.end_id:
                break
        assert got[b][0].caption == vocab.decode(seq)
        assert "<style" not in got[b][0].caption
    other = beam_search(model, vocab, memory, CaptionSettings(beam_size=1), style="web")
    assert len(other) == 3  # another style decodes too (and may read differently)


def test_results_carry_a_confidence_that_follows_the_model_probabilities(
    captioner: Captioner, photo_dir
) -> None:
    from core.confidence import FEATURES, UNCALIBRATED, Calibration
    from core.datatypes import Candidate

    results = list(captioner.caption_paths(sorted(photo_dir.glob("*.jpg")), CaptionSettings()))
    for r in results:
        assert r.ok and 0.0 <= r.confidence <= 1.0
        assert r.confidence == pytest.approx(captioner.calibration.confidence(r.candidates))
        assert r.candidates[0].min_token_logp <= r.candidates[0].score <= 0.0
    sure = [
        Candidate(caption="a dog", score=-0.2, min_token_logp=-0.5),
        Candidate(caption="a cat", score=-1.5, min_token_logp=-3.0),
    ]
    unsure = [
        Candidate(caption="a dog", score=-1.4, min_token_logp=-4.0),
        Candidate(caption="a cat", score=-1.45, min_token_logp=-4.0),
    ]
    assert UNCALIBRATED.confidence(sure) > UNCALIBRATED.confidence(unsure)
    cal = Calibration(
        (1.0, 2.0, 0.5, 0.1, 1.0, -0.5, -0.2, 3.0) + (0.0,) * (len(FEATURES) - 8),
        0.3,
        lone=(0.25, 0.6),
    )
    assert Calibration.from_dict(cal.to_dict()) == cal
    old = cal.to_dict()
    del old["lone_candidate"]  # a model calibrated before lone_candidate was stored
    assert Calibration.from_dict(old).lone == (2.0, 1.0)
    old["features"], old["weights"] = old["features"][:6], old["weights"][:6]  # no max_entropy
    assert Calibration.from_dict(old).weights == cal.weights[:6] + (0.0,) * (len(FEATURES) - 6)
    with pytest.raises(ValueError):
        Calibration.from_dict({**old, "features": ["score", "something else"]})


def test_a_lone_greedy_caption_is_scored_with_the_calibrations_typical_margin() -> None:
    """Greedy decoding has no second caption: margin and agreement are not measured, so the
    calibration's dev means stand in (not a margin it never saw, which sent confidence to 0)."""
    from core.confidence import FEATURES, Calibration
    from core.datatypes import Candidate

    cal = Calibration(
        (4.9, -5.0, 0.0, 0.0, -0.3, -0.3, -0.1, 2.0) + (0.0,) * (len(FEATURES) - 8),
        4.6,
        lone=(0.2, 0.8),
    )
    best = Candidate(
        caption="a cup of coffee on a table", score=-0.6, min_token_logp=-1.6, blank_score=-3.8
    )
    typical = [
        best,
        Candidate(
            caption="a cup of coffee on a wooden table",
            score=-0.8,
            min_token_logp=-1.6,
            blank_score=-3.9,
        ),
    ]
    assert cal.confidence([best]) == pytest.approx(cal.confidence(typical), abs=0.02)
    assert cal.confidence([best]) > 0.5


def test_confidence_features_see_beams_that_disagree() -> None:
    from core.confidence import confidence_features
    from core.datatypes import Candidate

    agree = [
        Candidate(caption="a cat on a sofa", score=-0.5, min_token_logp=-1.0),
        Candidate(caption="a cat on a bed", score=-0.6, min_token_logp=-1.0),
    ]
    wander = [
        Candidate(caption="a cat on a sofa", score=-0.5, min_token_logp=-1.0),
        Candidate(caption="two men ride bikes", score=-0.6, min_token_logp=-1.0),
    ]
    fa, fw = confidence_features(agree), confidence_features(wander)
    assert fa[:4] == fw[:4] == (-0.5, pytest.approx(0.1), -1.0, 5.0)
    assert fa[4] == pytest.approx(3 / 4) and fw[4] == 0.0  # "a", "cat", "on" of a, cat, on, sofa
    assert confidence_features(
        [
            Candidate(
                caption="a dog",
                score=-0.3,
                min_token_logp=-0.4,
                blank_score=-2.5,
                max_entropy=1.5,
                inactive_channels=0.4,
            )
        ]
    )[1:] == (
        2.0,
        -0.4,
        2.0,
        1.0,
        -2.5,
        1.5,
        0.4,
        0.0,  # no datastore: no agreement with the neighbours
        0.0,
        0.0,
        0.0,
        0.0,  # no matcher: no match
    )


def test_confidence_features_carry_the_neighbours_agreement() -> None:
    """Issue 21: the caption's agreement with the nearest training photos' captions, their
    similarity, how much better another candidate agrees, and log(1 + agreement)."""
    from core.confidence import FEATURES, confidence_features
    from core.datatypes import Candidate

    cands = [
        Candidate(
            caption="a cat on a sofa",
            score=-0.5,
            min_token_logp=-1.0,
            consensus=0.5,
            neighbour_similarity=0.7,
        ),
        Candidate(
            caption="a dog on a sofa",
            score=-0.6,
            min_token_logp=-1.0,
            consensus=1.25,
            neighbour_similarity=0.7,
        ),
        Candidate(
            caption="a cat on a bed",
            score=-0.7,
            min_token_logp=-1.0,
            consensus=0.25,
            neighbour_similarity=0.7,
        ),
    ]
    f = dict(zip(FEATURES, confidence_features(cands), strict=True))
    assert f["consensus"] == 0.5 and f["neighbour_similarity"] == 0.7
    assert f["consensus_gap"] == pytest.approx(0.75)
    assert f["log_consensus"] == pytest.approx(math.log(1.5))
    alone = dict(zip(FEATURES, confidence_features(cands[1:2]), strict=True))
    assert alone["consensus_gap"] == 0.0 and alone["consensus"] == 1.25


def test_blank_score_is_the_captions_log_probability_for_a_blank_image(captioner) -> None:
    """The blank score of each candidate equals a direct teacher-forced computation."""
    images = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    model, vocab = captioner.model, captioner.vocab
    for cands in captioner.caption_tensors(images, CaptionSettings(beam_size=3, n_candidates=3)):
        for c in cands:
            seq = [vocab.start_id] + [vocab.stoi[w] for w in c.caption.split()] + [vocab.end_id]
            blank = model.encode_features(torch.zeros(1, 49, 1280))
            with torch.inference_mode():
                logp = torch.log_softmax(model.decode(torch.tensor([seq[:-1]]), blank)[0], -1)
            want = float(logp[torch.arange(len(seq) - 1), torch.tensor(seq[1:])].mean())
            assert c.blank_score == pytest.approx(want, abs=1e-4)


def test_max_entropy_is_the_highest_next_word_entropy_along_the_caption(captioner) -> None:
    """Each candidate's max_entropy equals a teacher-forced computation on the same photo."""
    images = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    model, vocab = captioner.model, captioner.vocab
    memory = captioner.encode(images)
    results = captioner.beam_search(memory, CaptionSettings(beam_size=3, n_candidates=3))
    prefix = vocab.prefix(captioner.style or model.cfg.style)
    for i, cands in enumerate(results):
        for c in cands:
            seq = prefix + [vocab.stoi[w] for w in c.caption.split()] + [vocab.end_id]
            with torch.inference_mode():
                logits = model.decode(torch.tensor([seq[:-1]]), memory[i : i + 1])[0]
            logp = torch.log_softmax(logits.float(), -1)[len(prefix) - 1 :]
            want = float((-(logp.exp() * logp).sum(-1)).max())
            assert c.max_entropy > 0
            assert c.max_entropy == pytest.approx(want, abs=1e-3)


def test_inactive_channels_is_the_share_of_encoder_channels_off_over_the_photo(
    captioner,
) -> None:
    from core.images import normalize_batch

    images = torch.randint(0, 256, (3, 3, 224, 224), dtype=torch.uint8)
    images[2] = 0  # a black photo
    results = captioner.caption_tensors(images, CaptionSettings(beam_size=2, n_candidates=2))
    with torch.inference_mode():
        feats = captioner.model.backbone_features(normalize_batch(images)).float()
    want = (feats.mean((2, 3)) < 0).float().mean(1)
    for cands, w in zip(results, want.tolist(), strict=True):
        assert cands and all(c.inactive_channels == pytest.approx(w, abs=0.01) for c in cands)
    assert 0.0 < want.min() and want.max() < 1.0


def test_device_description_reads_right_for_one_thread() -> None:
    from core.devices import describe_device

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert describe_device(torch.device("cpu")) == "CPU (1 thread)"
        torch.set_num_threads(2)
        assert describe_device(torch.device("cpu")) == "CPU (2 threads)"
    finally:
        torch.set_num_threads(before)


def test_a_model_that_copies_tag_words_captions_in_the_app(tiny_vocab, tmp_path: Path) -> None:
    """Issue 20's copy distribution: the Captioner hands such a model its tag words (an
    assertion inside the model stopped every caption before). Every ImageNet class maps to
    "dog" or "ball" and the copy gate is open, so each word of the caption is one of them."""
    from core.checkpoint import save_checkpoint
    from core.model import CaptionModel
    from tests.conftest import tiny_config

    torch.manual_seed(0)
    model = CaptionModel(tiny_config(tiny_vocab, n_tags=2, tag_copy=True)).eval()
    dog, ball = tiny_vocab.stoi["dog"], tiny_vocab.stoi["ball"]
    with torch.no_grad():
        model.tag_words.copy_(torch.tensor([dog, ball] * 500))
        model.copy_gate.bias.fill_(30.0)  # everything is copied
    weights = tmp_path / "copying.safetensors"
    save_checkpoint(weights, model, tiny_vocab, {"data": "random weights for tests"})
    photo = tmp_path / "photo.jpg"
    textured_image(320, 240, seed=3).save(photo)
    (result,) = Captioner(weights=weights, device="cpu").caption_paths([photo], CaptionSettings())
    assert result.ok, result.error
    assert result.caption and set(result.caption.split()) <= {"dog", "ball"}
