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
from core.devices import autocast, pick_device
from core.model import CaptionModel
from core.vocab import Vocab, tokenize
from training.cider import CiderD
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
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    ckpt = load_checkpoint(args.init)
    vocab = ckpt.vocab
    model = ckpt.build_model().to(device).eval()  # no dropout: samples and log-probs must agree
    if args.style is not None:  # the caption style the app asks for, scored and saved with it
        model.cfg = replace(model.cfg, style=args.style if args.style in vocab.styles else "")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    ema_decay = float(getattr(args, "ema", 0.0) or 0.0)
    average = WeightAverage(model, ema_decay) if ema_decay > 0 else None
    history: list[dict] = []
    step, spent = 0, 0.0
    state_path = out / STATE_FILE
    if getattr(args, "resume", False) and state_path.exists():
        meta = load_train_state(state_path, model, opt)
        step, spent, history = meta["step"], meta["seconds"], meta["history"]
        base, best = meta["start_cider"], meta["best"]
        rng.bit_generator.state = meta["numpy_rng"]
        torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))
        if average is not None and (out / AVERAGE_FILE).exists():
            average.shadow = {k: v.float() for k, v in load_file(str(out / AVERAGE_FILE)).items()}
        log.info("SCST resumed at step %d (%.0f s spent), best %.4f", step, spent, best)
    else:
        base = evaluate_splits(model, vocab, dev, 3)
        best = float(base["mean"]["CIDEr"])
        log.info("SCST from %s: dev CIDEr-D %s", args.init, json.dumps(base))
    refs_tok = [[tokenize(c) for c in e.captions] for e in train]
    cider = CiderD(refs_tok)
    prepared = [cider.prepare_refs(r) for r in refs_tok]
    prefixes = torch.tensor(
        [vocab.prefix(e.source if e.source in vocab.styles else None) for e in train]
    )  # (P, 1 or 2)
    amp = autocast(device)
    n = args.samples
    t0 = time.perf_counter() - spent

    def save_best(which: CaptionModel, scores: dict, label: str) -> None:
        prov = {
            **ckpt.provenance,
            "stage": "self-critical",
            "scst_steps": step,
            "scst_weights": label,
            "dev": scores,
        }
        save_checkpoint(out / "scst_best.safetensors", which, vocab, prov)

    max_steps = int(getattr(args, "steps", 0) or 0)  # 0: only the minutes limit
    while time.perf_counter() - t0 < args.minutes * 60 and not (max_steps and step >= max_steps):
        idx = rng.choice(len(features), args.photos_per_step, replace=False)
        feats = features[torch.from_numpy(idx)].to(device).float()
        prefix = prefixes[torch.from_numpy(idx)].to(device)  # (B, P)
        with amp:
            memory = model.encode_features(feats)  # (B, 49, C)
            seqs = sample_captions(model, vocab, memory.detach(), n, ckpt.config.max_len, prefix)
        rewards = np.zeros(len(seqs))
        for r, seq in enumerate(seqs.tolist()):
            rewards[r] = cider.score(vocab.decode(seq).split(), prepared[idx[r // n]])
        rw = torch.tensor(rewards, dtype=torch.float32, device=device).view(-1, n)  # (B, n)
        baseline = (rw.sum(dim=1, keepdim=True) - rw) / (n - 1)  # mean of the other samples
        advantage = (rw - baseline).view(-1)
        with amp:
            logp = sequence_logprob(
                model,
                vocab,
                memory.repeat_interleave(n, dim=0),
                seqs,
                prefix.repeat_interleave(n, dim=0),
            )
        loss = -(advantage * logp.float()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if average is not None:
            average.update(model)
        step += 1
        if step % 10 == 0:
            log.info("scst step %d: mean reward %.3f, loss %.4f", step, rewards.mean(), loss.item())
        if step % args.eval_every == 0:
            scores = evaluate_splits(model, vocab, dev, 3)
            entry = {"step": step, "seconds": time.perf_counter() - t0, **scores}
            log.info("scst step %d dev: %s", step, json.dumps(scores))
            if scores["mean"]["CIDEr"] > best:
                best = scores["mean"]["CIDEr"]
                save_best(model, scores, "trained")
            if average is not None:
                twin = _averaged_copy(model, average)
                avg_scores = evaluate_splits(twin, vocab, dev, 3)
                entry["average"] = avg_scores
                log.info("scst step %d dev, averaged weights: %s", step, json.dumps(avg_scores))
                if avg_scores["mean"]["CIDEr"] > best:
                    best = avg_scores["mean"]["CIDEr"]
                    save_best(twin, avg_scores, f"moving average, decay {ema_decay}")
                save_file(
                    {k: v.contiguous() for k, v in average.shadow.items()},
                    str(out / AVERAGE_FILE),
                )
            history.append(entry)
            model.eval()
            save_train_state(
                state_path,
                model,
                opt,
                {
                    "step": step,
                    "seconds": time.perf_counter() - t0,
                    "history": history,
                    "start_cider": base,
                    "best": best,
                    "numpy_rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state().tolist(),
                },
            )
            (out / "scst_history.json").write_text(
                json.dumps({"start_cider": base, "history": history}, indent=1)
            )
    (out / "scst_history.json").write_text(
        json.dumps({"start_cider": base, "history": history}, indent=1)
    )
    log.info("SCST done after %d steps: best mean dev CIDEr-D %.4f", step, best)
    return 0
