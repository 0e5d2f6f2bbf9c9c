"""Greedy search and batched beam search over `Transformer.decode_step`, and the search loop's parts that
sampling (`nmt.decode.sampling`) and constrained search (`nmt.decode.constrained`) reuse.

Both advance the whole batch, and all K hypotheses of each sentence, with one
`decode_step` per time step, and drop a sentence from the running batch once it
is done. They run under `torch.inference_mode()` but never change the model's mode:
call `model.eval()` first, or dropout stays on.

Scores are summed token log-probs, EOS included, divided by
`length_penalty(len(ids) + 1, cfg)`. Beam search keeps fairseq's candidate rule
(take the top 2K extensions; the EOS ones among the top K are finished, the best
K others stay active). Its stopping rule is not fairseq's (which ends a sentence
as soon as K hypotheses are finished) but that of Hugging Face's `early_stopping=False`:
a sentence is done once it holds K finished hypotheses and no active one, normalised
at its current length, beats the worst of them. The rule is exact for
`length_norm=none` (an active score only falls); with `gnmt` or `average` a longer
hypothesis could still overtake, which the rule accepts for speed. A sentence also ends at its maximum length,
where only EOS is allowed, so every active hypothesis is finished there.

The search owns the per-sentence state (`_Running`) and drives the model's cache as plain
data: the K hypotheses of a sentence are K consecutive decoder rows reading one source,
so the encoder memory is projected once per sentence, and the cache is reordered only
when beams move or sentences end. Per step the host waits on the device twice: whether any
candidate ended (to skip the finishing work) and which sentences go on (the next shapes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from nmt.checkpoint import SpecialIds
from nmt.config import DecodeConfig
from nmt.decode.beam import (
    Rules,
    beam_candidates,
    constrain_,
    first_active,
    length_penalty,
    max_lengths,
    row_max,
)

# Where the cache stays in place (greedy search, sampling), ended sentences leave the running batch once they are
# this share of it: dropping rows copies the whole cache, at every step where one ends (in greedy search most late
# steps), while an ended row left in only runs through the model once more per step. A quarter was the fastest
# share measured (docs/engines.md, "Compacting finished sentences").
COMPACT_AT = 0.25

if TYPE_CHECKING:
    from nmt.model.transformer import DecoderCache, Transformer


@dataclass
class SearchResult:
    """Best hypotheses per sentence, best first.

    `tokens[b][i]` holds output ids without BOS/EOS, `scores[b][i]` its normalised
    score, and `attn[b][i]` (when requested) the cross-attention [len + 1, S_b] with
    which each of those ids, then EOS, was emitted, over the sentence's S_b non-pad source positions
    (row t + 1 is the step where id t is the decoder's input: shift-attention reads it).
    `met[b][i]` is False where a hypothesis ended at its length limit without all its positive
    constraints (`nmt.decode.constraints`); always True without constraints.
    """

    tokens: list[list[list[int]]]
    scores: list[list[float]]
    attn: list[list[Tensor]] | None
    met: list[list[bool]] = field(default_factory=list)

    @staticmethod
    def gathered(parts: list[tuple[list[int], SearchResult]]) -> SearchResult:
        """One result from the results of disjoint groups of a batch's sentences, each given with the batch
        positions of its sentences (together, every position once)."""
        order = sorted((b, part, i) for rows, part in parts for i, b in enumerate(rows))
        with_attn = all(part.attn is not None for _, part in parts)
        return SearchResult(
            [part.tokens[i] for _, part, i in order],
            [part.scores[i] for _, part, i in order],
            [part.attn[i] for _, part, i in order] if with_attn else None,  # type: ignore[index]
            [part.met[i] for _, part, i in order],
        )


@dataclass
class _Running:
    """Hypotheses of the sentences still being searched: b sentences, W each, as b*W decoder rows.

    W is 1 at the first step (every hypothesis is BOS alone), then the beam size K.
    """

    rows: Tensor  # [b] batch index of each running sentence
    scores: Tensor  # [b, W] summed log-probs, unnormalised
    tokens: Tensor  # [b, W, T] emitted ids; column t is filled at step t
    attn: Tensor | None  # [b, W, T, S] cross-attention of each emitted id
    max_len: Tensor  # [b] longest output of each sentence
    shortest: int  # the least of `max_len`: before this step no hypothesis is at its maximum
    cache: DecoderCache
    kept: Tensor | None = None  # the rows of the previous step these continue, when some were dropped

    def extend(
        self, parents: Tensor, step: int, tokens: Tensor, step_attn: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """Histories of the hypotheses `parents` (rows of b*W), each extended by one token.

        Args:
            parents: the hypotheses to extend, [n*K] indices into the b*W running ones.
            step: the column to write.
            tokens: the new tokens, [n, K].
            step_attn: this step's cross-attention of all running hypotheses, [b, W, S], or None.

        Returns:
            token histories [n, K, T] and attention histories [n, K, T, S] (or None).
        """
        b, w, t = self.tokens.shape
        k = tokens.size(1)
        history = self.tokens.view(b * w, t).index_select(0, parents).view(-1, k, t)  # [n, K, T]
        history[:, :, step] = tokens
        if self.attn is None or step_attn is None:
            return history, None
        s = self.attn.size(3)
        attn = self.attn.view(b * w, t, s).index_select(0, parents).view(-1, k, t, s)  # [n, K, T, S]
        attn[:, :, step] = step_attn.view(b * w, s).index_select(0, parents).view(-1, k, s)
        return history, attn

    def advance(
        self,
        keep: Tensor,
        step: int,
        candidates: tuple[Tensor, Tensor, Tensor],
        step_attn: Tensor | None,
        moved: bool = True,
    ) -> _Running:
        """Go on with the sentences `keep` [n] (ascending), each with its K extensions (origins, tokens, scores [b, K]).

        `moved=False` says every hypothesis extends the one in its own row (greedy search, and sampling after
        the first step), so the cache needs no reordering: then ended sentences leave the batch only once they
        are `COMPACT_AT` of it, and until then their rows run on with -inf scores, which no rule finishes or
        keeps. Where beams move, the cache is copied anyway and ended sentences leave at once.
        """
        origins, tokens, scores = candidates
        b, w = self.scores.shape
        ended = b - keep.numel()
        fanned = moved and origins.size(1) > 1  # beams move, or one hypothesis fans out to K
        kept = keep if ended and (fanned or ended >= COMPACT_AT * b) else None
        if ended and kept is None:  # every row stays, the ended ones scoring -inf
            ends = torch.ones(b, dtype=torch.bool, device=keep.device).index_fill_(0, keep, False)
            scores = scores.masked_fill(ends.unsqueeze(1), float("-inf"))
        if kept is None and not fanned:  # each row extends itself: write the new column in place
            history, attn = self.tokens, self.attn
            history[:, :, step] = tokens
            if attn is not None and step_attn is not None:
                attn[:, :, step] = step_attn
        else:
            rows = torch.arange(b, device=keep.device) if kept is None else kept
            parents = (rows.unsqueeze(1) * w + origins[rows]).view(-1)  # [n, 1] + [n, K] -> [n*K]
            history, attn = self.extend(parents, step, tokens[rows], step_attn)
            self.cache.reorder_(parents, kept)
        max_len = self.max_len if kept is None else self.max_len[kept]
        return _Running(
            rows=self.rows if kept is None else self.rows[kept],
            scores=scores if kept is None else scores[kept],
            tokens=history,
            attn=attn,
            max_len=max_len,
            shortest=self.shortest if kept is None else int(max_len.min()),
            cache=self.cache,
            kept=kept,
        )


@dataclass
class _Finished:
    """The best N finished hypotheses of every sentence, best first; -inf scores mark empty slots."""

    scores: Tensor  # [B, N] normalised
    tokens: Tensor  # [B, N, T] ids, EOS included
    lengths: Tensor  # [B, N] ids, EOS included
    attn: Tensor | None  # [B, N, T, S]
    met: Tensor | None = None  # [B, N] all positive constraints met; None: searched without constraints

    def add(
        self, rows: Tensor, scores: Tensor, tokens: Tensor, length: int, attn: Tensor | None, met: Tensor | None = None
    ) -> None:
        """Merge C hypotheses of `length` tokens for each sentence in `rows` [b], scored [b, C].

        With constraints (`met` [b, C]), hypotheses that meet them all rank before those that do not."""
        n = self.scores.size(1)
        merged = torch.cat([self.scores[rows], scores], dim=1)  # [b, N + C]
        if self.met is not None and met is not None:
            both = torch.cat([self.met[rows], met], dim=1)  # [b, N + C]
            _, pick = torch.where(both, merged, merged - 1e9).topk(n, dim=1)  # [b, N]
            best = merged.gather(1, pick)
            self.met[rows] = both.gather(1, pick)
        else:
            best, pick = merged.topk(n, dim=1)  # [b, N + C] -> [b, N]
        lengths = torch.full_like(scores, length, dtype=torch.long)  # [b, C]
        self.scores[rows] = best
        self.lengths[rows] = torch.cat([self.lengths[rows], lengths], dim=1).gather(1, pick)
        self.tokens[rows] = _take(torch.cat([self.tokens[rows], tokens], dim=1), pick)
        if self.attn is not None and attn is not None:
            self.attn[rows] = _take(torch.cat([self.attn[rows], attn], dim=1), pick)

    def result(self, n_best: int, src_pad_mask: Tensor) -> SearchResult:
        """The `n_best` best hypotheses per sentence as lists, without BOS/EOS and empty slots."""
        tokens: list[list[list[int]]] = []
        scores: list[list[float]] = []
        attn: list[list[Tensor]] = []
        met = self.met if self.met is not None else torch.ones_like(self.lengths, dtype=torch.bool)  # [B, N]
        rows = zip(
            self.scores[:, :n_best].tolist(), self.lengths.tolist(), self.tokens.tolist(), met.tolist(), strict=True
        )
        met_lists: list[list[bool]] = []
        for b, (row_scores, row_lengths, row_tokens, row_met) in enumerate(rows):
            found = [i for i, score in enumerate(row_scores) if math.isfinite(score)]
            tokens.append([row_tokens[i][: row_lengths[i] - 1] for i in found])
            scores.append([row_scores[i] for i in found])
            met_lists.append([row_met[i] for i in found])
            if self.attn is not None:
                source = ~src_pad_mask[b]  # [S]
                attn.append([self.attn[b, i, : row_lengths[i]][:, source] for i in found])
        return SearchResult(tokens, scores, attn if self.attn is not None else None, met_lists)


def _take(values: Tensor, pick: Tensor) -> Tensor:
    """`values[b, pick[b, j]]` for every b and j: [b, M, ...] by [b, N] -> [b, N, ...]."""
    return values[torch.arange(values.size(0), device=values.device).unsqueeze(1), pick]


def _start(
    model: Transformer, src: Tensor, src_pad_mask: Tensor, cfg: DecodeConfig, k: int, attn_layer: int | None
) -> tuple[_Running, _Finished]:
    """Encode the batch once and set up one hypothesis (BOS) and K finished slots per sentence."""
    memory = model.encode(src, src_pad_mask)  # [B, S, D]
    batch, src_len = src.shape
    # Decoder positions run 0..max_len (BOS, then the ids before EOS).
    max_len = max_lengths(src_pad_mask, cfg).clamp(max=model.cfg.max_positions - 1)  # [B]
    t = int(max_len.max()) + 1 if batch else 0  # room for the longest output and its EOS
    attn = torch.zeros(batch, 1, t, src_len, device=src.device) if attn_layer is not None else None
    running = _Running(
        rows=torch.arange(batch, device=src.device),
        scores=torch.zeros(batch, 1, device=src.device),
        tokens=torch.zeros(batch, 1, t, dtype=torch.long, device=src.device),
        attn=attn,
        max_len=max_len,
        shortest=int(max_len.min()) if batch else 0,
        cache=model.start_decoding(memory, src_pad_mask, t, max_rows=batch * k),  # fans out to K after step 0
    )
    finished = _Finished(
        scores=torch.full((batch, k), float("-inf"), device=src.device),
        tokens=torch.zeros(batch, k, t, dtype=torch.long, device=src.device),
        lengths=torch.zeros(batch, k, dtype=torch.long, device=src.device),
        attn=torch.zeros(batch, k, t, src_len, device=src.device) if attn_layer is not None else None,
    )
    return running, finished


def _next_log_probs(
    model: Transformer, running: _Running, step: int, rules: Rules, bos_id: int, attn_layer: int | None
) -> tuple[Tensor, Tensor | None]:
    """Run one decoder step for every running hypothesis (advancing its cache) and apply the search rules.

    Returns:
        constrained log-probs [b, W, V] and cross-attention [b, W, S] (or None).
    """
    b, w, _ = running.tokens.shape
    if step:
        last = running.tokens[:, :, step - 1].reshape(b * w)  # [b, W] -> [b*W]
    else:
        last = torch.full((b * w,), bos_id, device=running.tokens.device)
    need_attn = attn_layer is not None
    log_probs = model.decode_step(last, running.cache, need_attn, attn_layer if need_attn else -1)  # [b*W, V]
    at_max = (running.max_len <= step).repeat_interleave(w) if step >= running.shortest else None  # [b*W]
    history = running.tokens[:, :, :step].reshape(b * w, step) if rules.no_repeat_ngram else None
    constrain_(log_probs, step, rules, at_max, history)
    step_attn = running.cache.cross_attn.view(b, w, -1) if need_attn else None  # [b*W, S] -> [b, W, S]
    return log_probs.view(b, w, -1), step_attn  # [b*W, V] -> [b, W, V]


def _finish(
    finished: _Finished,
    running: _Running,
    step: int,
    candidates: tuple[Tensor, Tensor, Tensor],
    step_attn: Tensor | None,
    cfg: DecodeConfig,
    eos_id: int,
    met: Tensor | None = None,
) -> None:
    """Move the candidates (origins, tokens, scores [b, K]) that end in EOS to the finished set.

    `met` [b, K]: whether each candidate meets all its positive constraints (constrained search only)."""
    origins, tokens, scores = candidates
    is_eos = (tokens == eos_id) & (scores > float("-inf"))  # [b, K]; the rows of ended sentences score -inf
    if not bool(is_eos.any()):
        return
    b, w = running.scores.shape
    parents = (torch.arange(b, device=origins.device).unsqueeze(1) * w + origins).view(-1)  # [b*K]
    history, attn = running.extend(parents, step, tokens, step_attn)
    normalised = (scores / length_penalty(step + 1, cfg)).masked_fill(~is_eos, float("-inf"))
    finished.add(running.rows, normalised, history, step + 1, attn, met)


def greedy_search(
    model: Transformer,
    src: Tensor,
    src_pad_mask: Tensor,
    cfg: DecodeConfig,
    bos_id: int,
    eos_id: int,
    attn_layer: int | None = None,
) -> SearchResult:
    """Translate a batch by taking the most probable token at every step (`cfg.beam_size` is ignored).

    Args:
        model: the translation model, already in eval mode.
        src: source ids, [B, S].
        src_pad_mask: True at source padding, [B, S].
        cfg: length limits, length normalisation and n-gram blocking (`n_best` is 1 here).
        bos_id: begin-of-sentence id fed at the first step.
        eos_id: end-of-sentence id.
        attn_layer: also return each output's cross-attention in this decoder layer (mean over heads).

    Returns:
        one hypothesis per sentence.
    """
    with torch.inference_mode():
        rules = Rules.of(cfg, SpecialIds(pad=model.pad_id, bos=bos_id, eos=eos_id), src.device)
        running, finished = _start(model, src, src_pad_mask, cfg, 1, attn_layer)
        for step in range(finished.tokens.size(2)):
            log_probs, step_attn = _next_log_probs(model, running, step, rules, bos_id, attn_layer)
            # `beam_step`'s ranking (running score + log-prob) in one pass: the same token and, as adding the
            # running score rounds monotonically, the same score bit for bit, so beam size 1 matches.
            best, token = row_max(log_probs.squeeze(1))  # [b, 1, V] -> [b]
            candidates = (torch.zeros_like(token).unsqueeze(1), token.unsqueeze(1), running.scores + best.unsqueeze(1))
            _finish(finished, running, step, candidates, step_attn, cfg, eos_id)
            keep = ((token != eos_id) & (candidates[2][:, 0] > float("-inf"))).nonzero().squeeze(1)  # [n]
            if keep.numel() == 0:
                break
            running = running.advance(keep, step, candidates, step_attn)
        return finished.result(1, src_pad_mask)


def beam_search(
    model: Transformer,
    src: Tensor,
    src_pad_mask: Tensor,
    cfg: DecodeConfig,
    bos_id: int,
    eos_id: int,
    attn_layer: int | None = None,
) -> SearchResult:
    """Translate a batch with beam search, keeping `cfg.beam_size` hypotheses per sentence.

    Args:
        model: the translation model, already in eval mode.
        src: source ids, [B, S].
        src_pad_mask: True at source padding, [B, S].
        cfg: beam size, n-best, length limits, length normalisation and n-gram blocking.
        bos_id: begin-of-sentence id fed at the first step.
        eos_id: end-of-sentence id.
        attn_layer: also return each output's cross-attention in this decoder layer (mean over heads).

    Returns:
        up to `cfg.n_best` distinct hypotheses per sentence, best first.
    """
    k = cfg.beam_size
    with torch.inference_mode():
        rules = Rules.of(cfg, SpecialIds(pad=model.pad_id, bos=bos_id, eos=eos_id), src.device)
        running, finished = _start(model, src, src_pad_mask, cfg, k, attn_layer)
        for step in range(finished.tokens.size(2)):
            log_probs, step_attn = _next_log_probs(model, running, step, rules, bos_id, attn_layer)
            origins, tokens, scores = beam_candidates(log_probs, running.scores, 2 * k, eos_id)  # [b, 2K]
            top = (origins[:, :k], tokens[:, :k], scores[:, :k])  # EOS counts only among the top K
            _finish(finished, running, step, top, step_attn, cfg, eos_id)
            active = first_active(tokens, eos_id, k)  # [b, K]
            origins, tokens, scores = (x.gather(1, active) for x in (origins, tokens, scores))  # [b, K]
            best = scores.max(dim=1).values / length_penalty(step + 1, cfg)  # [b]
            keep = (best > finished.scores[running.rows, -1]).nonzero().squeeze(1)  # [n]
            if keep.numel() == 0:
                break
            running = running.advance(keep, step, (origins, tokens, scores), step_attn)
        return finished.result(cfg.n_best, src_pad_mask)
