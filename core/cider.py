"""CIDEr-D with document frequencies fixed on a reference corpus: the self-critical reward and the
consensus reranker's agreement (core.consensus).

It follows coco-caption's CiderScorer (n-grams 1-4, tf-idf, clipped, Gaussian length penalty
with sigma 6, x10), but the idf comes from the training references once instead of from each
scored batch, so rewards are comparable across batches.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

N = 4
SIGMA = 6.0


def ngrams(words: Sequence[str], n_max: int = N) -> Counter:
    counts: Counter = Counter()
    for n in range(1, n_max + 1):
        for i in range(len(words) - n + 1):
            counts[tuple(words[i : i + n])] += 1
    return counts


@dataclass
class _Vec:
    vec: list[dict[tuple[str, ...], float]]
    norm: list[float]
    length: int


class CiderD:
    """Scores tokenised captions against each photo's tokenised references."""

    def __init__(self, corpus_refs: Sequence[Sequence[Sequence[str]]]) -> None:
        df: Counter = Counter()
        for refs in corpus_refs:  # each n-gram once per photo; sets, not Counters (faster)
            words = [tuple(r) for r in refs]
            df.update(
                {
                    w[i : i + n]
                    for w in words
                    for n in range(1, N + 1)
                    for i in range(len(w) - n + 1)
                }
            )
        self.df = df
        self.log_n = math.log(float(len(corpus_refs)))

    def _vector(self, words: Sequence[str]) -> _Vec:
        vec: list[dict[tuple[str, ...], float]] = [{} for _ in range(N)]
        norm = [0.0] * N
        for g, tf in ngrams(words).items():
            n = len(g) - 1
            w = tf * (self.log_n - math.log(max(1.0, self.df.get(g, 0.0))))
            vec[n][g] = w
            norm[n] += w * w
        return _Vec(vec, [math.sqrt(x) for x in norm], len(words))

    def prepare_refs(self, refs: Sequence[Sequence[str]]) -> list[_Vec]:
        return [self._vector(r) for r in refs]

    def score(self, hyp: Sequence[str], refs: Sequence[_Vec]) -> float:
        h = self._vector(hyp)
        total = 0.0
        for r in refs:
            delta = h.length - r.length
            penalty = math.exp(-(delta**2) / (2 * SIGMA**2))
            val = 0.0
            for n in range(N):
                s = 0.0
                rv = r.vec[n]
                for g, w in h.vec[n].items():
                    if g in rv:
                        s += min(w, rv[g]) * rv[g]
                if h.norm[n] != 0 and r.norm[n] != 0:
                    s /= h.norm[n] * r.norm[n]
                val += s * penalty
            total += val / N
        return total / len(refs) * 10.0
