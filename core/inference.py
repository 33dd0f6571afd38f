"""The Captioner: loads a checkpoint once and captions photos in batches with beam search."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from core.batches import Batches, Captioned
from core.beam import beam_search
from core.checkpoint import Checkpoint, load_checkpoint
from core.confidence import UNCALIBRATED, Calibration
from core.consensus import PREFIX as CONSENSUS_PREFIX
from core.consensus import Consensus, pooled_features, settings_from_provenance
from core.datatypes import (
    Candidate,
    CaptionResult,
    CaptionSettings,
    Precision,
    default_precision,
    default_weights_path,
)
from core.devices import describe_device, encoder_dtype, pick_device
from core.errors import NoModelError
from core.images import normalize_batch
from core.matcher import PREFIX as MATCHER_PREFIX
from core.matcher import Matcher, config_from_provenance
from core.model import fold_batch_norms
from core.vocab import Vocab

log = logging.getLogger(__name__)


# The convolutional encoder is fastest per photo in small batches on a CPU (cache-sized), beam
# search in large ones: each step is a few small matrix products, cheaper per row when tall.
ENCODER_BATCH = 8


def load_calibration(checkpoint: Checkpoint) -> Calibration:
    """The checkpoint's confidence calibration, or a rough stand-in when it has none."""
    data = checkpoint.provenance.get("confidence")
    if isinstance(data, dict) and "weights" in data:
        try:
            return Calibration.from_dict(data)
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            log.warning("%s: confidence calibration ignored (%s)", checkpoint.path, exc)
    return UNCALIBRATED


def load_consensus(checkpoint: Checkpoint) -> Consensus | None:
    """The checkpoint's consensus reranker (its datastore of training photos' reduced features
    and the model's own captions of them), or None when the file has none."""
    settings = settings_from_provenance(checkpoint.provenance)
    if settings is None or not any(k.startswith(CONSENSUS_PREFIX) for k in checkpoint.extra):
        return None
    vocab = checkpoint.vocab
    try:
        return Consensus.from_tensors(checkpoint.extra, vocab.itos, vocab.pad_id, settings)
    except (KeyError, IndexError, ValueError, RuntimeError) as exc:
        log.warning("%s: consensus datastore ignored (%s)", checkpoint.path, exc)
        return None


def load_matcher(checkpoint: Checkpoint) -> Matcher | None:
    """The checkpoint's image-text matcher (a review-mark signal), or None when it has none."""
    cfg = config_from_provenance(checkpoint.provenance)
    if cfg is None or not any(k.startswith(MATCHER_PREFIX) for k in checkpoint.extra):
        return None
    try:
        return Matcher.from_tensors(checkpoint.extra, cfg, checkpoint.vocab.pad_id)
    except (KeyError, RuntimeError, ValueError) as exc:
        log.warning("%s: image-text matcher ignored (%s)", checkpoint.path, exc)
        return None


def with_matches(
    matcher: Matcher, vocab: Vocab, candidates: list[list[Candidate]], pooled: torch.Tensor
) -> list[list[Candidate]]:
    """Each candidate with `match` filled in: its cosine with its photo (rows of pooled)."""
    sims = matcher.similarities(pooled, [[c.caption for c in cs] for cs in candidates], vocab)
    return [
        [replace(c, match=s) for c, s in zip(cs, ss, strict=True)]
        for cs, ss in zip(candidates, sims, strict=True)
    ]


class Captioner:
    """Owns the model on one device; thread-compatible but not to be shared between threads."""

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str = "auto",
        checkpoint: Checkpoint | None = None,
        decode_workers: int = 2,
        precision: Precision | None = None,
    ) -> None:
        """precision: the image encoder's arithmetic (core.datatypes.Precision); None takes
        the default ("fp32", or $PHOTOSCRIBE_PRECISION)."""
        if checkpoint is None:
            path = Path(weights) if weights is not None else default_weights_path()
            if weights is None and not path.is_file():
                raise NoModelError(
                    path,
                    "no trained caption model is installed; reinstall PhotoScribe, or train "
                    'one (see README, "Train your own model")',
                    cli_hint="(--weights FILE uses another model file.)",
                )
            checkpoint = load_checkpoint(path)
        self.checkpoint = checkpoint
        self.vocab = checkpoint.vocab
        # Beam candidates reranked by agreement with what the nearest training photos say
        # (core.consensus), when the model file carries a datastore.
        self.consensus = load_consensus(checkpoint)
        # How well each candidate fits the photo (core.matcher), when the model file has one.
        self.matcher = load_matcher(checkpoint)
        self.device = pick_device(device)
        self.model = checkpoint.build_model().to(self.device)
        if self.model.backbone is None:
            raise NoModelError(checkpoint.path, "this model file has no image encoder")
        # The encoder's batch norms fold into its convolutions (about half its fp32 time).
        fold_batch_norms(self.model.backbone)
        # Reduced precision, when chosen, for the convolutional encoder only; the decoder's
        # log-probabilities stay fp32 so beam search ranks exactly as in fp32.
        self.precision: Precision = default_precision() if precision is None else precision
        self.backbone_dtype = encoder_dtype(self.device, self.precision)
        if self.device.type in ("cpu", "cuda"):
            self.model.backbone.to(memory_format=torch.channels_last)
        self.decode_workers = decode_workers
        self.style: str | None = None  # caption style asked for; None: the model's default
        self.calibration = load_calibration(checkpoint)
        log.info(
            "captioner on %s, precision %s (encoder %s)",
            describe_device(self.device),
            self.precision,
            self.backbone_dtype,
        )

    @property
    def device_name(self) -> str:
        return describe_device(self.device)

    # ---------------------------------------------------------------- tensors -> captions

    def _autocast(self):
        if self.backbone_dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.backbone_dtype)

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) uint8 -> (B, 49, d_model) fp32 memory, ENCODER_BATCH at a time."""
        return self.encode_with_stats(images)[0]

    @torch.inference_mode()
    def encode_with_stats(self, images: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
        """The memory, and per photo the share of the encoder's channels that stay off (their
        mean activation over the photo is below 0; a confidence signal)."""
        memory, inactive, _ = self._encode(images)
        return memory, inactive

    def _encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[float], torch.Tensor]:
        """encode_with_stats, and the (B, 1280) pooled encoder features (the reranker's key)."""
        out, inactive, pooled = [], [], []
        for lo in range(0, images.shape[0], ENCODER_BATCH):
            x = normalize_batch(images[lo : lo + ENCODER_BATCH].to(self.device, non_blocking=True))
            if self.device.type in ("cpu", "cuda"):
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                feats = self.model.backbone_features(x)  # (b, 1280, 7, 7)
            feats = feats.float()
            mean = pooled_features(feats)  # (b, 1280)
            inactive.append((mean < 0).float().mean(1))
            pooled.append(mean)
            out.append(self.model.encode_features(feats))  # (b, 49, C)
        return torch.cat(out), torch.cat(inactive).tolist(), torch.cat(pooled)

    @torch.inference_mode()
    def caption_tensors(
        self,
        images: torch.Tensor,
        settings: CaptionSettings = CaptionSettings(),
        cancel: threading.Event | None = None,
    ) -> list[list[Candidate]]:
        """(B, 3, 224, 224) uint8 -> per image, candidates best first."""
        memory, inactive, pooled = self._encode(images)
        # A model that may copy its ImageNet tag words (issue 20's experiment 1) reads them
        # from the pooled features (its tag head pools them itself); None for other models.
        words = self.model.copy_words(pooled[:, None, :])
        pooled = pooled.cpu()
        # With reranking, every beam candidate is reranked and the best n_candidates kept;
        # otherwise the neighbours' agreement informs the confidence only (the order stays).
        rerank = (
            self.consensus is not None
            and self.consensus.settings.rerank
            and settings.beam_size >= 2
        )
        search = replace(settings, n_candidates=settings.beam_size) if rerank else settings
        found = self.beam_search(memory, search, cancel, words)
        if self.consensus is not None:
            found = self.consensus.rerank(found, pooled)
        if rerank:
            keep = max(1, min(settings.n_candidates, settings.beam_size))
            found = [cands[:keep] for cands in found]
        if self.matcher is not None:
            found = with_matches(self.matcher, self.vocab, found, pooled)
        return [
            [replace(c, inactive_channels=off) for c in cands]
            for cands, off in zip(found, inactive, strict=True)
        ]

    def caption_batch(
        self,
        images: torch.Tensor,
        settings: CaptionSettings = CaptionSettings(),
        cancel: threading.Event | None = None,
    ) -> list[Captioned]:
        """(B, 3, 224, 224) uint8 -> per image, its candidates best first and the confidence
        of the best: the one call core.batches.Batches makes of the model."""
        return [
            (tuple(found), self.confidence(found))
            for found in self.caption_tensors(images, settings, cancel)
        ]

    def beam_search(
        self,
        memory: torch.Tensor,
        settings: CaptionSettings = CaptionSettings(),
        cancel: threading.Event | None = None,
        tag_words: torch.Tensor | None = None,
    ) -> list[list[Candidate]]:
        """tag_words: (B, k), only for a model that copies tag words (CaptionModel.copy_words)."""
        return beam_search(self.model, self.vocab, memory, settings, cancel, self.style, tag_words)

    def confidence(self, candidates: list[Candidate]) -> float:
        """How sure the model is of the best of these candidates, in [0, 1]."""
        return self.calibration.confidence(candidates)

    # ---------------------------------------------------------------- files -> captions

    def caption_paths(
        self,
        paths: Iterable[str | Path],
        settings: CaptionSettings = CaptionSettings(),
        cancel: threading.Event | None = None,
    ) -> Iterator[CaptionResult]:
        """Caption photos a batch at a time, decoding ahead on a thread pool.

        Results come in the paths' order, except that a file no decoder reads gives its error
        result when its batch is assembled, before that batch's captions. paths may be a lazy
        iterable (a folder scan still running); only a bounded window of decoded images is held
        in memory (core.batches, as in a library run). Stops quietly when cancel is set: no
        further path is taken and no further decode started.
        """
        cancel = cancel or threading.Event()
        batches: Batches[_Photo] = Batches(
            self.caption_batch, settings, cancel, device=self.device, workers=self.decode_workers
        )
        try:
            remaining = iter(paths)
            while not cancel.is_set():  # before taking another path from a scan
                try:
                    p = next(remaining)
                except StopIteration:
                    break
                batches.add(_Photo(Path(p)))
                if batches.full:  # take() gives None only once cancelled: the loop then ends
                    yield from (result for _, result in batches.take() or ())
            while batches and not cancel.is_set():
                yield from (result for _, result in batches.take() or ())
        finally:
            batches.close()

    def caption_file(
        self, path: str | Path, settings: CaptionSettings = CaptionSettings()
    ) -> CaptionResult:
        return next(iter(self.caption_paths([path], settings)))


@dataclass(frozen=True)
class _Photo:
    path: Path


def warm_up(captioner: Captioner) -> float:
    """Run one dummy batch so the first real photo is not slow; returns seconds taken."""
    t = time.perf_counter()
    captioner.caption_tensors(
        torch.zeros(1, 3, 224, 224, dtype=torch.uint8), CaptionSettings(beam_size=1)
    )
    return time.perf_counter() - t
