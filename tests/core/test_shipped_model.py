"""What the shipped caption model says about the app's own sample photos (a regression guard)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.datatypes import CHECK_BELOW, DEFAULT_WEIGHTS, CaptionSettings
from core.inference import Captioner

SAMPLES = Path(__file__).resolve().parents[2] / "desktop" / "resources" / "samples"

# What naming each sample photo's subject means: any of these words or phrases.
SUBJECTS = {
    "astronaut.jpg": ("astronaut", "space suit", "spacesuit"),
    "beach.jpg": ("beach", "palm tree", "palm trees", "ocean", "sea"),
    "burger.jpg": ("burger", "hamburger", "sandwich", "fries", "food", "meal"),
    "chelsea.jpg": ("cat", "cats", "kitten"),
    "taxis.jpg": ("taxi", "taxis", "cab", "cabs", "car", "cars"),
    "teddy.jpg": ("child", "boy", "girl", "baby", "toddler", "kid"),
    "friends.jpg": ("people", "friends", "men", "women", "family"),
    "bedroom.jpg": ("bed", "beds", "bedroom"),
}
# Where the subject alone is not the picture, what the caption must name as well: people at a
# table, not people anywhere.
ALSO = {"friends.jpg": ("table", "tables")}
# The samples the shipped model names under each precision, with a margin: every one of the
# beam's three candidates names the subject, so rounding cannot flip the caption to another
# subject. In fp32 (the default) the numerics are the same on every CPU to about 1e-6; bf16
# kernels round differently on AMX and on AVX512-BF16 (v3 called the cat "a man is looking at
# the camera" on an AMD EPYC), so under bf16 only the samples named with the largest margins
# (confidence 0.7 and more, every candidate naming the subject on AMX) are asserted.
NAMED = {
    "fp32": {"chelsea.jpg", "taxis.jpg", "friends.jpg", "bedroom.jpg"},
    "bf16": {"taxis.jpg", "friends.jpg", "bedroom.jpg"},
}


def offered_precisions() -> list[str]:
    """fp32 everywhere; bf16 where the CPU has it natively ("auto" is one of the two)."""
    from core.devices import cpu_supports_bf16

    return ["fp32", "bf16"] if cpu_supports_bf16() else ["fp32"]


def names(caption: str, phrases: tuple[str, ...]) -> bool:
    words = " ".join(re.findall(r"[a-z]+", caption.lower()))
    return any(re.search(rf"\b{re.escape(p)}\b", words) for p in phrases)


def names_subject(caption: str, name: str) -> bool:
    return names(caption, SUBJECTS[name]) and names(caption, ALSO.get(name, SUBJECTS[name]))


def test_naming_matches_whole_words_and_phrases() -> None:
    assert names("A cat laying on a blanket.", SUBJECTS["chelsea.jpg"])
    assert not names("a man holding a catalogue", SUBJECTS["chelsea.jpg"])
    assert names("a yellow taxi in a street", SUBJECTS["taxis.jpg"])
    assert not names("a man standing next to a carpet", SUBJECTS["taxis.jpg"])
    assert names_subject("a group of people sitting around a table", "friends.jpg")
    assert not names_subject("a group of people standing in a street", "friends.jpg")
    assert not names_subject("a dining table with a table and chairs", "friends.jpg")


@pytest.mark.skipif(
    not DEFAULT_WEIGHTS.is_file(), reason="the shipped model is not in this checkout"
)
@pytest.mark.parametrize("precision", offered_precisions())
def test_shipped_model_names_the_subject_of_the_sample_photos(precision: str) -> None:
    photos = sorted(SAMPLES.glob("*.jpg"))
    assert {p.name for p in photos} == set(SUBJECTS)
    captioner = Captioner(device="cpu", precision=precision)
    results = {r.path.name: r for r in captioner.caption_paths(photos, CaptionSettings())}
    for name in NAMED[precision]:
        result = results[name]
        assert names_subject(result.caption, name), (name, result.caption)
        assert len(result.candidates) == 3
        assert all(names_subject(c.caption, name) for c in result.candidates), result.candidates


# Samples whose caption is wrong and that the default threshold marks "Check this" (issue 21),
# with a margin: in fp32 the astronaut reads 0.58 and the burger ("a white plate with a fork")
# 0.41 against 0.65. Under bf16 the captions themselves can change from one kind of CPU to
# another, so nothing is asserted.
MARKED = {"fp32": {"astronaut.jpg", "burger.jpg"}, "bf16": set()}


@pytest.mark.skipif(
    not DEFAULT_WEIGHTS.is_file(), reason="the shipped model is not in this checkout"
)
@pytest.mark.parametrize("precision", offered_precisions())
def test_shipped_model_marks_the_wrong_captions_of_the_sample_photos(precision: str) -> None:
    captioner = Captioner(device="cpu", precision=precision)
    photos = [SAMPLES / name for name in sorted(MARKED[precision])]
    for result in captioner.caption_paths(photos, CaptionSettings()):
        assert result.ok and not names(result.caption, SUBJECTS[result.path.name])
        assert result.confidence < CHECK_BELOW - 0.03, (result.path.name, result.confidence)


# Samples whose caption is right and that the mark leaves alone, with a margin (fp32): the cat
# 0.72, the taxis 0.90, the café table 0.92, the bedroom 0.91. Before the image-text matcher's
# signal (issue 21) the cat (0.62) was marked.
UNMARKED = {"fp32": {"chelsea.jpg", "taxis.jpg", "friends.jpg", "bedroom.jpg"}, "bf16": set()}


@pytest.mark.skipif(
    not DEFAULT_WEIGHTS.is_file(), reason="the shipped model is not in this checkout"
)
@pytest.mark.parametrize("precision", offered_precisions())
def test_shipped_model_leaves_the_right_captions_of_the_sample_photos_unmarked(
    precision: str,
) -> None:
    captioner = Captioner(device="cpu", precision=precision)
    photos = [SAMPLES / name for name in sorted(UNMARKED[precision])]
    for result in captioner.caption_paths(photos, CaptionSettings()):
        assert result.ok and names(result.caption, SUBJECTS[result.path.name])
        assert result.confidence >= CHECK_BELOW + 0.03, (result.path.name, result.confidence)


@pytest.mark.skipif(
    not DEFAULT_WEIGHTS.is_file(), reason="the shipped model is not in this checkout"
)
def test_shipped_model_carries_the_review_marks_datastore_and_threshold() -> None:
    """The confidence's neighbour signals need the datastore and its match signal the
    image-text matcher; both inform the confidence only (the beam's captions are v3's), and the
    file records the threshold the app marks by."""
    from core.checkpoint import load_checkpoint
    from core.confidence import FEATURES
    from core.inference import load_calibration, load_consensus, load_matcher

    ckpt = load_checkpoint(DEFAULT_WEIGHTS)
    consensus = load_consensus(ckpt)
    assert consensus is not None and not consensus.settings.rerank
    assert len(consensus.captions) == len(consensus.index.keys) > 9000
    calibration = load_calibration(ckpt)
    assert len(calibration.weights) == len(FEATURES)
    assert any(calibration.weights[FEATURES.index(f)] != 0 for f in ("consensus", "log_consensus"))
    assert load_matcher(ckpt) is not None
    assert calibration.weights[FEATURES.index("match")] > 0  # a caption that fits reads surer
    assert ckpt.provenance["confidence"]["check_below"] == CHECK_BELOW
    assert DEFAULT_WEIGHTS.stat().st_size <= 60_000_000
