"""Caption normalisation and the vocabulary."""

from __future__ import annotations

from core.vocab import (
    END,
    MAX_TOKENS,
    PAD,
    SPECIALS,
    START,
    UNK,
    Vocab,
    normalize_caption,
    tokenize,
)


def test_normalise_lowercases_strips_punctuation_and_collapses_space() -> None:
    assert normalize_caption("  A Dog,   runs!  On the beach .") == "a dog runs on the beach"


def test_hyphenated_words_stay_whole_like_the_ptb_tokenizer() -> None:
    assert tokenize("A boy in a T-shirt.") == ["a", "boy", "in", "a", "t-shirt"]


def test_possessive_is_split_off() -> None:
    assert tokenize("The dog's ball") == ["the", "dog", "'s", "ball"]
    assert tokenize("the dog 's ball") == ["the", "dog", "'s", "ball"]


def test_lone_dashes_and_quotes_are_dropped() -> None:
    assert tokenize('a man -- "smiling"') == ["a", "man", "smiling"]


def test_specials_come_first() -> None:
    v = Vocab.build(["a dog", "a cat"], min_count=1)
    assert v.itos[:4] == SPECIALS == (PAD, START, END, UNK)
    assert v.itos[4] == "a"  # most frequent first


def test_min_count_maps_rare_words_to_unk() -> None:
    v = Vocab.build(["a dog", "a dog", "a cat"], min_count=2)
    assert "cat" not in v.stoi
    ids = v.encode("a cat")
    assert ids == [v.start_id, v.stoi["a"], v.unk_id, v.end_id]
    assert v.decode(ids) == "a <unk>"


def test_encode_caps_length_including_start_and_end() -> None:
    v = Vocab.build(["word"], min_count=1)
    ids = v.encode(" ".join(["word"] * 100))
    assert len(ids) == MAX_TOKENS
    assert ids[0] == v.start_id and ids[-1] == v.end_id


def test_decode_stops_at_end_and_skips_pad() -> None:
    v = Vocab.build(["a dog runs"], min_count=1)
    ids = [v.start_id, v.stoi["a"], v.pad_id, v.stoi["dog"], v.end_id, v.stoi["runs"]]
    assert v.decode(ids) == "a dog"


def test_style_tokens_follow_start_and_never_reach_the_caption() -> None:
    v = Vocab.build(["a dog runs", "a cat sits"], min_count=1, styles=["coco", "flickr8k"])
    assert v.styles == ("coco", "flickr8k")
    ids = v.encode("A dog runs.", style="coco")
    assert ids[:2] == [v.start_id, v.stoi["<style:coco>"]] and ids[-1] == v.end_id
    assert v.decode(ids) == "a dog runs"
    assert v.encode("a dog runs") == [v.start_id, *ids[2:]]
    long = v.encode(" ".join(["dog"] * 40), style="coco")
    assert len(long) == MAX_TOKENS and long[-1] == v.end_id


def test_unknown_style_is_refused() -> None:
    import pytest

    v = Vocab.build(["a dog"], min_count=1, styles=["coco"])
    with pytest.raises(ValueError, match="no caption style"):
        v.prefix("cc3m")
    assert v.prefix(None) == [v.start_id] and v.prefix("") == [v.start_id]


def test_not_words_are_the_specials_and_styles_a_caption_never_holds() -> None:
    v = Vocab.build(["a dog"], min_count=1, styles=["coco", "cc3m"])
    assert sorted(v.not_words) == sorted(
        [v.pad_id, v.start_id, v.unk_id, v.stoi["<style:coco>"], v.stoi["<style:cc3m>"]]
    )
    assert v.end_id not in v.not_words and v.stoi["dog"] not in v.not_words
