"""Caption text normalisation and the word vocabulary, shared by training and inference."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
MAX_TOKENS = 25  # per caption, including <start>, a style token if any, and <end>


def style_token(style: str) -> str:
    """The token after <start> that names a caption style (the set a caption came from)."""
    return f"<style:{style}>"


# Words keep inner hyphens and apostrophes ("t-shirt", "o'clock") as the PTB tokenizer used by
# the metrics does; a possessive "'s" stands alone ("dog 's"), as it does in Flickr8k's captions.
_WORD = re.compile(r"'s\b|[a-z0-9]+(?:[-'][a-z0-9]+)*")
_POSSESSIVE = re.compile(r"([a-z0-9])'s\b")


def tokenize(text: str) -> list[str]:
    """Lower-case words with punctuation stripped, e.g. 'A dog, in a T-shirt.' -> [a, dog, ...]."""
    text = _POSSESSIVE.sub(r"\1 's", text.lower().replace("\u2019", "'"))
    return _WORD.findall(text)


def normalize_caption(text: str) -> str:
    """Lower-case, punctuation stripped, whitespace collapsed."""
    return " ".join(tokenize(text))


@dataclass(frozen=True)
class Vocab:
    """Index <-> word; the four special tokens always come first."""

    itos: tuple[str, ...]

    def __post_init__(self) -> None:
        assert self.itos[: len(SPECIALS)] == SPECIALS, f"vocabulary must start with {SPECIALS}"
        assert len(set(self.itos)) == len(self.itos), "vocabulary has duplicate words"
        object.__setattr__(self, "_stoi", {w: i for i, w in enumerate(self.itos)})
        object.__setattr__(
            self, "_style_ids", frozenset(i for i, w in enumerate(self.itos) if w[:7] == "<style:")
        )

    @property
    def stoi(self) -> dict[str, int]:
        return self._stoi  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def pad_id(self) -> int:
        return self.stoi[PAD]

    @property
    def start_id(self) -> int:
        return self.stoi[START]

    @property
    def end_id(self) -> int:
        return self.stoi[END]

    @property
    def unk_id(self) -> int:
        return self.stoi[UNK]

    @property
    def styles(self) -> tuple[str, ...]:
        """The caption styles this vocabulary has a token for (e.g. "coco", "flickr8k")."""
        return tuple(self.itos[i][7:-1] for i in sorted(self._style_ids))  # type: ignore[attr-defined]

    @property
    def not_words(self) -> list[int]:
        """Ids that are never a word of a caption: <pad>, <start>, <unk> and the style tokens
        (beam search and the training sampler both rule them out)."""
        return [self.pad_id, self.start_id, self.unk_id, *sorted(self._style_ids)]  # type: ignore[attr-defined]

    def prefix(self, style: str | None = None) -> list[int]:
        """The tokens every caption starts with: <start>, then the style's token if asked for."""
        if not style:
            return [self.start_id]
        if style_token(style) not in self.stoi:
            raise ValueError(f"this vocabulary has no caption style {style!r}")
        return [self.start_id, self.stoi[style_token(style)]]

    @classmethod
    def build(
        cls, captions: Iterable[str], min_count: int = 5, styles: Sequence[str] = ()
    ) -> Vocab:
        """Style tokens, then words seen at least min_count times, most frequent first (ties
        alphabetical)."""
        counts = Counter(w for c in captions for w in tokenize(c))
        words = sorted(
            (w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls(
            SPECIALS
            + tuple(style_token(s) for s in styles)
            + tuple(w for w in words if w not in SPECIALS)
        )

    def encode(
        self, text: str, max_tokens: int = MAX_TOKENS, style: str | None = None
    ) -> list[int]:
        """<start> [style] words... <end>, truncated so the whole is at most max_tokens long."""
        prefix = self.prefix(style)
        ids = [self.stoi.get(w, self.unk_id) for w in tokenize(text)]
        return [*prefix, *ids[: max_tokens - len(prefix) - 1], self.end_id]

    def decode(self, ids: Sequence[int]) -> str:
        """Words up to the first <end>; specials other than <unk> and style tokens dropped."""
        words = []
        skip = self._style_ids | {self.pad_id, self.start_id}  # type: ignore[attr-defined]
        for i in ids:
            if i == self.end_id:
                break
            if i in skip:
                continue
            words.append(self.itos[i])
        return " ".join(words)
