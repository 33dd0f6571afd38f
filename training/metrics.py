"""Scoring captions with the official coco-caption metrics (pycocoevalcap, PTB tokenizer)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

METRIC_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def score_captions(
    references: Mapping[str, Sequence[str]],
    hypotheses: Mapping[str, str],
    meteor: bool = True,
    per_photo_cider: dict[str, float] | None = None,
) -> dict[str, float]:
    """All photos scored in one call: raw references (five per photo) vs one caption each.

    CIDEr here is coco-caption's CIDEr-D. METEOR needs Java; pass meteor=False to skip it.
    per_photo_cider, when given, is filled with each photo's own CIDEr-D.
    """
    # Imported here: pycocoevalcap is a training/test dependency, not one of the app's.
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    ids = sorted(hypotheses)
    assert ids and set(ids) <= set(references), "every scored photo needs references"
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": c} for c in references[i]] for i in ids})
    res = tok.tokenize({i: [{"caption": hypotheses[i] or "a"}] for i in ids})
    scores: dict[str, float] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n, b in enumerate(bleu, 1):
        scores[f"Bleu_{n}"] = float(b)
    if meteor:
        m = Meteor()
        try:
            scores["METEOR"], _ = m.compute_score(gts, res)
        finally:
            m.close() if hasattr(m, "close") else None
        scores["METEOR"] = float(scores["METEOR"])
    scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    cider, each = Cider().compute_score(gts, res)
    scores["CIDEr"] = float(cider)
    if per_photo_cider is not None:
        per_photo_cider.update(zip(gts.keys(), (float(x) for x in each), strict=True))
    return scores


def auroc(positive: Sequence[bool], score: Sequence[float]) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative
    (ties count half). NaN when one of the classes is empty."""
    import numpy as np

    pos = np.asarray(positive, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = s.argsort(kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # average ranks of ties
        tie = s == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
