"""Beam search over a changing set of sentences (continuous batching): sentences join between steps and leave once
done, so a sentence that arrives while others are being translated starts at the next step instead of waiting for
the whole batch to end.

The rules are `beam_search`'s, applied sentence by sentence: the same candidates (the top 2K), the same finishing
and stopping rules, length normalisation at each sentence's own length. Every sentence has K decoder rows from its
first step, where the K - 1 beside BOS score -inf (so the first step's candidates all extend BOS, as in
`beam_search`); its rows start at the cache position where it joined (`DecoderCache.join_`), which gives them their
own positions and hides the keys written before. A sentence's output is `beam_search`'s up to float rounding,
which a batch's composition can change anyway (the search is batch-invariant up to rounding, not bit for bit).

Sentences whose requests were given up leave at once with `drop`. A search made with `attn_layer` keeps, for the
sentences that ask for it, the cross-attention their search computed (as `TorchEngine.translate_ids_attending`
gives it): while any such sentence runs, every step keeps that layer's attention, and the others' outputs are the
same as without it.

Not here: sampling, constraints, n-gram blocking and ensembles; `supports` says which settings this search takes,
and the others go through the batch searches.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nmt.checkpoint import SpecialIds
from nmt.config import DecodeConfig
from nmt.decode.beam import Rules, beam_candidates, constrain_, first_active, length_penalty, max_lengths
from nmt.model.transformer import DecoderCache, Transformer

NBest = tuple[list[list[int]], list[float]]  # one source's hypotheses (ids without BOS/EOS) and scores, best first
Ended = tuple[Hashable, NBest, list[Tensor] | None]  # a sentence that ended: its tag, n-best list and attention


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
    attends: list[bool]  # whether each sentence's attention is kept
    attn: Tensor | None = None  # [b, K, T, S] running hypotheses' cross-attention, while any sentence attends
    done_attn: Tensor | None = None  # [b, K, T, S] finished hypotheses' cross-attention, likewise

    def select(self, keep: Tensor, kept: list[int]) -> _Sentences:
        """The sentences `keep` [n] (ascending; `kept` the same on the host); attention histories only while one
        of them attends."""
        attends = [self.attends[i] for i in kept]
        attention = (self.attn, self.done_attn) if any(attends) else (None, None)
        return _Sentences(
            [self.tags[i] for i in kept],
            [self.widths[i] for i in kept],
            *(x[keep] for x in (self.steps, self.max_len, self.scores, self.tokens)),
            *(x[keep] for x in (self.done_scores, self.done_tokens, self.done_lengths)),
            attends,
            *(None if x is None else x[keep] for x in attention),
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
            self.attends + other.attends,
            *_cat_attention(self, other, width),
        )

    def keep_attention(self, width: int) -> None:
        """Start keeping attention histories over `width` source positions (zeros so far), unless kept already."""
        if self.attn is None:
            b, k, t = self.tokens.shape
            self.attn, self.done_attn = (self.tokens.new_zeros(b, k, t, width, dtype=torch.float32) for _ in range(2))


def _widen(tokens: Tensor, width: int) -> Tensor:
    """Token histories [b, K, T] padded with zeros to `width` columns."""
    return torch.nn.functional.pad(tokens, (0, width - tokens.size(2)))


def _cat_attention(first: _Sentences, second: _Sentences, columns: int) -> tuple[Tensor | None, Tensor | None]:
    """The attention histories of both groups of sentences, one after the other ([b, K, `columns`, S] each, S the
    wider of the two); None where neither keeps any."""
    if first.attn is None and second.attn is None:
        return None, None
    width = max(x.attn.size(3) for x in (first, second) if x.attn is not None)
    for group in (first, second):
        group.keep_attention(width)
    pad = [(0, width - x.attn.size(3), 0, columns - x.attn.size(2)) for x in (first, second)]
    return tuple(
        torch.cat([F.pad(getattr(first, name), pad[0]), F.pad(getattr(second, name), pad[1])])
        for name in ("attn", "done_attn")
    )


def _fit(step_attn: Tensor, run: _Sentences) -> Tensor:
    """This step's attention [b, K, S'] padded to the histories' S columns (the memories may have been cut since
    they were widened; the cut columns are padding for every running source), which widen where S' > S."""
    assert run.attn is not None and run.done_attn is not None
    width = run.attn.size(3)
    if step_attn.size(2) > width:
        run.attn, run.done_attn = (F.pad(x, (0, step_attn.size(2) - width)) for x in (run.attn, run.done_attn))
        return step_attn
    return F.pad(step_attn, (0, width - step_attn.size(2)))


class ContinuousSearch:
    """Beam search (beam size 1: greedy) over sentences that join with `add` between `step`s and leave when done.

    Args:
        model: the translation model, already in eval mode.
        cfg: beam size, n-best, length limits and normalisation (settings `supports` takes).
        special_ids: the ids of padding, BOS and EOS.
        device: where the tensors go.
        attn_layer: the decoder layer whose cross-attention (mean over heads) the sentences added with `attend`
            get; None: no sentence may ask for it.
    """

    def __init__(
        self,
        model: Transformer,
        cfg: DecodeConfig,
        special_ids: SpecialIds,
        device: torch.device,
        attn_layer: int | None = None,
    ) -> None:
        if not supports(cfg):
            raise ValueError("continuous batching takes beam or greedy search without no_repeat_ngram.")
        self.model, self.cfg, self.ids, self.device = model, cfg, special_ids, device
        self.attn_layer = attn_layer
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
    def add(self, srcs: list[list[int]], tags: list[Hashable], attend: list[bool] | None = None) -> None:
        """Start translating `srcs` (ids without EOS, each non-empty) at the next step; `step` names them by `tags`
        and gives the attention of those `attend` flags.

        Raises:
            ValueError: a sentence asks for attention from a search made without `attn_layer`.
        """
        if not srcs:
            return
        attends = [False] * len(srcs) if attend is None else list(attend)
        if any(attends) and self.attn_layer is None:
            raise ValueError("this search keeps no attention: make it with `attn_layer`.")
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
            attends,
        )
        if any(attends):
            joined.keep_attention(src.size(1))
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
    def step(self) -> list[Ended]:
        """Extend every running sentence by one token; the sentences that ended, with their n-best lists and, for
        those added with `attend`, each hypothesis's attention [len + 1, S + 1] (rows its ids then EOS, columns the
        source then EOS)."""
        run, cache = self.running, self.cache
        if run is None or cache is None:
            return []
        b, k = run.scores.shape
        attending = run.attn is not None
        layer = -1 if self.attn_layer is None else self.attn_layer
        log_probs = self.model.decode_step(self._last_tokens(run), cache, attending, layer)  # [b*K, V]
        step_attn = _fit(cache.cross_attn.float().view(b, k, -1), run) if attending else None  # [b, K, S]
        # Per-row limits only where some sentence is before its minimum or at its maximum length.
        early = run.steps.repeat_interleave(k) if min(self._steps) < self.rules.min_len else self.rules.min_len
        at_max = any(s >= m for s, m in zip(self._steps, self._max_len, strict=True))
        constrain_(log_probs, early, self.rules, (run.max_len <= run.steps).repeat_interleave(k) if at_max else None)
        origins, tokens, scores = beam_candidates(log_probs.view(b, k, -1), run.scores, 2 * k, self.ids.eos)  # [b, 2K]
        self._finish(run, (origins[:, :k], tokens[:, :k], scores[:, :k]), step_attn)  # EOS only among the top K
        active = first_active(tokens, self.ids.eos, k)  # [b, K]
        origins, tokens, scores = (x.gather(1, active) for x in (origins, tokens, scores))  # [b, K]
        best = scores.max(dim=1).values / self.penalty[run.steps + 1]  # [b]
        going = (best > run.done_scores[:, -1]).tolist()
        ended = [i for i, on in enumerate(going) if not on]
        results = [(run.tags[i], *self._nbest(run, i)) for i in ended]
        kept = [i for i, on in enumerate(going) if on]
        if not kept:
            self.running, self.cache, self._steps, self._max_len = None, None, [], []
            return results
        keep = torch.tensor(kept, device=self.device)
        parents = (keep.unsqueeze(1) * k + origins[keep]).view(-1)  # [n*K] rows of the b*K
        history = run.tokens.view(b * k, -1).index_select(0, parents).view(len(kept), k, -1)  # [n, K, T]
        history.scatter_(2, run.steps[keep].view(-1, 1, 1).expand(-1, k, 1), tokens[keep].unsqueeze(2))
        attn = None if step_attn is None else _extended(run.attn, parents, run.steps[keep], step_attn)
        run.attn = None  # replaced by `attn`, already of the kept sentences: `select` need not copy it
        cache.reorder_(parents, keep if ended else None)
        self.running = run.select(keep, kept) if ended else run
        self.running.tokens, self.running.scores = history, scores[keep]
        if self.running.done_attn is not None:  # some kept sentence attends
            self.running.attn = attn
        self.running.steps = self.running.steps + 1
        self._steps = [self._steps[i] + 1 for i in kept]
        self._max_len = [self._max_len[i] for i in kept]
        return results

    def _last_tokens(self, run: _Sentences) -> Tensor:
        """Each row's input to the next step: its last token, or BOS at a sentence's first step, [b*K]."""
        b, k, _ = run.tokens.shape
        last = run.tokens.gather(2, (run.steps - 1).clamp(min=0).view(b, 1, 1).expand(b, k, 1)).view(b, k)
        return last.masked_fill((run.steps == 0).unsqueeze(1), self.ids.bos).view(b * k)

    def _finish(
        self, run: _Sentences, candidates: tuple[Tensor, Tensor, Tensor], step_attn: Tensor | None = None
    ) -> None:
        """Move the candidates (origins, tokens, scores [b, K]) that end in EOS to each sentence's finished ones
        (with their attention histories, given this step's attention [b, K, S])."""
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
        if step_attn is not None and run.attn is not None and run.done_attn is not None:
            extended = _extended(run.attn, parents, run.steps, step_attn)  # [b, K, T, S]
            attn = torch.cat([run.done_attn, extended], dim=1)  # [b, 2K, T, S]
            run.done_attn = attn.gather(1, pick.view(b, k, 1, 1).expand(b, k, *attn.shape[2:]))

    def _nbest(self, run: _Sentences, i: int) -> tuple[NBest, list[Tensor] | None]:
        """Sentence `i`'s `n_best` best finished hypotheses (ids without EOS) and scores, best first, and their
        attention where it asked for it."""
        scores = run.done_scores[i, : self.cfg.n_best].tolist()
        lengths, tokens = run.done_lengths[i].tolist(), run.done_tokens[i].tolist()
        found = [j for j, score in enumerate(scores) if math.isfinite(score)]
        nbest = [tokens[j][: lengths[j] - 1] for j in found], [scores[j] for j in found]
        if not run.attends[i] or run.done_attn is None:
            return nbest, None
        attn = run.done_attn[i, found, :, : run.widths[i]].cpu()  # [n, T, S + 1], one copy to the host
        return nbest, [attn[n, : lengths[j]] for n, j in enumerate(found)]


def _extended(attn: Tensor, parents: Tensor, steps: Tensor, step_attn: Tensor) -> Tensor:
    """The attention histories [b, K, T, S] of the hypotheses `parents` [n*K] (rows of the b*K), each with this
    step's attention [b, K, S] of its parent in its sentence's column `steps` [n]: [n, K, T, S]."""
    b, k, t, s = attn.shape
    history = attn.view(b * k, t, s).index_select(0, parents).view(-1, k, t, s)  # [n, K, T, S]
    now = step_attn.reshape(b * k, s).index_select(0, parents).view(-1, k, 1, s)  # [n, K, 1, S]
    history.scatter_(2, steps.view(-1, 1, 1, 1).expand(-1, k, 1, s), now)
    return history
