"""The Flickr8k reader and caption handling."""

from __future__ import annotations

from pathlib import Path

from core.vocab import Vocab
from training.data import Flickr8k, flip_caption, read_captions


def test_reader_splits_and_unsplit_photos(tiny_flickr: Path) -> None:
    data = Flickr8k.load(tiny_flickr)
    assert [e.name for e in data.dev] == ["1005_abc.jpg", "1006_abc.jpg"]
    assert len(data.train) == 6  # 5 in the train split + 1 photo in no split
    assert data.train[-1].name == "1007_abc.jpg"
    assert all(len(e.captions) == 5 and e.path.is_file() for e in data.train + data.dev)


def test_quirky_key_naming_no_photo_is_ignored(tiny_flickr: Path) -> None:
    caps = read_captions(tiny_flickr / "text" / "Flickr8k.token.txt")
    assert "2258277193_586949ec62.jpg.1" in caps  # read without crashing...
    data = Flickr8k.load(tiny_flickr)
    names = {e.name for e in data.train + data.dev}
    assert "2258277193_586949ec62.jpg.1" not in names  # ...but never used


def test_raw_captions_kept_for_scoring(tiny_flickr: Path) -> None:
    data = Flickr8k.load(tiny_flickr)
    assert data.train[0].captions[0] == "A dog runs on the beach ."


def test_flip_swaps_left_and_right() -> None:
    assert flip_caption("A dog on the Left, a cat to the right.") == (
        "a dog on the right a cat to the left"
    )


def test_vocabulary_from_training_captions(tiny_flickr: Path) -> None:
    data = Flickr8k.load(tiny_flickr)
    vocab = Vocab.build((c for e in data.train for c in e.captions), min_count=2)
    assert "dog" in vocab.stoi and "t-shirt" in vocab.stoi
    assert "subway" not in vocab.stoi  # only in the bad key's captions
