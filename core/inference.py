"""The Captioner: loads a checkpoint once and captions photos in batches with beam search."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from core.batches import Batches, Captioned
from core.checkpoint import Checkpoint, load_checkpoint
from core.confidence import UNCALIBRATED, Calibration
from core.consensus import PREFIX as CONSENSUS_PREFIX
from core.consensus import Consensus, settings_from_provenance
from core.datatypes import (
    Candidate,
    CaptionResult,
    CaptionSettings,
    Precision,
    default_precision,
    default_weights_path,
)
from core.devices import describe_device, encoder_dtype, pick_device
from core.errors import Cancelled, NoModelError
from core.images import normalize_batch
from core.model import CaptionModel, DecoderCache, fold_batch_norms
from core.vocab import Vocab

log = logging.getLogger(__name__)


# The convolutional encoder is fastest per photo in small batches on a CPU (cache-sized), beam
# search in large ones: each step is a few small matrix products, cheaper per row when tall.
ENCODER_BATCH = 8


@dataclass
class _Hyp:
    tokens: list[int] = field(default_factory=list)
    logp: float = 0.0
    min_logp: float = 0.0  # of the least likely token so far
    max_entropy: float = 0.0  # of the next-token distribution, over the steps so far


@torch.inference_mode()
def beam_search(
    model: CaptionModel,
    vocab: Vocab,
    memory: torch.Tensor,
    settings: CaptionSettings = CaptionSettings(),
    cancel: threading.Event | None = None,
    style: str | None = None,
) -> list[list[Candidate]]:
    """Length-normalised beam search with a key/value cache; beam 1 is greedy decoding.

    style: the caption style token put after <start> (None: the model's own default).
    """
    device = memory.device
    k = settings.beam_size
    prefix = vocab.prefix(model.cfg.style if style is None else style)
    max_steps = min(settings.max_tokens, model.cfg.max_len) - len(prefix)
    B = memory.shape[0]
    cache: DecoderCache = model.start_cache(memory)  # one memory row serves a photo's k beams
    for t in prefix[:-1]:  # forced tokens: only the cache matters
        _, cache = model.step(torch.full((B * k,), t, dtype=torch.long, device=device), cache)
    beams: list[list[_Hyp]] = [[_Hyp()] for _ in range(B)]  # live hypotheses per image
    finished: list[list[tuple[float, _Hyp]]] = [[] for _ in range(B)]
    active = list(range(B))  # images still decoding; cache rows are active x k
    token = torch.full((B * k,), prefix[-1], dtype=torch.long, device=device)
    alpha = settings.length_penalty
    banned_t = torch.tensor(vocab.not_words, dtype=torch.long, device=device)
    for step in range(max_steps):
        if cancel is not None and cancel.is_set():
            raise Cancelled
        logp, cache = model.step(token, cache)  # (A*k, V)
        entropy = (-(logp.exp() * logp).nansum(1)).tolist()  # 0 * -inf counts 0
        logp.index_fill_(1, banned_t, -math.inf)
        if step == max_steps - 1:  # out of room: only <end> may follow
            end_only = torch.full_like(logp, -math.inf)
            end_only[:, vocab.end_id] = logp[:, vocab.end_id]
            logp = end_only
        V = logp.shape[1]
        live = torch.tensor(
            [[h.logp for h in beams[img]] + [-math.inf] * (k - len(beams[img])) for img in active],
            device=logp.device,
        )  # (A, k) running log-probabilities
        total = (live.unsqueeze(-1) + logp.view(len(active), k, V)).view(len(active), k * V)
        top_scores, top_idx = total.topk(min(2 * k, k * V), dim=1)  # (A, 2k)
        top_scores, top_idx = top_scores.tolist(), top_idx.tolist()
        next_rows: list[int] = []
        next_tokens: list[int] = []
        still_active = []
        for row, img in enumerate(active):
            new_beams: list[_Hyp] = []
            for score, idx in zip(top_scores[row], top_idx[row], strict=True):
                if score == -math.inf:
                    break
                j, tok = divmod(idx, V)
                parent = beams[img][j]
                hyp = _Hyp(
                    parent.tokens + [tok],
                    score,
                    min(parent.min_logp, score - parent.logp),
                    max(parent.max_entropy, entropy[row * k + j]),
                )
                if tok == vocab.end_id:
                    finished[img].append((score / (len(hyp.tokens) ** alpha), hyp))
                else:
                    new_beams.append(hyp)
                    next_rows.append(row * k + j)
                    next_tokens.append(tok)
                if len(new_beams) == k or len(finished[img]) >= k:
                    break
            if len(finished[img]) >= k or not new_beams:
                # Done: drop the rows this image had queued for the next step.
                n_queued = len(new_beams)
                if n_queued:
                    del next_rows[-n_queued:]
                    del next_tokens[-n_queued:]
                continue
            while len(new_beams) < k:  # pad to k rows with dead beams (score -inf)
                new_beams.append(_Hyp(new_beams[0].tokens, -math.inf, -math.inf))
                next_rows.append(row * k)
                next_tokens.append(vocab.pad_id)
            beams[img] = new_beams
            still_active.append(img)
        if not still_active:
            break
        photos = None
        if len(still_active) < len(active):  # finished photos leave the memory too
            keep = set(still_active)
            rows = [i for i, img in enumerate(active) if img in keep]
            photos = torch.tensor(rows, dtype=torch.long, device=device)
        active = still_active
        index = torch.tensor(next_rows, dtype=torch.long, device=device)
        cache = cache.reorder(index, photos)
        token = torch.tensor(next_tokens, dtype=torch.long, device=device)
    results = []
    for img in range(B):
        ranked = sorted(finished[img], key=lambda t: -t[0])
        seen: set[str] = set()
        cands = []
        for score, hyp in ranked:
            text = vocab.decode(hyp.tokens)
            if text and text not in seen:
                seen.add(text)
                cands.append(
                    Candidate(
                        caption=text,
                        score=float(score),
                        min_token_logp=float(hyp.min_logp),
                        max_entropy=hyp.max_entropy,
                    )
                )
        results.append(cands[: max(1, min(settings.n_candidates, k))])
    return with_blank_scores(model, vocab, results, prefix)


def with_blank_scores(
    model: CaptionModel, vocab: Vocab, results: list[list[Candidate]], prefix: list[int]
) -> list[list[Candidate]]:
    """Each candidate's mean log-probability per word (and <end>) given a blank image: one
    teacher-forced pass over all candidates, so the confidence can tell a caption that fits this
    photo from one the model would write for any photo."""
    flat = [c for cands in results for c in cands]
    if not flat:
        return results
    device = next(model.parameters()).device
    seqs = [prefix + [vocab.stoi[w] for w in c.caption.split()] + [vocab.end_id] for c in flat]
    T = max(len(q) for q in seqs)
    tokens = torch.full((len(seqs), T), vocab.pad_id, dtype=torch.long, device=device)
    for i, q in enumerate(seqs):
        tokens[i, : len(q)] = torch.tensor(q, device=device)
    blank = model.encode_features(
        torch.zeros(1, model.cfg.n_image_tokens, model.cfg.feature_dim, device=device)
    )  # (1, 49, C)
    logits = model.decode(
        tokens[:, :-1], blank, photo_index=torch.zeros(len(seqs), dtype=torch.long, device=device)
    )
    logp = torch.log_softmax(logits.float(), dim=-1).gather(2, tokens[:, 1:, None])[
        ..., 0
    ]  # (N, T-1)
    mask = tokens[:, 1:] != vocab.pad_id
    mask[:, : len(prefix) - 1] = False  # forced style token: not the caption's own
    scores = ((logp * mask).sum(1) / mask.sum(1)).tolist()
    it = iter(scores)
    return [[replace(c, blank_score=float(next(it))) for c in cands] for cands in results]


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
            mean = feats.mean((2, 3))  # (b, 1280)
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
        if self.consensus is None or settings.beam_size < 2:
            found = self.beam_search(memory, settings, cancel)
        else:  # every beam candidate is reranked; the best n_candidates are kept
            wide = replace(settings, n_candidates=settings.beam_size)
            found = self.consensus.rerank(self.beam_search(memory, wide, cancel), pooled.cpu())
            found = [
                cands[: max(1, min(settings.n_candidates, settings.beam_size))] for cands in found
            ]
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
    ) -> list[list[Candidate]]:
        return beam_search(self.model, self.vocab, memory, settings, cancel, self.style)

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
