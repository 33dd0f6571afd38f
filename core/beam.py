"""Generation: length-normalised beam search over the caption model's decoder, with its cache."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace

import torch

from core.datatypes import Candidate, CaptionSettings
from core.errors import Cancelled
from core.model import CaptionModel, DecoderCache
from core.vocab import Vocab


@dataclass(frozen=True)
class _Hyp:
    tokens: list[int] = field(default_factory=list)
    logp: float = 0.0
    min_logp: float = 0.0  # of the least likely token so far
    max_entropy: float = 0.0  # of the next-token distribution, over the steps so far


# A photo's next beam: the hypothesis, the cache row it continues, the token it feeds next.
_Next = tuple[_Hyp, int, int]


@torch.inference_mode()
def beam_search(
    model: CaptionModel,
    vocab: Vocab,
    memory: torch.Tensor,
    settings: CaptionSettings = CaptionSettings(),
    cancel: threading.Event | None = None,
    style: str | None = None,
    tag_words: torch.Tensor | None = None,
) -> list[list[Candidate]]:
    """Length-normalised beam search with a key/value cache; beam 1 is greedy decoding.

    memory: (B, 49, C) encoded photos. style: the caption style token put after <start>
    (None: the model's own default). tag_words: (B, k), for a model that copies tag words
    (CaptionModel.copy_words). Returns per photo its candidates, best first.
    """
    return BeamSearch(model, vocab, memory, settings, style, tag_words).run(cancel)


class BeamSearch:
    """One batch's search: k live hypotheses per photo, the decoder cache (A x k rows for the
    A photos still decoding), and the finished hypotheses with their normalised scores."""

    def __init__(
        self,
        model: CaptionModel,
        vocab: Vocab,
        memory: torch.Tensor,
        settings: CaptionSettings,
        style: str | None,
        tag_words: torch.Tensor | None = None,
    ) -> None:
        self.model, self.vocab, self.settings = model, vocab, settings
        self.device = device = memory.device
        self.k = k = settings.beam_size
        self.prefix = vocab.prefix(model.cfg.style if style is None else style)
        self.max_steps = min(settings.max_tokens, model.cfg.max_len) - len(self.prefix)
        B = memory.shape[0]
        self.photos = B
        self.cache: DecoderCache = model.start_cache(memory, tag_words)  # a row serves k beams
        for t in self.prefix[:-1]:  # forced tokens: only the cache matters
            token = torch.full((B * k,), t, dtype=torch.long, device=device)
            _, self.cache = model.step(token, self.cache)
        self.beams: list[list[_Hyp]] = [[_Hyp()] for _ in range(B)]  # live hypotheses per photo
        self.finished: list[list[tuple[float, _Hyp]]] = [[] for _ in range(B)]
        self.active = list(range(B))  # photos still decoding; cache rows are active x k
        self.token = torch.full((B * k,), self.prefix[-1], dtype=torch.long, device=device)
        self.banned = torch.tensor(vocab.not_words, dtype=torch.long, device=device)

    def run(self, cancel: threading.Event | None = None) -> list[list[Candidate]]:
        for step in range(self.max_steps):
            if cancel is not None and cancel.is_set():
                raise Cancelled
            logp, self.cache = self.model.step(self.token, self.cache)  # (A*k, V)
            entropy = (-(logp.exp() * logp).nansum(1)).tolist()  # 0 * -inf counts 0
            logp.index_fill_(1, self.banned, -math.inf)
            if step == self.max_steps - 1:  # out of room: only <end> may follow
                end_only = torch.full_like(logp, -math.inf)
                end_only[:, self.vocab.end_id] = logp[:, self.vocab.end_id]
                logp = end_only
            if not self._advance(logp, entropy):
                break
        return with_blank_scores(self.model, self.vocab, self._candidates(), self.prefix)

    def _advance(self, logp: torch.Tensor, entropy: list[float]) -> bool:
        """Extend every active photo's beams by one token; False when all have finished."""
        k, A, V = self.k, len(self.active), logp.shape[1]
        live = torch.tensor(
            [
                [h.logp for h in self.beams[img]] + [-math.inf] * (k - len(self.beams[img]))
                for img in self.active
            ],
            device=logp.device,
        )  # (A, k) running log-probabilities
        total = (live.unsqueeze(-1) + logp.view(A, k, V)).view(A, k * V)
        top_scores, top_idx = total.topk(min(2 * k, k * V), dim=1)  # (A, 2k)
        top_scores, top_idx = top_scores.tolist(), top_idx.tolist()
        queued: list[_Next] = []
        still_active = []
        for row, img in enumerate(self.active):
            new = self._extend(row, img, top_scores[row], top_idx[row], entropy, V)
            if new:
                self.beams[img] = [hyp for hyp, _, _ in new]
                queued += new
                still_active.append(img)
        if not still_active:
            return False
        photos = None
        if len(still_active) < A:  # finished photos leave the memory too
            keep = set(still_active)
            rows = [i for i, img in enumerate(self.active) if img in keep]
            photos = torch.tensor(rows, dtype=torch.long, device=self.device)
        self.active = still_active
        index = torch.tensor([r for _, r, _ in queued], dtype=torch.long, device=self.device)
        self.cache = self.cache.reorder(index, photos)
        self.token = torch.tensor([t for _, _, t in queued], dtype=torch.long, device=self.device)
        return True

    def _extend(
        self,
        row: int,
        img: int,
        scores: list[float],
        indices: list[int],
        entropy: list[float],
        vocab_size: int,
    ) -> list[_Next]:
        """One photo's k next beams from its best 2k continuations; [] once it has finished
        (k hypotheses ended, or nothing left alive)."""
        k, finished, end_id = self.k, self.finished[img], self.vocab.end_id
        new: list[_Next] = []
        for score, idx in zip(scores, indices, strict=True):
            if score == -math.inf:
                break
            j, tok = divmod(idx, vocab_size)
            parent = self.beams[img][j]
            hyp = _Hyp(
                tokens=parent.tokens + [tok],
                logp=score,
                min_logp=min(parent.min_logp, score - parent.logp),
                max_entropy=max(parent.max_entropy, entropy[row * k + j]),
            )
            if tok == end_id:
                finished.append((score / (len(hyp.tokens) ** self.settings.length_penalty), hyp))
            else:
                new.append((hyp, row * k + j, tok))
            if len(new) == k or len(finished) >= k:
                break
        if len(finished) >= k or not new:
            return []
        while len(new) < k:  # pad to k rows with dead beams (score -inf)
            dead = _Hyp(tokens=new[0][0].tokens, logp=-math.inf, min_logp=-math.inf)
            new.append((dead, row * k, self.vocab.pad_id))
        return new

    def _candidates(self) -> list[list[Candidate]]:
        """Per photo, its finished captions best first, each text once, at most n_candidates."""
        results = []
        for img in range(self.photos):
            ranked = sorted(self.finished[img], key=lambda t: -t[0])
            seen: set[str] = set()
            cands = []
            for score, hyp in ranked:
                text = self.vocab.decode(hyp.tokens)
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
            results.append(cands[: max(1, min(self.settings.n_candidates, self.k))])
        return results


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
    zeros = torch.zeros(1, model.cfg.n_image_tokens, model.cfg.feature_dim, device=device)
    blank = model.encode_features(zeros)  # (1, 49, C)
    logits = model.decode(
        tokens[:, :-1],
        blank,
        photo_index=torch.zeros(len(seqs), dtype=torch.long, device=device),
        tag_words=model.copy_words(zeros),
    )
    logp = torch.log_softmax(logits.float(), dim=-1).gather(2, tokens[:, 1:, None])[
        ..., 0
    ]  # (N, T-1)
    mask = tokens[:, 1:] != vocab.pad_id
    mask[:, : len(prefix) - 1] = False  # forced style token: not the caption's own
    scores = ((logp * mask).sum(1) / mask.sum(1)).tolist()
    it = iter(scores)
    return [[replace(c, blank_score=float(next(it))) for c in cands] for cands in results]
