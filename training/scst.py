"""Self-critical sequence training: sampled captions rewarded by CIDEr-D, mean-of-others baseline."""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from core.checkpoint import load_checkpoint, save_checkpoint
from core.cider import CiderD
from core.devices import autocast, pick_device
from core.model import CaptionModel
from core.vocab import Vocab, tokenize
from training.data import Example
from training.fit import DevSplits, evaluate_splits, load_train_state, save_train_state

log = logging.getLogger(__name__)


@torch.no_grad()
def _prefix_tokens(prefix: torch.Tensor | list[int], rows: int, device) -> torch.Tensor:
    """(rows, P) forced tokens: one prefix for every row, or (rows, P) per-row prefixes."""
    p = torch.as_tensor(prefix, dtype=torch.long, device=device)
    return p.expand(rows, -1) if p.dim() == 1 else p


@torch.no_grad()
def sample_captions(
    model: CaptionModel,
    vocab: Vocab,
    memory: torch.Tensor,
    n: int,
    max_len: int,
    prefix: torch.Tensor | list[int] | None = None,
) -> torch.Tensor:
    """n sampled captions per photo with the KV cache: (B, 49, C) -> (B*n, T) tokens after the
    prefix. prefix: <start> [style], shared (P,) or per photo (B, P); default <start>."""
    memory = memory.repeat_interleave(n, dim=0)  # (B*n, 49, C)
    cache = model.start_cache(memory)
    B = memory.shape[0] // n
    pre = _prefix_tokens([vocab.start_id] if prefix is None else prefix, B, memory.device)
    pre = pre.repeat_interleave(n, dim=0)  # (B*n, P)
    for t in range(pre.shape[1] - 1):  # forced tokens: only the cache matters
        _, cache = model.step(pre[:, t], cache)
    token = pre[:, -1]
    done = torch.zeros_like(token, dtype=torch.bool)
    out = []
    banned = vocab.not_words  # as in beam search: a sample must be a caption the app could give
    for _ in range(max_len - pre.shape[1]):
        logp, cache = model.step(token, cache)  # (B*n, V)
        logp[:, banned] = -float("inf")
        token = torch.multinomial(logp.exp(), 1).squeeze(1)
        token = torch.where(done, torch.full_like(token, vocab.pad_id), token)
        out.append(token)
        done |= token == vocab.end_id
        if bool(done.all()):
            break
    seqs = torch.stack(out, dim=1)  # (B*n, T)
    if not bool(done.all()):  # force <end> where the length ran out
        last = seqs[:, -1]
        seqs[:, -1] = torch.where(last == vocab.pad_id, last, torch.full_like(last, vocab.end_id))
    return seqs


def sequence_logprob(
    model: CaptionModel,
    vocab: Vocab,
    memory: torch.Tensor,
    seqs: torch.Tensor,
    prefix: torch.Tensor | list[int] | None = None,
) -> torch.Tensor:
    """Sum of log-probabilities of each sampled caption incl. <end>: (B*n,).

    prefix: the forced tokens the samples followed, (P,) or per row (B*n, P)."""
    pre = _prefix_tokens([vocab.start_id] if prefix is None else prefix, len(seqs), seqs.device)
    inp = torch.cat([pre, seqs[:, :-1]], dim=1)  # (B*n, P-1+T)
    logits = model.decode(inp, memory)[:, pre.shape[1] - 1 :]  # (B*n, T, V)
    logp = F.log_softmax(logits.float(), dim=-1).gather(2, seqs.unsqueeze(2)).squeeze(2)
    mask = seqs != vocab.pad_id
    return (logp * mask).sum(dim=1)


class WeightAverage:
    """An exponential moving average of a model's floating-point weights (decay per step): the
    mean of the recent weights, which a noisy self-critical reward otherwise leaves jumping."""

    def __init__(self, model: CaptionModel, decay: float) -> None:
        self.decay = decay
        self.shadow = {
            k: v.detach().float().clone()
            for k, v in model.state_dict().items()
            if v.is_floating_point()
        }

    @torch.no_grad()
    def update(self, model: CaptionModel) -> None:
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].mul_(self.decay).add_(v.detach().float(), alpha=1 - self.decay)

    def apply_to(self, model: CaptionModel) -> None:
        """Load the averaged weights into model (a copy of the trained one)."""
        state = model.state_dict()
        state.update({k: v.to(state[k].dtype) for k, v in self.shadow.items()})
        model.load_state_dict(state)


def _averaged_copy(model: CaptionModel, average: WeightAverage) -> CaptionModel:
    twin = copy.deepcopy(model)
    average.apply_to(twin)
    return twin.eval()


STATE_FILE = "scst_state.safetensors"
AVERAGE_FILE = "scst_average.safetensors"


class _Scst:
    """One self-critical run's live state: the model, its optimizer and moving average, the
    reward, the random generators and what has been done (steps, seconds, history, best)."""

    def __init__(
        self, args: argparse.Namespace, train: list[Example], features: torch.Tensor, dev: DevSplits
    ) -> None:
        self.args, self.features, self.dev = args, features, dev
        self.device = pick_device(args.device)
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed)
        self.ckpt = ckpt = load_checkpoint(args.init)
        self.vocab = vocab = ckpt.vocab
        # No dropout: samples and log-probs must agree.
        self.model = model = ckpt.build_model().to(self.device).eval()
        if args.style is not None:  # the caption style the app asks for, scored and saved with it
            model.cfg = replace(model.cfg, style=args.style if args.style in vocab.styles else "")
        self.out = args.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        self.ema_decay = float(getattr(args, "ema", 0.0) or 0.0)
        self.average = WeightAverage(model, self.ema_decay) if self.ema_decay > 0 else None
        self.history: list[dict] = []
        self.step, spent = 0, 0.0
        self.state_path = self.out / STATE_FILE
        if getattr(args, "resume", False) and self.state_path.exists():
            spent = self._resume()
        else:
            self.base = evaluate_splits(model, vocab, dev, 3)
            self.best = float(self.base["mean"]["CIDEr"])
            log.info("SCST from %s: dev CIDEr-D %s", args.init, json.dumps(self.base))
        refs_tok = [[tokenize(c) for c in e.captions] for e in train]
        self.cider = CiderD(refs_tok)
        self.prepared = [self.cider.prepare_refs(r) for r in refs_tok]
        self.prefixes = torch.tensor(
            [vocab.prefix(e.source if e.source in vocab.styles else None) for e in train]
        )  # (P, 1 or 2)
        self.amp = autocast(self.device)
        self.t0 = time.perf_counter() - spent

    def _resume(self) -> float:
        """Continue from OUT's state; returns the seconds spent in earlier sittings."""
        meta = load_train_state(self.state_path, self.model, self.opt)
        self.step, spent, self.history = meta["step"], meta["seconds"], meta["history"]
        self.base, self.best = meta["start_cider"], meta["best"]
        self.rng.bit_generator.state = meta["numpy_rng"]
        torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))
        if self.average is not None and (self.out / AVERAGE_FILE).exists():
            shadow = load_file(str(self.out / AVERAGE_FILE))
            self.average.shadow = {k: v.float() for k, v in shadow.items()}
        log.info("SCST resumed at step %d (%.0f s spent), best %.4f", self.step, spent, self.best)
        return spent

    @property
    def running(self) -> bool:
        args = self.args
        max_steps = int(getattr(args, "steps", 0) or 0)  # 0: only the minutes limit
        in_time = time.perf_counter() - self.t0 < args.minutes * 60
        return in_time and not (max_steps and self.step >= max_steps)

    def train_step(self) -> None:
        """Sample captions for a random batch of photos, reward them, one optimizer step."""
        args, model, vocab, device, n = (
            self.args,
            self.model,
            self.vocab,
            self.device,
            self.args.samples,
        )
        idx = self.rng.choice(len(self.features), args.photos_per_step, replace=False)
        feats = self.features[torch.from_numpy(idx)].to(device).float()
        prefix = self.prefixes[torch.from_numpy(idx)].to(device)  # (B, P)
        with self.amp:
            memory = model.encode_features(feats)  # (B, 49, C)
            max_len = self.ckpt.config.max_len
            seqs = sample_captions(model, vocab, memory.detach(), n, max_len, prefix)
        rewards = np.zeros(len(seqs))
        for r, seq in enumerate(seqs.tolist()):
            rewards[r] = self.cider.score(vocab.decode(seq).split(), self.prepared[idx[r // n]])
        rw = torch.tensor(rewards, dtype=torch.float32, device=device).view(-1, n)  # (B, n)
        baseline = (rw.sum(dim=1, keepdim=True) - rw) / (n - 1)  # mean of the other samples
        advantage = (rw - baseline).view(-1)
        with self.amp:
            logp = sequence_logprob(
                model,
                vocab,
                memory.repeat_interleave(n, dim=0),
                seqs,
                prefix.repeat_interleave(n, dim=0),
            )
        loss = -(advantage * logp.float()).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        self.opt.step()
        if self.average is not None:
            self.average.update(model)
        self.step += 1
        if self.step % 10 == 0:
            log.info(
                "scst step %d: mean reward %.3f, loss %.4f", self.step, rewards.mean(), loss.item()
            )

    def evaluate(self) -> None:
        """Score dev (and the moving average), keep the best, save the resumable state."""
        model, vocab, dev, step = self.model, self.vocab, self.dev, self.step
        scores = evaluate_splits(model, vocab, dev, 3)
        entry = {"step": step, "seconds": time.perf_counter() - self.t0, **scores}
        log.info("scst step %d dev: %s", step, json.dumps(scores))
        if scores["mean"]["CIDEr"] > self.best:
            self.best = scores["mean"]["CIDEr"]
            self._save_best(model, scores, "trained")
        if self.average is not None:
            twin = _averaged_copy(model, self.average)
            avg_scores = evaluate_splits(twin, vocab, dev, 3)
            entry["average"] = avg_scores
            log.info("scst step %d dev, averaged weights: %s", step, json.dumps(avg_scores))
            if avg_scores["mean"]["CIDEr"] > self.best:
                self.best = avg_scores["mean"]["CIDEr"]
                self._save_best(twin, avg_scores, f"moving average, decay {self.ema_decay}")
            save_file(
                {k: v.contiguous() for k, v in self.average.shadow.items()},
                str(self.out / AVERAGE_FILE),
            )
        self.history.append(entry)
        model.eval()
        meta = {
            "step": step,
            "seconds": time.perf_counter() - self.t0,
            "history": self.history,
            "start_cider": self.base,
            "best": self.best,
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state().tolist(),
        }
        save_train_state(self.state_path, model, self.opt, meta)
        self.write_history()

    def _save_best(self, which: CaptionModel, scores: dict, label: str) -> None:
        prov = {
            **self.ckpt.provenance,
            "stage": "self-critical",
            "scst_steps": self.step,
            "scst_weights": label,
            "dev": scores,
        }
        save_checkpoint(self.out / "scst_best.safetensors", which, self.vocab, prov)

    def write_history(self) -> None:
        (self.out / "scst_history.json").write_text(
            json.dumps({"start_cider": self.base, "history": self.history}, indent=1)
        )


def run_scst(
    args: argparse.Namespace,
    train: list[Example],
    features: torch.Tensor,
    dev: DevSplits,
) -> int:
    """Fine-tune from args.init for args.minutes; keep the result only if mean dev CIDEr-D improves.

    train: photos with several references each (one reference makes a poor CIDEr-D reward);
    features (P, 49, 1280) in the same order. Each photo is sampled in its own set's style.
    args.ema > 0 also keeps an exponential moving average of the weights, scored beside them at
    every evaluation (the better of the two is kept). args.resume continues from OUT's state
    (weights, average, Adam moments, random states, history), saved at every evaluation; the
    minutes are counted over all sittings.
    """
    run = _Scst(args, train, features, dev)
    while run.running:
        run.train_step()
        if run.step % args.eval_every == 0:
            run.evaluate()
    run.write_history()
    log.info("SCST done after %d steps: best mean dev CIDEr-D %.4f", run.step, run.best)
    return 0
