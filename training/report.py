"""The training report: loss and dev metrics per epoch as a PNG, final numbers as JSON."""

from __future__ import annotations

import json
from pathlib import Path


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
        ax2.plot([h["epoch"] for h in evald], [h[key] for h in evald], marker="o", label=label)
    if scst and scst["history"]:
        last = epochs[-1]
        best = max(scst["history"], key=lambda h: h["CIDEr"])
        ax2.scatter([last + 0.5], [best["CIDEr"]], marker="*", s=150, c="red", label="after SCST")
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
