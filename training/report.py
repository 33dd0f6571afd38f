"""The training report: loss and dev metrics per epoch as a PNG, final numbers as JSON."""

from __future__ import annotations

import json
from pathlib import Path


def _scst_cider(h: dict) -> float:
    """The (mean) dev CIDEr-D of an SCST history entry, old (one split) or new layout."""
    return h["mean"]["CIDEr"] if "mean" in h else h["CIDEr"]


def write_report(run: Path, out: Path | None = None) -> Path:
    """Reads RUN/history.json (and scst_history.json if present); writes report.png/.json."""
    # Imported here: matplotlib is a training-only dependency.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = json.loads((run / "history.json").read_text())
    scst_file = run / "scst_history.json"
    scst = json.loads(scst_file.read_text()) if scst_file.exists() else None
    out = out or run / "report.png"
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], marker="o")
    ax1.set(xlabel="epoch", ylabel="training loss (label-smoothed CE)", title="Loss")
    evald = [h for h in history if "dev_CIDEr" in h]
    for key, label in (
        ("dev_CIDEr", "CIDEr-D"),
        ("dev_Bleu_4", "BLEU-4"),
        ("dev_ROUGE_L", "ROUGE-L"),
    ):
        if evald and key in evald[0]:  # mixed training keeps only the mean CIDEr-D unprefixed
            ax2.plot([h["epoch"] for h in evald], [h[key] for h in evald], marker="o", label=label)
    splits = sorted(
        k[4:-6] for k in (evald[0] if evald else {}) if k.endswith("_CIDEr") and k != "dev_CIDEr"
    )
    for split in splits:  # mixed training: each dev split's CIDEr-D beside their mean
        key = f"dev_{split}_CIDEr"
        ax2.plot(
            [h["epoch"] for h in evald],
            [h[key] for h in evald],
            ls="--",
            marker=".",
            label=f"CIDEr-D, {split} dev",
        )
    if scst and scst["history"]:
        last = epochs[-1]
        best = max(scst["history"], key=_scst_cider)
        ax2.scatter(
            [last + 0.5], [_scst_cider(best)], marker="*", s=150, c="red", label="after SCST"
        )
    ax2.set(xlabel="epoch", ylabel="dev score (beam 3)", title="Dev metrics")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    best_ce = max(evald, key=lambda h: h["dev_CIDEr"]) if evald else None
    summary = {
        "epochs": len(history),
        "train_seconds": sum(h.get("epoch_seconds", 0) for h in history),
        "best_cross_entropy_epoch": best_ce,
        "scst": scst,
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    return out
