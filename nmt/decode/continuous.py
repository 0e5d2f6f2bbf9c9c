"""Beam search over a changing set of sentences (continuous batching): sentences join between steps and leave once
done, so a sentence that arrives while others are being translated starts at the next step instead of waiting for
the whole batch to end.

The rules are `beam_search`'s, applied sentence by sentence: the same candidates (the top 2K), the same finishing
and stopping rules, length normalisation at each sentence's own length. Every sentence has K decoder rows from its
first step, where the K - 1 beside BOS score -inf (so the first step's candidates all extend BOS, as in
`beam_search`); its rows start at the cache position where it joined (`DecoderCache.join_`), which gives them their
own positions and hides the keys written before. A sentence's output is `beam_search`'s up to float rounding,
which a batch's composition can change anyway (the search is batch-invariant up to rounding, not bit for bit).

Sentences whose requests were given up leave at once with `drop`.

Not here: sampling, constraints, n-gram blocking, the search's attention and ensembles; `supports` says which
settings this search takes, and the others go through the batch searches.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.checkpoint import SpecialIds
from nmt.config import DecodeConfig
from nmt.decode.beam import Rules, beam_candidates, constrain_, first_active, length_penalty, max_lengths
from nmt.model.transformer import DecoderCache, Transformer

NBest = tuple[list[list[int]], list[float]]  # one source's hypotheses (ids without BOS/EOS) and scores, best first


def padded(srcs: list[list[int]], special_ids: SpecialIds, device: torch.device) -> Tensor:
    """The sources, each with EOS appended, padded into one batch [B, S] on `device`."""
    width = max(len(s) for s in srcs) + 1
    src = torch.full((len(srcs), width), special_ids.pad, dtype=torch.long)  # [B, S]
    for row, ids in enumerate(srcs):
        src[row, : len(ids) + 1] = torch.tensor(ids + [special_ids.eos])
    return src.to(device)


def supports(cfg: DecodeConfig) -> bool:
    """Whether `ContinuousSearch` takes these settings: beam or greedy search without n-gram blocking."""
    return not cfg.sampling and cfg.no_repeat_ngram == 0


@dataclass
class _Sentences:
    """The running sentences, b of them with K hypotheses each (K decoder rows, in this order in the cache)."""

    tags: list[Hashable]  # the caller's name for each sentence
    widths: list[int]  # source tokens, EOS included
    steps: Tensor  # [b] tokens emitted so far
    max_len: Tensor  # [b] longest output, EOS excluded
    scores: Tensor  # [b, K] running hypotheses' summed log-probs; -inf for none
    tokens: Tensor  # [b, K, T] their ids; column t holds the sentence's step t
    done_scores: Tensor  # [b, K] finished hypotheses' normalised scores, best first; -inf for an empty slot
    done_tokens: Tensor  # [b, K, T] their ids, EOS included
    done_lengths: Tensor  # [b, K] their lengths, EOS included

    def select(self, keep: Tensor, kept: list[int]) -> _Sentences:
        """The sentences `keep` [n] (ascending; `kept` the same on the host)."""
        return _Sentences(
            [self.tags[i] for i in kept],
            [self.widths[i] for i in kept],
            *(x[keep] for x in (self.steps, self.max_len, self.scores, self.tokens)),
            *(x[keep] for x in (self.done_scores, self.done_tokens, self.done_lengths)),
        )

    def cat(self, other: _Sentences) -> _Sentences:
        """These sentences, then `other`'s; token histories padded to the longer."""
        width = max(self.tokens.size(2), other.tokens.size(2))
        return _Sentences(
            self.tags + other.tags,
            self.widths + other.widths,
            torch.cat([self.steps, other.steps]),
            torch.cat([self.max_len, other.max_len]),
            torch.cat([self.scores, other.scores]),
            torch.cat([_widen(self.tokens, width), _widen(other.tokens, width)]),
            torch.cat([self.done_scores, other.done_scores]),
            torch.cat([_widen(self.done_tokens, width), _widen(other.done_tokens, width)]),
            torch.cat([self.done_lengths, other.done_lengths]),
        )


def _widen(tokens: Tensor, width: int) -> Tensor:
    """Token histories [b, K, T] padded with zeros to `width` columns."""
    return torch.nn.functional.pad(tokens, (0, width - tokens.size(2)))


class ContinuousSearch:
    """Beam search (beam size 1: greedy) over sentences that join with `add` between `step`s and leave when done.

    Args:
        model: the translation model, already in eval mode.
        cfg: beam size, n-best, length limits and normalisation (settings `supports` takes).
        special_ids: the ids of padding, BOS and EOS.
        device: where the tensors go.
    """

    def __init__(self, model: Transformer, cfg: DecodeConfig, special_ids: SpecialIds, device: torch.device) -> None:
        if not supports(cfg):
            raise ValueError("continuous batching takes beam or greedy search without no_repeat_ngram.")
        self.model, self.cfg, self.ids, self.device = model, cfg, special_ids, device
        self.rules = Rules.of(cfg, special_ids, device)
        # Normalisers of every length, as `length_penalty` gives them to `beam_search` (float32, like its scalars).
        lengths = range(model.cfg.max_positions + 1)
        self.penalty = torch.tensor([length_penalty(n, cfg) for n in lengths], dtype=torch.float32, device=device)
        self.running: _Sentences | None = None
        self.cache: DecoderCache | None = None
        self._steps: list[int] = []  # `running.steps` on the host
        self._max_len: list[int] = []  # `running.max_len` on the host

    @property
    def sentences(self) -> int:
        """Sentences being translated."""
        return 0 if self.running is None else len(self.running.tags)

    @property
    def width(self) -> int:
        """The longest running source, in tokens (EOS included); 0 when none runs."""
        return 0 if self.running is None else max(self.running.widths)

    @torch.inference_mode()
    def add(self, srcs: list[list[int]], tags: list[Hashable]) -> None:
        """Start translating `srcs` (ids without EOS, each non-empty) at the next step; `step` names them by `tags`."""
        if not srcs:
            return
        k = self.cfg.beam_size
        src = padded(srcs, self.ids, self.device)  # [n, S]
        pad_mask = src.eq(self.ids.pad)
        memory = self.model.encode(src, pad_mask)  # [n, S, D]
        max_len = max_lengths(pad_mask, self.cfg).clamp(max=self.model.cfg.max_positions - 1)  # [n]
        lengths = max_len.tolist()
        room = max(lengths) + 1  # the longest output and its EOS
        n = len(srcs)
        if self.cache is None:
            self.cache = self.model.start_decoding(memory, pad_mask, room, max_rows=n * k)
            self.cache.reorder_(torch.arange(n, device=self.device).repeat_interleave(k))  # K rows per sentence
        else:
            self.model.join_decoding(self.cache, memory, pad_mask, k, room)
        scores = torch.full((n, k), float("-inf"), device=self.device)
        scores[:, 0] = 0.0  # only BOS runs until the first step fans it out
        joined = _Sentences(
            list(tags),
            [len(s) + 1 for s in srcs],
            torch.zeros(n, dtype=torch.long, device=self.device),
            max_len,
            scores,
            torch.zeros(n, k, room, dtype=torch.long, device=self.device),
            torch.full((n, k), float("-inf"), device=self.device),
            torch.zeros(n, k, room, dtype=torch.long, device=self.device),
            torch.zeros(n, k, dtype=torch.long, device=self.device),
        )
        self.running = joined if self.running is None else self.running.cat(joined)
        self._steps += [0] * n
        self._max_len += lengths

    @torch.inference_mode()
    def drop(self, tags: set[Hashable]) -> None:
        """Stop translating the running sentences named in `tags` (their requests were given up); the others go on
        as before. Tags of no running sentence are ignored."""
        run, cache = self.running, self.cache
        if run is None or cache is None or not tags.intersection(run.tags):
            return
        kept = [i for i, tag in enumerate(run.tags) if tag not in tags]
        if not kept:
            self.running, self.cache, self._steps, self._max_len = None, None, [], []
            return
        k = self.cfg.beam_size
        keep = torch.tensor(kept, device=self.device)
        cache.reorder_((keep.unsqueeze(1) * k + torch.arange(k, device=self.device)).view(-1), keep)
        self.running = run.select(keep, kept)
        self._steps = [self._steps[i] for i in kept]
        self._max_len = [self._max_len[i] for i in kept]

    @torch.inference_mode()
    def step(self) -> list[tuple[Hashable, NBest]]:
        """Extend every running sentence by one token; the sentences that ended, with their n-best lists."""
        run, cache = self.running, self.cache
        if run is None or cache is None:
            return []
        b, k = run.scores.shape
        log_probs = self.model.decode_step(self._last_tokens(run), cache)  # [b*K, V]
        # Per-row limits only where some sentence is before its minimum or at its maximum length.
        early = run.steps.repeat_interleave(k) if min(self._steps) < self.rules.min_len else self.rules.min_len
        at_max = any(s >= m for s, m in zip(self._steps, self._max_len, strict=True))
        constrain_(log_probs, early, self.rules, (run.max_len <= run.steps).repeat_interleave(k) if at_max else None)
        origins, tokens, scores = beam_candidates(log_probs.view(b, k, -1), run.scores, 2 * k, self.ids.eos)  # [b, 2K]
        self._finish(run, (origins[:, :k], tokens[:, :k], scores[:, :k]))  # EOS counts only among the top K
        active = first_active(tokens, self.ids.eos, k)  # [b, K]
        origins, tokens, scores = (x.gather(1, active) for x in (origins, tokens, scores))  # [b, K]
        best = scores.max(dim=1).values / self.penalty[run.steps + 1]  # [b]
        going = (best > run.done_scores[:, -1]).tolist()
        ended = [i for i, on in enumerate(going) if not on]
        results = [(run.tags[i], self._nbest(run, i)) for i in ended]
        kept = [i for i, on in enumerate(going) if on]
        if not kept:
            self.running, self.cache, self._steps, self._max_len = None, None, [], []
            return results
        keep = torch.tensor(kept, device=self.device)
        parents = (keep.unsqueeze(1) * k + origins[keep]).view(-1)  # [n*K] rows of the b*K
        history = run.tokens.view(b * k, -1).index_select(0, parents).view(len(kept), k, -1)  # [n, K, T]
        history.scatter_(2, run.steps[keep].view(-1, 1, 1).expand(-1, k, 1), tokens[keep].unsqueeze(2))
        cache.reorder_(parents, keep if ended else None)
        self.running = run.select(keep, kept) if ended else run
        self.running.tokens, self.running.scores = history, scores[keep]
        self.running.steps = self.running.steps + 1
        self._steps = [self._steps[i] + 1 for i in kept]
        self._max_len = [self._max_len[i] for i in kept]
        return results

    def _last_tokens(self, run: _Sentences) -> Tensor:
        """Each row's input to the next step: its last token, or BOS at a sentence's first step, [b*K]."""
        b, k, _ = run.tokens.shape
        last = run.tokens.gather(2, (run.steps - 1).clamp(min=0).view(b, 1, 1).expand(b, k, 1)).view(b, k)
        return last.masked_fill((run.steps == 0).unsqueeze(1), self.ids.bos).view(b * k)

    def _finish(self, run: _Sentences, candidates: tuple[Tensor, Tensor, Tensor]) -> None:
        """Move the candidates (origins, tokens, scores [b, K]) that end in EOS to each sentence's finished ones."""
        origins, tokens, scores = candidates
        is_eos = (tokens == self.ids.eos) & (scores > float("-inf"))  # [b, K]
        if not bool(is_eos.any()):
            return
        b, k = scores.shape
        parents = (torch.arange(b, device=self.device).unsqueeze(1) * k + origins).view(-1)  # [b*K]
        history = run.tokens.view(b * k, -1).index_select(0, parents).view(b, k, -1)  # [b, K, T]
        history.scatter_(2, run.steps.view(b, 1, 1).expand(b, k, 1), tokens.unsqueeze(2))
        normalised = (scores / self.penalty[run.steps + 1].unsqueeze(1)).masked_fill(~is_eos, float("-inf"))
        merged = torch.cat([run.done_scores, normalised], dim=1)  # [b, 2K]
        run.done_scores, pick = merged.topk(k, dim=1)  # [b, K]
        lengths = torch.cat([run.done_lengths, (run.steps + 1).unsqueeze(1).expand(b, k)], dim=1)
        run.done_lengths = lengths.gather(1, pick)
        both = torch.cat([run.done_tokens, history], dim=1)  # [b, 2K, T]
        run.done_tokens = both.gather(1, pick.unsqueeze(2).expand(b, k, both.size(2)))

    def _nbest(self, run: _Sentences, i: int) -> NBest:
        """Sentence `i`'s `n_best` best finished hypotheses (ids without EOS) and scores, best first."""
        scores = run.done_scores[i, : self.cfg.n_best].tolist()
        lengths, tokens = run.done_lengths[i].tolist(), run.done_tokens[i].tolist()
        found = [j for j, score in enumerate(scores) if math.isfinite(score)]
        return [tokens[j][: lengths[j] - 1] for j in found], [scores[j] for j in found]
