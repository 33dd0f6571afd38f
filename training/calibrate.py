"""Fitting the confidence calibration on the dev splits and writing it into the model file."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from core.checkpoint import load_checkpoint, save_checkpoint
from core.confidence import FEATURES, Calibration
from training.metrics import auroc

log = logging.getLogger(__name__)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 50) -> np.ndarray:
    """Weights (bias last) of an L2-regularised logistic regression, by Newton's method."""
    X = np.hstack([x, np.ones((len(x), 1))])  # (N, F+1)
    w = np.zeros(X.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(X @ w, -40, 40)))
        grad = X.T @ (p - y) + l2 * np.r_[w[:-1], 0]
        hess = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x @ w[:-1] + w[-1], -40, 40)))


def cross_validated(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each photo's confidence from a calibration fitted without it (k-fold)."""
    fold = np.random.default_rng(seed).permutation(len(x)) % folds
    out = np.zeros(len(x))
    for k in range(folds):
        w = fit_logistic(x[fold != k], y[fold != k])
        out[fold == k] = _predict(w, x[fold == k])
    return out


def reliability(conf: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict]:
    """Per confidence bin: photos, mean confidence, share of good captions."""
    rows = []
    for lo in np.linspace(0, 1, bins, endpoint=False):
        m = (conf >= lo) & (conf < lo + 1 / bins + (1e-9 if lo + 1 / bins >= 1 else 0))
        if m.any():
            rows.append(
                {
                    "from": round(float(lo), 2),
                    "photos": int(m.sum()),
                    "mean_confidence": float(conf[m].mean()),
                    "good_share": float(y[m].mean()),
                }
            )
    return rows


def calibrate(
    examples: dict[str, dict[str, dict]], threshold: float = 0.2
) -> tuple[Calibration, dict]:
    """Fit on every split's photos together; report AUROC per split (cross-validated)."""
    names, x, y, split_of = [], [], [], []
    for split, made in examples.items():
        for n, m in made.items():
            names.append(n)
            # Examples written before later FEATURES were added lack them: they read as 0
            # (and get weight 0), as Calibration.from_dict reads an older calibration.
            x.append(list(m["features"]) + [0.0] * (len(FEATURES) - len(m["features"])))
            y.append(m["cider"] >= threshold)
            split_of.append(split)
    X, Y, S = np.array(x, dtype=np.float64), np.array(y, dtype=np.float64), np.array(split_of)
    w = fit_logistic(X, Y)
    # Beam search gives every photo a margin and an agreement; for greedy decoding's lone
    # caption the calibration assumes their means, not a value it never saw.
    i_margin, i_agree = FEATURES.index("margin"), FEATURES.index("agreement")
    lone = (float(X[:, i_margin].mean()), float(X[:, i_agree].mean()))
    cal = Calibration(tuple(float(v) for v in w[:-1]), float(w[-1]), threshold, lone)
    cv = cross_validated(X, Y)
    fitted = _predict(w, X)
    report: dict = {"threshold_cider": threshold, "features": list(FEATURES), "splits": {}}
    for split in examples:
        m = S == split
        report["splits"][split] = {
            "photos": int(m.sum()),
            "poor_share": float(1 - Y[m].mean()),
            "auroc_cross_validated": auroc(Y[m].astype(bool), cv[m]),
            "auroc_fitted": auroc(Y[m].astype(bool), fitted[m]),
            "auroc_score_alone": auroc(Y[m].astype(bool), X[m, 0]),
        }
    report["reliability"] = reliability(cv, Y)
    report["calibration"] = cal.to_dict()
    return cal, report


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["reliability"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", label="perfectly calibrated")
    ax.plot(
        [r["mean_confidence"] for r in rows],
        [r["good_share"] for r in rows],
        marker="o",
        label="PhotoScribe (dev splits, cross-validated)",
    )
    for r in rows:
        ax.annotate(
            str(r["photos"]),
            (r["mean_confidence"], r["good_share"]),
            fontsize=7,
            xytext=(3, -10),
            textcoords="offset points",
        )
    aucs = ", ".join(f"{k} {v['auroc_cross_validated']:.2f}" for k, v in report["splits"].items())
    ax.set(
        xlabel="confidence",
        ylabel=f"share of captions with CIDEr-D >= {report['threshold_cider']}",
        title=f"Confidence calibration (AUROC: {aucs})",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def run_calibrate(args: argparse.Namespace) -> int:
    examples = json.loads(args.examples.read_text())
    cal, report = calibrate(examples, args.threshold)
    ckpt = load_checkpoint(args.weights)
    model = ckpt.build_model()
    provenance = {
        **ckpt.provenance,
        "confidence": {
            **cal.to_dict(),
            "auroc": {k: v["auroc_cross_validated"] for k, v in report["splits"].items()},
        },
    }
    dtype = next(t.dtype for t in ckpt.state_dict.values() if t.is_floating_point())
    save_checkpoint(args.out, model, ckpt.vocab, provenance, dtype=dtype, extra=ckpt.extra)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, args.report.with_suffix(".png"))
    print(json.dumps(report["splits"], indent=1))
    return 0
