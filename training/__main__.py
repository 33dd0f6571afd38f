"""`python -m training SUBCOMMAND`: backbone, features, fit, scst, evaluate, export, report."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("training")

DEFAULT_CACHE = Path("runs/features")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=Path("../shared/flickr8k"), help="Flickr8k folder")
    p.add_argument("--backbone", type=Path, required=True, help="converted B0 (.safetensors)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="feature cache folder")


def _prepare(args: argparse.Namespace):
    """Dataset, encoder and a complete feature cache (computed or resumed as needed)."""
    from training.data import Flickr8k
    from training.features import FeatureCache, encoder_key, load_encoder

    data = Flickr8k.load(args.data)
    encoder = load_encoder(args.backbone)
    examples = list(data.train) + list(data.dev)
    cache = FeatureCache.open(args.cache, encoder_key(encoder), [e.name for e in examples])
    if not cache.complete:
        log.info("computing features for %d photos into %s", len(examples), cache.directory)
        cache.fill(encoder, {e.name: e.path for e in examples})
    return data, cache


def cmd_backbone(args: argparse.Namespace) -> int:
    from training import backbone

    return backbone.run(args)


def cmd_features(args: argparse.Namespace) -> int:
    _prepare(args)
    return 0


def _load_features(cache, names: list[str]):
    import numpy as np
    import torch

    mm = cache.memmap("r")
    rows = [cache.index[n] for n in names]
    return torch.from_numpy(np.ascontiguousarray(mm[rows]))  # (P, 2, 49, 1280) fp16


def cmd_fit(args: argparse.Namespace) -> int:
    from core.model import ModelConfig
    from core.vocab import Vocab
    from training.fit import CaptionData, TrainConfig, config_with_vocab, train

    data, cache = _prepare(args)
    args.out.mkdir(parents=True, exist_ok=True)
    vocab_file = args.out / "vocab.json"
    if vocab_file.exists():
        vocab = Vocab(tuple(json.loads(vocab_file.read_text())))
    else:
        vocab = Vocab.build((c for e in data.train for c in e.captions), min_count=args.min_count)
        vocab_file.write_text(json.dumps(list(vocab.itos)))
    log.info("vocabulary: %d words", len(vocab))
    train_names = [e.name for e in data.train]
    features = _load_features(cache, train_names)
    dev_features = _load_features(cache, [e.name for e in data.dev])[:, 0]
    train_data = CaptionData.build(
        list(data.train), vocab, {n: i for i, n in enumerate(train_names)}
    )
    model_cfg = config_with_vocab(
        ModelConfig(
            d_model=args.d_model,
            n_heads=args.heads,
            n_encoder_layers=args.encoder_layers,
            n_decoder_layers=args.decoder_layers,
            d_ff=4 * args.d_model,
            dropout=args.dropout,
        ),
        vocab,
    )
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        eval_from=args.eval_from,
        device=args.device,
    )
    provenance = {
        "data": "Flickr8k train split + unsplit photos (Hodosh et al. 2013), research use",
        "encoder": "TF-Hub efficientnet/b0/classification/1 (Apache-2.0), frozen",
        "stage": "cross-entropy",
    }
    result = train(
        model_cfg,
        cfg,
        vocab,
        features,
        train_data,
        list(data.dev),
        dev_features,
        args.out,
        resume=args.resume,
        provenance=provenance,
    )
    log.info("best dev CIDEr-D %.4f", result["best_cider"])
    return 0


def cmd_scst(args: argparse.Namespace) -> int:
    from training.scst import run_scst

    data, cache = _prepare(args)
    train_names = [e.name for e in data.train]
    features = _load_features(cache, train_names)[:, 0]
    dev_features = _load_features(cache, [e.name for e in data.dev])[:, 0]
    return run_scst(args, data, features, dev_features)


def cmd_export(args: argparse.Namespace) -> int:
    from training.export import export_weights

    export_weights(args.checkpoint, args.backbone, args.out, args.history)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import run_evaluate

    return run_evaluate(args)


def cmd_report(args: argparse.Namespace) -> int:
    from training.report import write_report

    write_report(args.run, args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("backbone", help="convert ImageNet EfficientNet-B0 from the npm package")
    from training import backbone

    backbone.add_arguments(p)
    p.set_defaults(func=cmd_backbone)

    p = sub.add_parser("features", help="cache the encoder's feature maps for every photo")
    _add_data_args(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("fit", help="cross-entropy training (DDP under torchrun)")
    _add_data_args(p)
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, history)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=80, help="captions per step (5 per photo)")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--encoder-layers", type=int, default=1)
    p.add_argument("--decoder-layers", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--eval-from", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last_state")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("scst", help="self-critical fine-tuning with a CIDEr-D reward")
    _add_data_args(p)
    p.add_argument("--init", type=Path, required=True, help="cross-entropy checkpoint")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--photos-per-step", type=int, default=32)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_scst)

    p = sub.add_parser("export", help="merge encoder + caption model into the shipped fp16 file")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--backbone", type=Path, required=True)
    p.add_argument("--history", type=Path, nargs="*", default=[], help="history/report JSON files")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="caption a split's photos and score them (pycocoevalcap)")
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--captions", type=Path, required=True, help="Flickr8k.token.txt")
    p.add_argument("--split", type=Path, required=True, help="split file of image names")
    p.add_argument("--weights", type=Path, default=None, help="default: the shipped model")
    p.add_argument("--beam", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="write the scores as JSON")
    p.add_argument("--examples", type=Path, default=None, help="write every caption as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="plot loss and dev metrics per epoch (PNG + JSON)")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, default=None)
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
