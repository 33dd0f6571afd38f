"""The model card for the About box, read from a checkpoint's header without loading torch."""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open  # the Rust reader only: torch stays unloaded

log = logging.getLogger(__name__)

SCORE_NAMES = {  # the evaluation's keys as the papers write them
    "Bleu_1": "BLEU-1",
    "Bleu_2": "BLEU-2",
    "Bleu_3": "BLEU-3",
    "Bleu_4": "BLEU-4",
    "METEOR": "METEOR",
    "ROUGE_L": "ROUGE-L",
    "CIDEr": "CIDEr-D",
    "SPICE": "SPICE",
}

APP_LICENCE = "GPL-3.0-or-later"
LIBRARY_LICENCES = (  # as the installed packages declare them
    ("Qt for Python (PySide6)", "LGPL-3.0-only"),
    ("PyTorch", "BSD-3-Clause and others"),
    ("Pillow", "MIT-CMU"),
    ("python-exiv2", "GPL-3.0-or-later"),
    ("pi-heif", "BSD-3-Clause (libheif: LGPL-3.0)"),
    ("pillow-jxl-plugin", "GPL-3.0-or-later"),
    ("platformdirs", "MIT"),
)


@dataclass(frozen=True)
class ModelCard:
    path: Path
    provenance: dict[str, Any] = field(default_factory=dict)
    size_bytes: int = 0
    problem: str | None = None  # why the card could not be read


def read_model_card(path: Path) -> ModelCard:
    """The provenance stored in a PhotoScribe .safetensors file (its training data and scores)."""
    try:
        size = path.stat().st_size
        with safe_open(str(path), "numpy") as file:  # the header only; no tensor is read
            metadata = file.metadata() or {}
        provenance = json.loads(metadata.get("provenance", "{}"))
        if not isinstance(provenance, dict):
            raise ValueError("the model description is damaged")
    except FileNotFoundError:
        return ModelCard(path, problem="no model file is installed")
    except (OSError, ValueError, SafetensorError) as error:
        log.warning("Could not read the model card of %s: %s", path, error)
        return ModelCard(path, problem=f"the model file could not be read ({error})")
    return ModelCard(path, provenance, size)


def _scores_html(scores: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(SCORE_NAMES.get(str(name), str(name)))}</td>"
        f"<td align='right'>{_number(value)}</td></tr>"
        for name, value in scores.items()
    )
    return f"<table cellspacing='0' cellpadding='2'>{rows}</table>"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def model_card_html(card: ModelCard | None, device: str | None) -> str:
    """The model part of the About box as simple HTML."""
    parts = ["<h3>Caption model</h3>"]
    if card is None:
        parts.append("<p>Reading the model file…</p>")
    elif card.problem is not None:
        parts.append(
            f"<p><b>{html.escape(card.problem)}.</b><br>File: {html.escape(str(card.path))}</p>"
        )
    else:
        prov = card.provenance
        parts.append(
            f"<p>File: {html.escape(str(card.path))} ({card.size_bytes / 1e6:.1f} MB)</p><ul>"
        )
        labels = {
            "data": "Training data (and its licence)",
            "encoder": "Image encoder (and its licence)",
            "stage": "Training stage",
            "epoch": "Epoch",
            "beam": "Beam size used for the scores",
        }
        for key, label in labels.items():
            if key in prov:
                parts.append(f"<li>{label}: {html.escape(str(prov[key]))}</li>")
        parts.append("</ul>")
        scores = prov.get("dev") or prov.get("test")
        if isinstance(scores, dict) and scores:
            which = "development" if "dev" in prov else "test"
            parts.append(f"<p>Scores on the {which} split:</p>{_scores_html(scores)}")
    parts.append(
        f"<p>Device: {html.escape(device) if device else 'chosen when the model first loads'}</p>"
    )
    return "".join(parts)


def about_html(version: str, card: ModelCard | None, device: str | None) -> str:
    libraries = "".join(
        f"<li>{html.escape(name)}: {html.escape(licence)}</li>"
        for name, licence in LIBRARY_LICENCES
    )
    return (
        f"<h2>PhotoScribe {html.escape(version)}</h2>"
        "<p>Offline captions for the photos on your own computer. Nothing leaves it.</p>"
        f"{model_card_html(card, device)}"
        f"<h3>Licences</h3><p>PhotoScribe: {APP_LICENCE}.</p><ul>{libraries}</ul>"
        "<p>Sample photos: public domain and CC0 images from scikit-image "
        "(see the README beside them).</p>"
    )
