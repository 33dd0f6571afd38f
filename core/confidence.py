"""How sure the model is of a caption: its own probabilities, calibrated on the dev splits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.datatypes import Candidate

FEATURES = (
    "score",
    "margin",
    "min_token_logp",
    "words",
    "agreement",
    "blank_score",
    "max_entropy",
    "inactive_channels",
    "consensus",
    "neighbour_similarity",
    "consensus_gap",
    "log_consensus",
    "match",
)
"""What the confidence is computed from, per photo: the best caption's length-normalised
log-probability, how far it is ahead of the next different caption, the log-probability of its
least likely word, its length in words, and how much the other candidates agree with it (the
share of its words they also use: beams that wander off in different directions are a sign the
model does not know what it sees), its log-probability for a blank image (a caption the model
would write for any photo is a generic one), and the highest entropy of the next-word distribution
along it (where the model hesitated most among many words); and, of the photo itself, the share of
the image encoder's channels that stay off (a busy scene lights up many, and is harder). The last
four need the model file's datastore (core.consensus; 0 without one): the caption's CIDEr-D
agreement with the model's own captions of the nearest training photos, those photos' mean
similarity to this one, how far the best other candidate agrees better than this caption does,
and log(1 + agreement) (the agreement's effect flattens as it grows). The last needs the model
file's image-text matcher (core.matcher; 0 without one): the cosine of the caption and the photo."""

MARGIN_CAP = 2.0  # no caption counts as further ahead than this
LONE = (MARGIN_CAP, 1.0)
"""Margin and agreement of a lone candidate (greedy decoding) when the calibration does not say:
a calibration fitted on beam search instead uses their dev-split means (Calibration.lone), since
a greedy caption tells nothing about either."""


def _agreement(best: str, others: Sequence[Candidate]) -> float:
    """Mean share of the best caption's distinct words that each other candidate also uses."""
    words = set(best.split())
    if not others or not words:
        return 1.0
    return sum(len(words & set(c.caption.split())) / len(words) for c in others) / len(others)


def confidence_features(
    candidates: Sequence[Candidate], lone: tuple[float, float] = LONE
) -> tuple[float, ...]:
    """The FEATURES of a photo's candidates (best first); lone: the margin and agreement to use
    when there is only one candidate."""
    if not candidates:
        return (-10.0, 0.0, -10.0, 0.0, 0.0, -10.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    best = candidates[0]
    if len(candidates) > 1:
        margin = min(best.score - candidates[1].score, MARGIN_CAP)
        agreement = _agreement(best.caption, candidates[1:])
    else:
        margin, agreement = lone
    consensus = max(best.consensus, 0.0)
    gap = max((c.consensus for c in candidates[1:]), default=consensus) - consensus
    return (
        best.score,
        margin,
        max(best.min_token_logp, -10.0),
        float(len(best.caption.split())),
        agreement,
        max(best.blank_score, -10.0),
        min(best.max_entropy, 10.0),
        best.inactive_channels,
        consensus,
        best.neighbour_similarity,
        max(gap, 0.0),
        math.log1p(consensus),
        best.match,
    )


@dataclass(frozen=True)
class Calibration:
    """Logistic regression from FEATURES to P(caption is good), fitted on the dev splits
    ("good": per-photo CIDEr-D of at least `threshold`)."""

    weights: tuple[float, ...]
    bias: float
    threshold: float = 0.2  # the per-photo CIDEr-D that separates good from poor captions
    lone: tuple[float, float] = LONE  # margin and agreement assumed for a lone candidate

    def __post_init__(self) -> None:
        assert len(self.weights) == len(FEATURES), f"expected {len(FEATURES)} weights"

    def confidence(self, candidates: Sequence[Candidate]) -> float:
        """A number in [0, 1]: the estimated chance that the best caption is a good one."""
        z = self.bias + sum(
            w * f
            for w, f in zip(self.weights, confidence_features(candidates, self.lone), strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def to_dict(self) -> dict:
        return {
            "features": list(FEATURES),
            "weights": list(self.weights),
            "bias": self.bias,
            "threshold": self.threshold,
            "lone_candidate": list(self.lone),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        """Also reads a calibration made before later FEATURES were added (they weigh 0)."""
        names = list(data.get("features", []))
        if not names or names != list(FEATURES[: len(names)]):
            raise ValueError(f"calibration is for features {names}, not {FEATURES}")
        weights = [float(w) for w in data["weights"]]
        return cls(
            tuple(weights + [0.0] * (len(FEATURES) - len(weights))),
            float(data["bias"]),
            float(data.get("threshold", 0.2)),
            tuple(float(v) for v in data.get("lone_candidate", LONE)),  # type: ignore[arg-type]
        )


# Before a model is calibrated: the length-normalised log-probability alone, mapped so that a
# typical confident caption (-0.4 per word) reads about 0.7 and a doubtful one (-1.2) about 0.2.
UNCALIBRATED = Calibration((2.2,) + (0.0,) * (len(FEATURES) - 1), 1.7)
