"""Cross-entropy training of the caption model on cached encoder features, one process or DDP."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from core.beam import beam_search
from core.checkpoint import save_checkpoint
from core.datatypes import CaptionSettings
from core.devices import autocast, pick_device
from core.model import CaptionModel, ModelConfig
from core.vocab import MAX_TOKENS, Vocab
from training.data import SOURCES, Example, flip_caption

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 80  # captions per global step: 16 photos x 5 (split across processes)
    lr: float = 4e-4
    min_lr: float = 1e-5
    warmup_steps: int = 500
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1234
    eval_from: int = 1  # first epoch whose end is scored on dev (CIDEr-D, beam 3)
    eval_beam: int = 3
    eval_style: str = ""  # caption style asked for when scoring dev ("" = the model's default)
    weights: tuple[tuple[str, float], ...] = ()  # per-set sampling weights (see epoch_order)
    repeat_rare: float = 0.0  # repeat-factor threshold t for rare words (see repeat_factors)
    device: str = "auto"
    amp: bool = True  # bf16 autocast where it is fast (core.devices.autocast)


# --------------------------------------------------------------------------- data


@dataclass
class CaptionData:
    """Every training caption: its photo's row in the feature array, its tokens, plain and
    mirrored, and the set it came from (which sets its style token and its sampling weight)."""

    feature_rows: np.ndarray  # (N,) row of each caption's photo in the feature array
    tokens: torch.Tensor  # (N, 2, MAX_TOKENS) long, padded; [:, 1] is the mirrored caption
    source: np.ndarray  # (N,) index into SOURCES

    @classmethod
    def build(
        cls, examples: list[Example], vocab: Vocab, rows: dict[str, int], styles: bool = True
    ) -> CaptionData:
        """styles: put the source's style token after <start> (when the vocabulary has it)."""
        pairs = [(e, c) for e in examples for c in e.captions]
        tokens = torch.full((len(pairs), 2, MAX_TOKENS), vocab.pad_id, dtype=torch.long)
        for i, (e, cap) in enumerate(pairs):
            style = e.source if styles and e.source in vocab.styles else None
            for f, text in enumerate((cap, flip_caption(cap))):
                ids = vocab.encode(text, style=style)
                tokens[i, f, : len(ids)] = torch.tensor(ids)
        return cls(
            np.array([rows[e.name] for e, _ in pairs], dtype=np.int64),
            tokens,
            np.array([SOURCES.index(e.source) for e, _ in pairs], dtype=np.int64),
        )

    def counts(self) -> dict[str, int]:
        return {s: int((self.source == i).sum()) for i, s in enumerate(SOURCES)}


def repeat_factors(
    data: CaptionData, vocab: Vocab, threshold: float, cap: float = 4.0
) -> np.ndarray:
    """Repeat-factor sampling (Gupta et al., LVIS, 2019) applied to caption words.

    A word found in a fraction f of the training captions gets r = max(1, sqrt(threshold / f));
    each caption is drawn r times as often, r being that of its rarest word (at most cap).
    Captions naming rare things (an astronaut, a rocket, a galaxy) are then seen often enough
    to be learnt, while common captions keep r = 1. threshold 0 turns it off (all ones).
    """
    n = len(data.source)
    if threshold <= 0 or n == 0:
        return np.ones(n)
    plain = data.tokens[:, 0].numpy()  # (n, T)
    rows = np.repeat(np.arange(n), plain.shape[1])
    words = plain.ravel()
    keep = ~np.isin(words, vocab.not_words + [vocab.end_id])
    # Each (caption, word) pair once: a word's frequency counts the captions that have it.
    pairs = np.unique(rows[keep] * len(vocab) + words[keep])
    row, word = np.divmod(pairs, len(vocab))
    freq = np.bincount(word, minlength=len(vocab)) / n
    r_word = np.maximum(1.0, np.sqrt(threshold / np.maximum(freq, 1e-12)))
    r = np.ones(n)
    np.maximum.at(r, row, r_word[word])
    return np.minimum(r, cap)


def epoch_order(
    data: CaptionData,
    seed: int,
    epoch: int,
    weights: dict[str, float] | None = None,
    repeat: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Caption indices for one epoch and mirror choices, the same on every process and on resume.

    weights: per set, how many times each of its captions is drawn per epoch on average
    (2.0 = every caption twice, 0.5 = a random half); sets not named count 1.0.
    repeat: per caption, a further factor (repeat_factors); the product is drawn as its whole
    part plus one more time with the fractional part's probability.
    """
    rng = np.random.default_rng([seed, epoch])
    picked = []
    for i, s in enumerate(SOURCES):
        idx = np.flatnonzero(data.source == i)
        times = (weights or {}).get(s, 1.0) * (np.ones(len(idx)) if repeat is None else repeat[idx])
        whole = np.floor(times)
        if (times > whole).any():
            whole += rng.random(len(idx)) < times - whole
        picked.append(np.repeat(idx, whole.astype(np.int64)))
    order = rng.permutation(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
    return order, rng.random(len(order)) < 0.5


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


# --------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Dist:
    """torchrun sets WORLD_SIZE/RANK; gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


# --------------------------------------------------------------------------- state on disk


def save_train_state(
    path: Path,
    model: CaptionModel,
    opt: torch.optim.Optimizer,
    meta: dict,
    head: torch.nn.Module | None = None,
) -> None:
    """Model (and a tuned encoder head) + AdamW moments as safetensors (no pickle), scalars in
    the metadata; atomic."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        tensors.pop("model.lm_head.weight", None)
    if head is not None:
        tensors.update({f"head.{k}": v.detach().contiguous() for k, v in head.state_dict().items()})
    steps = {}
    for name, p in _trained_parameters(model, head):
        st = opt.state.get(p)
        if st:
            tensors[f"opt.{name}.exp_avg"] = st["exp_avg"].contiguous()
            tensors[f"opt.{name}.exp_avg_sq"] = st["exp_avg_sq"].contiguous()
            steps[name] = float(st["step"])
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"meta": json.dumps({**meta, "opt_steps": steps})})
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_train_state(
    path: Path,
    model: CaptionModel,
    opt: torch.optim.Optimizer,
    head: torch.nn.Module | None = None,
) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    tensors = load_file(str(path))
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    if model.cfg.tie_embeddings:
        state["lm_head.weight"] = state["token_emb.weight"]
    model.load_state_dict(state)
    head_state = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
    if head is not None and head_state:
        head.load_state_dict(head_state)
    elif head is not None and any(p.requires_grad for p in head.parameters()):
        raise ValueError(f"{path} holds no encoder head to resume the tuned one from")
    for name, p in _trained_parameters(model, head):
        if f"opt.{name}.exp_avg" in tensors:
            device = p.device
            opt.state[p] = {
                "step": torch.tensor(meta["opt_steps"][name]),
                "exp_avg": tensors[f"opt.{name}.exp_avg"].to(device),
                "exp_avg_sq": tensors[f"opt.{name}.exp_avg_sq"].to(device),
            }
    return meta


def _trained_parameters(
    model: CaptionModel, head: torch.nn.Module | None
) -> Iterator[tuple[str, torch.nn.Parameter]]:
    """The optimizer's parameters by name: the model's as they were, the head's as head.*."""
    yield from model.named_parameters()
    if head is not None:
        for name, p in head.named_parameters():
            yield f"head.{name}", p


# --------------------------------------------------------------------------- evaluation on features


def caption_features(
    model: CaptionModel,
    vocab: Vocab,
    features: torch.Tensor,
    beam: int,
    batch_size: int = 100,
    style: str | None = None,
) -> list[str]:
    """Captions for (N, 49, 1280) cached features with core's beam search."""
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    settings = CaptionSettings(beam_size=beam, n_candidates=1)
    with torch.inference_mode():
        for lo in range(0, len(features), batch_size):
            f = features[lo : lo + batch_size].to(device).float()
            memory = model.encode_features(f)  # (b, 49, C)
            words = model.copy_words(f)  # (b, k) for a model that copies tag words, else None
            cands = beam_search(model, vocab, memory, settings, style=style, tag_words=words)
            out += [c[0].caption if c else "" for c in cands]
    return out


def evaluate_dev(
    model: CaptionModel,
    vocab: Vocab,
    dev_features: torch.Tensor,
    dev: list[Example],
    beam: int,
    meteor: bool = False,
    style: str | None = None,
) -> dict[str, float]:
    from training.metrics import score_captions

    caps = caption_features(model, vocab, dev_features, beam, style=style)
    refs = {e.name: list(e.captions) for e in dev}
    return score_captions(refs, dict(zip([e.name for e in dev], caps, strict=True)), meteor=meteor)


# --------------------------------------------------------------------------- the loop


class ProgressBar:
    """Minimal stderr progress line (loss, rate, ETA); silent when not a terminal."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.t0 = total, label, time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, done: int, loss: float) -> None:
        el = time.perf_counter() - self.t0
        eta = el / max(done, 1) * (self.total - done)
        line = (
            f"{self.label} {done}/{self.total} loss {loss:.3f} {done / el:.1f} it/s ETA {eta:.0f}s"
        )
        if self.tty:
            sys.stderr.write("\r" + line)
            sys.stderr.flush()
        elif done % 100 == 0 or done == self.total:
            log.info(line)

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


DevSplits = dict[str, tuple[list[Example], torch.Tensor]]  # name -> (photos, (P, 49, 1280))


def evaluate_splits(
    model: CaptionModel, vocab: Vocab, dev: DevSplits, beam: int, style: str | None = None
) -> dict[str, dict[str, float]]:
    """Scores per dev split, plus "mean" (the mean CIDEr-D that selects checkpoints)."""
    scores = {
        name: evaluate_dev(model, vocab, f, ex, beam, style=style) for name, (ex, f) in dev.items()
    }
    return {**scores, "mean": {"CIDEr": float(np.mean([v["CIDEr"] for v in scores.values()]))}}


def through(head: torch.nn.Module | None, dev: DevSplits) -> DevSplits:
    """Dev features passed through the encoder's last stages (as they are now), if any."""
    if head is None:
        return dev
    device = next(head.parameters()).device
    out = {}
    with torch.inference_mode():
        for name, (ex, f) in dev.items():
            parts = [head(f[i : i + 100].to(device).float()).cpu() for i in range(0, len(f), 100)]
            out[name] = (ex, torch.cat(parts))
    return out


def init_from(model: CaptionModel, vocab: Vocab, init: Path) -> None:
    """Start from a trained checkpoint: every tensor of the same shape is copied; word
    embeddings are copied word by word, so a larger vocabulary keeps what the old one knew."""
    from core.checkpoint import load_checkpoint

    ckpt = load_checkpoint(init)
    old = {k: v.float() for k, v in ckpt.state_dict.items() if not k.startswith("backbone.")}
    own = model.state_dict()
    with torch.no_grad():
        for k, v in old.items():
            if (
                k in own
                and own[k].shape == v.shape
                and k not in ("token_emb.weight", "lm_head.weight")
            ):
                own[k].copy_(v)
        emb, old_emb = own["token_emb.weight"], old["token_emb.weight"]
        shared = [(i, ckpt.vocab.stoi[w]) for i, w in enumerate(vocab.itos) if w in ckpt.vocab.stoi]
        new_rows, old_rows = (torch.tensor(x) for x in zip(*shared, strict=True))
        emb[new_rows] = old_emb[old_rows]
    log.info("initialised from %s: %d of %d words known", init, len(shared), len(vocab))


@dataclass(frozen=True, kw_only=True)
class TrainRun:
    """What one call of train() trains, on what, and where it writes."""

    model_cfg: ModelConfig
    cfg: TrainConfig
    vocab: Vocab
    features: torch.Tensor  # (P, 2, 49, 1280) fp16, [:, 1] the mirrored photo
    train_data: CaptionData
    dev: DevSplits | None = None  # scored at the end of each epoch from cfg.eval_from on
    out_dir: Path
    resume: bool = False  # continue from out_dir/last_state.safetensors when it exists
    provenance: dict | None = None  # written into every checkpoint
    max_steps: int | None = None  # stop after this many optimizer steps in all (tests, smoke runs)
    init: Path | None = None  # start from this checkpoint's weights (init_from)
    # The encoder's last stages, when features (P, 2, 49, C) are an earlier stage's output
    # (training.tune): trained with head_lr (on the same schedule), frozen if head_lr is 0. Its
    # weights (and a tuned head's moments) are part of the resumable state, not of the checkpoints.
    head: torch.nn.Module | None = None
    head_lr: float = 0.0


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What train() returns: one record per epoch trained (as history.json), the best mean dev
    CIDEr-D (-1.0 when none was scored) and the model as it is after the last step."""

    history: list[dict[str, float]]
    best_cider: float
    model: CaptionModel


@dataclass(frozen=True)
class Batch:
    """One process's share of a global batch, on the device."""

    feats: torch.Tensor  # (p, 49, C) each (photo, mirrored?) pair once
    photo_index: torch.Tensor  # (n,) row of each caption's photo in feats
    inp: torch.Tensor  # (n, T-1) tokens in
    tgt: torch.Tensor  # (n, T-1) tokens to predict


class Trainer:
    """One training run's live state: the model, its optimizer, the process group and progress.

    train() drives it: step() per batch, end_epoch() (evaluate, checkpoint) per epoch.
    """

    def __init__(self, run: TrainRun) -> None:
        cfg = self.cfg = run.cfg
        self.run = run
        self.device = pick_device(cfg.device)
        self.dd = init_distributed(self.device)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.model = CaptionModel(run.model_cfg, with_backbone=False)
        if run.init is not None:
            init_from(self.model, run.vocab, run.init)
        self.model.to(self.device)
        self.opt = self.model.configure_optimizers(cfg.lr, cfg.weight_decay)
        self.head = run.head
        self.tune_head = run.head is not None and run.head_lr > 0
        if self.head is not None:
            self.head.to(self.device).eval().requires_grad_(self.tune_head)
            if self.tune_head:
                group = {"params": list(self.head.parameters()), "weight_decay": 0.0}
                self.opt.add_param_group({**group, "scale": run.head_lr / cfg.lr})
        run.out_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = run.out_dir / "last_state.safetensors"
        self.history: list[dict[str, float]] = []
        self.start_epoch, self.step_count, self.best = 0, 0, -1.0
        if run.resume and self.state_path.exists():
            self._resume()
        self.ddp_model: torch.nn.Module = self.model
        if self.dd.world > 1:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(self.model)
        self._plan_sampling()
        self.amp = autocast(self.device, cfg.amp)

    def _resume(self) -> None:
        meta = load_train_state(self.state_path, self.model, self.opt, self.head)
        self.start_epoch, self.step_count = meta["epoch"], meta["step"]
        self.best, self.history = meta["best"], meta["history"]
        log.info(
            "resumed from %s at epoch %d (step %d)",
            self.state_path,
            self.start_epoch,
            self.step_count,
        )

    def _plan_sampling(self) -> None:
        cfg, data = self.cfg, self.run.train_data
        self.weights = dict(cfg.weights)
        self.repeat = (
            repeat_factors(data, self.run.vocab, cfg.repeat_rare) if cfg.repeat_rare > 0 else None
        )
        if self.repeat is not None:
            log.info(
                "rare words: %d of %d captions repeated (mean factor %.2f, threshold %g)",
                int((self.repeat > 1).sum()),
                len(self.repeat),
                float(self.repeat.mean()),
                cfg.repeat_rare,
            )
        assert cfg.batch_size % self.dd.world == 0, (
            "batch size must divide by the number of processes"
        )
        self.local = cfg.batch_size // self.dd.world
        order = epoch_order(data, cfg.seed, 0, self.weights, self.repeat)[0]
        self.steps_per_epoch = len(order) // cfg.batch_size
        self.total_steps = self.steps_per_epoch * cfg.epochs
        log.info("training captions per set: %s; sampling weights %s", data.counts(), self.weights)

    @property
    def out_of_steps(self) -> bool:
        return self.run.max_steps is not None and self.step_count >= self.run.max_steps

    def batch(self, b: int, order: np.ndarray, mirror: np.ndarray) -> Batch:
        """The b-th global batch of an epoch's order, this process's share of it."""
        data, features, device = self.run.train_data, self.run.features, self.device
        lo = b * self.cfg.batch_size + self.dd.rank * self.local
        caps = order[lo : lo + self.local]  # this process's captions
        flip = mirror[lo : lo + self.local].astype(np.int64)
        # Each (photo, mirrored?) pair is encoded once however many of its captions are here.
        keys = data.feature_rows[caps] * 2 + flip
        uniq, photo_index = np.unique(keys, return_inverse=True)
        feats = features[torch.from_numpy(uniq // 2), torch.from_numpy(uniq % 2)]
        feats = feats.to(device).float()  # (p, 49, 1280)
        seq = data.tokens[torch.from_numpy(caps), torch.from_numpy(flip)]  # (n, T)
        # Trim padding shared by the whole global batch (same on every process).
        length = torch.tensor(int((seq != self.run.model_cfg.pad_id).sum(1).max()))
        if self.dd.world > 1:
            dist.all_reduce(length, op=dist.ReduceOp.MAX)
        seq = seq[:, : int(length)].to(device)
        return Batch(
            feats=feats,
            photo_index=torch.from_numpy(photo_index).to(device),
            inp=seq[:, :-1],
            tgt=seq[:, 1:],
        )

    def step(self, batch: Batch) -> float:
        """One optimizer step; returns the batch's mean loss per token on this process."""
        cfg, head = self.cfg, self.head
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step_count, self.total_steps, cfg) * g.get("scale", 1.0)
        feats = batch.feats
        with self.amp:
            if head is not None:
                with torch.set_grad_enabled(self.tune_head):
                    feats = head(feats)
            logits, _ = self.ddp_model(feats, batch.inp, photo_index=batch.photo_index)
        # Sum over tokens / tokens in the global batch: DDP then equals one process exactly.
        n_tok = (batch.tgt != self.run.model_cfg.pad_id).sum()
        global_tok = n_tok.clone()
        if self.dd.world > 1:
            dist.all_reduce(global_tok)
        loss_tok = self.model.loss(logits, batch.tgt, cfg.label_smoothing, reduction="sum")
        loss = loss_tok * self.dd.world / global_tok
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if self.tune_head:
            torch.nn.utils.clip_grad_norm_(head.parameters(), cfg.grad_clip)
        self.opt.step()
        self.step_count += 1
        return float(loss_tok.detach()) / float(n_tok)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Every step of one epoch (or up to max_steps); returns the epoch's record."""
        cfg, dd = self.cfg, self.dd
        t_epoch = time.perf_counter()
        torch.manual_seed(cfg.seed * 1000 + epoch)  # dropout; makes resume at an epoch exact
        self.model.train()
        order, mirror = epoch_order(self.run.train_data, cfg.seed, epoch, self.weights, self.repeat)
        label = f"epoch {epoch + 1}/{cfg.epochs}"
        bar = ProgressBar(self.steps_per_epoch, label) if dd.main else None
        loss_sum, loss_n = 0.0, 0
        # With repeat factors an epoch's length varies by a few captions: never a short batch.
        for b in range(min(self.steps_per_epoch, len(order) // cfg.batch_size)):
            if self.out_of_steps:
                break
            loss_sum += self.step(self.batch(b, order, mirror))
            loss_n += 1
            if bar is not None:
                bar.update(b + 1, loss_sum / loss_n)
        if bar is not None:
            bar.close()
        return {
            "epoch": epoch + 1,
            "step": self.step_count,
            "train_loss": loss_sum / max(loss_n, 1),
            "lr": self.opt.param_groups[0]["lr"],
            "epoch_seconds": time.perf_counter() - t_epoch,
        }

    def end_epoch(self, epoch: int, record: dict[str, float]) -> None:
        """On the main process: score dev, keep the best checkpoint, save the resumable state."""
        run, cfg = self.run, self.cfg
        if run.dev and epoch + 1 >= cfg.eval_from:
            self._evaluate(epoch, record)
        self.history.append(record)
        log.info("epoch %d: %s", epoch + 1, json.dumps(record))
        meta = {
            "epoch": epoch + 1,
            "step": self.step_count,
            "best": self.best,
            "history": self.history,
            "model_config": run.model_cfg.to_dict(),
            "train_config": asdict(cfg),
        }
        save_train_state(self.state_path, self.model, self.opt, meta, self.head)
        save_checkpoint(run.out_dir / "last.safetensors", self.model, run.vocab, run.provenance)
        (run.out_dir / "history.json").write_text(json.dumps(self.history, indent=1))

    def _evaluate(self, epoch: int, record: dict[str, float]) -> None:
        run, cfg, dev = self.run, self.cfg, self.run.dev
        assert dev
        t_eval = time.perf_counter()
        scores = evaluate_splits(
            self.model, run.vocab, through(self.head, dev), cfg.eval_beam, cfg.eval_style or None
        )
        for split, sc in scores.items():
            prefix = "dev_" if split == "mean" or len(dev) == 1 else f"dev_{split}_"
            record.update({f"{prefix}{k}": v for k, v in sc.items()})
        record["eval_seconds"] = time.perf_counter() - t_eval
        if scores["mean"]["CIDEr"] > self.best:
            self.best = scores["mean"]["CIDEr"]
            provenance = {
                **(run.provenance or {}),
                "epoch": epoch + 1,
                "dev": scores,
                "beam": cfg.eval_beam,
            }
            save_checkpoint(run.out_dir / "best.safetensors", self.model, run.vocab, provenance)


def train(run: TrainRun) -> TrainResult:
    """Train with AdamW; checkpoint every epoch; keep the best by mean dev CIDEr-D as
    best.safetensors."""
    trainer = Trainer(run)
    for epoch in range(trainer.start_epoch, run.cfg.epochs):
        record = trainer.train_epoch(epoch)
        if trainer.dd.main:
            trainer.end_epoch(epoch, record)
        if trainer.out_of_steps:
            break
    return TrainResult(history=trainer.history, best_cider=trainer.best, model=trainer.model)


def config_with_vocab(cfg: ModelConfig, vocab: Vocab) -> ModelConfig:
    return replace(cfg, vocab_size=len(vocab), pad_id=vocab.pad_id)
