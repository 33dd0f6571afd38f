"""Random stand-in weights, to build and smoke-test the packaged app before the trained model exists.

    python packaging/placeholder_weights.py build/placeholder/photoscribe-b0.safetensors

The file has the shipped model's format (an EfficientNet-B0 encoder and a small caption decoder)
and says "PLACEHOLDER" in its provenance, which `photoscribe --self-test` and the About box show.
Its captions are random words. packaging/build.sh uses it only when asked to
(--placeholder-weights) and then makes no release archive.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from core.checkpoint import save_checkpoint
from core.model import CaptionModel, ModelConfig
from core.vocab import SPECIALS, Vocab

WORDS = "a dog cat man woman child runs sits on the in at beach grass red ball water street".split()
PROVENANCE = {
    "data": "PLACEHOLDER: random weights for packaging tests, not a trained model",
    "encoder": "EfficientNet-B0 architecture, random weights",
    "stage": "placeholder",
}


def make_placeholder(path: Path, seed: int = 0) -> Path:
    vocab = Vocab(SPECIALS + tuple(WORDS))
    config = ModelConfig(
        vocab_size=len(vocab),
        d_model=32,
        n_heads=2,
        n_encoder_layers=1,
        n_decoder_layers=1,
        d_ff=64,
        dropout=0.0,
        pad_id=vocab.pad_id,
    )
    torch.manual_seed(seed)
    model = CaptionModel(config).eval()
    with torch.no_grad():
        # Random weights may end every caption at once; make <end> unlikely so that the
        # self-test gets words to write (the length limit still ends each caption).
        model.token_emb.weight[vocab.end_id].mul_(0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(path, model, vocab, PROVENANCE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the .safetensors file")
    args = parser.parse_args(argv)
    print(make_placeholder(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
