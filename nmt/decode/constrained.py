"""Lexically constrained beam search: `beam_search`'s loop with the step functions of `nmt.decode.constraints`.

The model, cache, finishing and stopping rules are those of `nmt.decode.search`; what changes per step is
that the log-probs are masked (avoided phrases, forced prefix, no piece going on a word a positive phrase just
ended, no EOS before every positive constraint is met) and that sentences with positive constraints fill
their beam by dynamic beam allocation over the 2K best extensions plus, for each hypothesis, its best token
and the next token of each unmet phrase (Post & Vilar 2018; Hu et al. 2019). Sentences without positive
constraints keep `beam_search`'s choice, bit for bit. Greedy search with phrases to avoid or a prefix is this
search with K = 1; sentences with terms need more (`TorchEngine._greedy_with_terms`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from nmt.checkpoint import SpecialIds
from nmt.config import DecodeConfig
from nmt.decode.beam import Rules, beam_candidates, first_active, length_penalty
from nmt.decode.constraints import (
    ConstraintBatch,
    ConstraintState,
    advance,
    all_met,
    allocate,
    avoid_,
    avoid_states,
    close_words_,
    forbid_early_eos_,
    force_prefix_,
    prefix_tokens,
    tail,
    unique_,
    wanted_tokens,
)
from nmt.decode.search import SearchResult, _finish, _next_log_probs, _start

if TYPE_CHECKING:
    from nmt.model.transformer import Transformer

Candidates = tuple[Tensor, Tensor, Tensor]  # origins, tokens, scores, each [b, N]


def mask_(
    log_probs: Tensor,
    step: int,
    at_max: Tensor,
    batch: ConstraintBatch,
    state: ConstraintState,
    eos_id: int,
) -> Tensor:
    """Apply the constraints to one step's log-probs [b, W, V] in place; at_max [b].

    A sentence inside its prefix writes the prefix's token at its own log-prob whatever the other rules say:
    a prefix `Hundefutter` goes on after the term `Hund` its first piece meets, and may hold a word to avoid.
    """
    if step >= batch.prefix.size(1):  # past every prefix
        return _rules_(log_probs, at_max, batch, state, eos_id)
    forced = prefix_tokens(step, batch.prefix, batch.prefix_len, at_max)  # [b]
    index = forced.clamp(min=0).view(-1, 1, 1).expand(-1, log_probs.size(1), 1)  # [b] -> [b, W, 1]
    values = log_probs.gather(2, index).squeeze(2)  # [b, W], before the rules mask it
    _rules_(log_probs, at_max, batch, state, eos_id)
    return force_prefix_(log_probs, forced, values)


def _rules_(log_probs: Tensor, at_max: Tensor, batch: ConstraintBatch, state: ConstraintState, eos_id: int) -> Tensor:
    """Mask, in place, avoided phrases, pieces going on a word a term just ended, and EOS before every term."""
    avoid_(log_probs, state.avoid, batch.avoid, batch.avoid_tables)
    close_words_(log_probs, state.closing, batch.joins)
    return forbid_early_eos_(log_probs, all_met(state.met, batch.include_len), eos_id, at_max)


def candidates(log_probs: Tensor, scores: Tensor, k: int, eos_id: int, wanted: Tensor) -> Candidates:
    """The 2K best extensions (first, as `beam_search` takes them), then each hypothesis's best token and
    the tokens it `wanted` [b, W, C]; repeats of a candidate score -inf.

    Args:
        log_probs: constrained log-probs [b, W, V]; overwritten with the totals.
        scores: running scores [b, W].
    """
    b, w, v = log_probs.shape
    origins, tokens, top = beam_candidates(log_probs, scores, 2 * k, eos_id)  # [b, 2K]; log_probs: totals
    extra = torch.cat([log_probs.argmax(2, keepdim=True), wanted], dim=2)  # [b, W, 1 + C]
    extra_origins = torch.arange(w, device=log_probs.device).view(1, w, 1).expand_as(extra).reshape(b, -1)
    extra = extra.reshape(b, -1)  # [b, W, 1 + C] -> [b, W*(1+C)]
    extra_scores = log_probs.view(b, w * v).gather(1, extra_origins * v + extra.clamp(min=0))
    origins, tokens = torch.cat([origins, extra_origins], 1), torch.cat([tokens, extra.clamp(min=0)], 1)
    scores = torch.cat([top, extra_scores.masked_fill(extra < 0, float("-inf"))], 1)  # [b, N]
    return origins, tokens, unique_(scores, origins * v + tokens)


def select(found: Candidates, history: Tensor, batch: ConstraintBatch, state: ConstraintState, k: int, eos_id: int):
    """The K active hypotheses of each sentence and their constraint state, plus the met flags of all candidates.

    Sentences with positive constraints allocate the beam over banks; the others keep `first_active`.

    Returns:
        (origins, tokens, scores) [b, K], the new `ConstraintState`, and all met [b, N].
    """
    origins, tokens, scores = found
    c, width = batch.include.size(1), batch.include.size(2)
    before = tail(history, width - 1).gather(1, origins.unsqueeze(2).expand(-1, -1, width - 1))  # [b, N, L-1]
    ends = torch.cat([before, tokens.unsqueeze(2)], dim=2)  # [b, N, L]
    found_before = state.found.gather(1, origins.unsqueeze(2).expand(-1, -1, c))  # [b, N, C]
    found, met, progress, bank = advance(
        found_before, ends, batch.include, batch.include_len, batch.include_times, batch.ordered
    )
    active = scores.masked_fill(tokens == eos_id, float("-inf"))  # [b, N]
    plain = first_active(tokens[:, : 2 * k], eos_id, k)  # [b, K]
    pick = torch.where(batch.has_include.unsqueeze(1), allocate(active, bank, k), plain)  # [b, K]
    picked = (origins.gather(1, pick), tokens.gather(1, pick), active.gather(1, pick))
    index = pick.unsqueeze(2).expand(-1, -1, c)  # [b, K, C]
    closing = (found > found_before).any(2).gather(1, pick)  # [b, K]
    avoid = state.avoid.gather(1, picked[0].unsqueeze(2).expand(-1, -1, state.avoid.size(2)))  # [b, K, A]
    avoid = avoid_states(avoid, batch.avoid, batch.avoid_tables, picked[1])
    chosen = ConstraintState(found.gather(1, index), met.gather(1, index), progress.gather(1, index), closing, avoid)
    return picked, chosen, all_met(met, batch.include_len)


def constrained_search(
    model: Transformer,
    src: Tensor,
    src_pad_mask: Tensor,
    cfg: DecodeConfig,
    bos_id: int,
    eos_id: int,
    constraints: ConstraintBatch,
    attn_layer: int | None = None,
) -> SearchResult:
    """Translate a batch with beam search (K = `cfg.beam_size`, greedy at 1) under per-sentence constraints.

    Arguments as `beam_search`'s, plus `constraints` (one row per sentence of `src`). The result's `met`
    flags hypotheses that ended at their length limit without meeting every positive constraint.
    """
    k = cfg.beam_size
    with torch.inference_mode():
        rules = Rules.of(cfg, SpecialIds(pad=model.pad_id, bos=bos_id, eos=eos_id), src.device)
        running, finished = _start(model, src, src_pad_mask, cfg, k, attn_layer)
        finished.met = torch.ones_like(finished.lengths, dtype=torch.bool)  # [B, K]
        state = ConstraintState.start(constraints)
        for step in range(finished.tokens.size(2)):
            log_probs, step_attn = _next_log_probs(model, running, step, rules, bos_id, attn_layer)  # [b, W, V]
            batch, history = constraints.rows(running.rows), running.tokens[:, :, :step]  # history [b, W, step]
            mask_(log_probs, step, running.max_len <= step, batch, state, eos_id)
            wanted = wanted_tokens(state.progress, state.met, batch.include, batch.include_len)  # [b, W, C]
            found = candidates(log_probs, running.scores, k, eos_id, wanted)  # [b, N]
            (origins, tokens, scores), chosen, met = select(found, history, batch, state, k, eos_id)
            top = tuple(x[:, :k] for x in found)  # EOS counts only among the top K, as in `beam_search`
            _finish(finished, running, step, top, step_attn, cfg, eos_id, met[:, :k])
            best = scores.max(dim=1).values / length_penalty(step + 1, cfg)  # [b]
            keep = (best > finished.scores[running.rows, -1]).nonzero().squeeze(1)  # [n]
            if keep.numel() == 0:
                break
            running = running.advance(keep, step, (origins, tokens, scores), step_attn)
            state = chosen.keep(running.kept)
        return finished.result(cfg.n_best, src_pad_mask)
