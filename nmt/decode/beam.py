"""Pure per-step functions of the search: candidate selection, constraints, length normalisation.

Nothing here calls the model, so every rule can be tested on hand-made numbers;
`nmt.decode.search` drives these functions with `Transformer.decode_step`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.checkpoint import SpecialIds
from nmt.config import DecodeConfig


def beam_step(log_probs: Tensor, scores: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """Pick the `n` best one-token extensions of each sentence's beam, best first.

    Like fairseq2's `StandardBeamSearchAlgorithm`: add each hypothesis's running
    score to its next-token log-probs and take the top `n` over all K*V pairs.

    Args:
        log_probs: next-token log-probabilities, [B, K, V]; overwritten with the totals (a pass over
            the largest tensor of the search saved, at every step).
        scores: running (unnormalised) log-probability of each hypothesis, [B, K].
        n: candidates to return per sentence; at most K*V.

    Returns:
        origins (the hypothesis each candidate extends), tokens and scores, each [B, n].
    """
    batch, beam, vocab = log_probs.shape
    if not 1 <= n <= beam * vocab:
        raise ValueError(f"`n` must be in [1, K*V] = [1, {beam * vocab}], but is {n} instead.")
    totals = log_probs.add_(scores.unsqueeze(-1))  # [B, K, V] + [B, K, 1]
    top_scores, cells = totals.view(batch, beam * vocab).topk(n, dim=1)  # [B, K*V] -> [B, n]
    return cells // vocab, cells % vocab, top_scores


def row_max(values: Tensor, block: int = 64) -> tuple[Tensor, Tensor]:
    """`values.max(dim=1)` of [R, V]: each row's largest entry and its first column, three times as fast on CPU.

    PyTorch's reduction to a value and an index is not vectorised on CPU, its `amax` is: so take the maxima
    of blocks of `block` columns, then search for the index only in each row's first best block.
    """
    rows, width = values.shape
    whole = width // block
    maxima = values[:, : whole * block].view(rows, whole, block).amax(2)  # [R, V/block]
    if whole * block < width:
        maxima = torch.cat([maxima, values[:, whole * block :].amax(1, keepdim=True)], dim=1)
    start = maxima.argmax(1) * block  # [R]
    columns = (start.unsqueeze(1) + torch.arange(block, device=values.device)).clamp_(max=width - 1)  # [R, block]
    best_block = values.gather(1, columns)
    within = best_block.argmax(1, keepdim=True)  # [R, 1]
    return best_block.gather(1, within).squeeze(1), start + within.squeeze(1)


def beam_candidates(log_probs: Tensor, scores: Tensor, n: int, eos_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """`beam_step`'s `n` best candidates, padded with impossible ones (-inf, not EOS) where the beam has fewer.

    Only a first step, when each sentence has one hypothesis, over a vocabulary smaller than `n` has fewer.
    """
    batch, beam, vocab = log_probs.shape
    origins, tokens, top = beam_step(log_probs, scores, min(n, beam * vocab))
    missing = n - top.size(1)
    if missing <= 0:
        return origins, tokens, top
    filler = torch.full((batch, missing), (eos_id + 1) % vocab, dtype=tokens.dtype, device=tokens.device)
    return (
        torch.cat([origins, torch.zeros_like(filler)], dim=1),
        torch.cat([tokens, filler], dim=1),
        torch.cat([top, top.new_full((batch, missing), float("-inf"))], dim=1),
    )


def first_active(tokens: Tensor, eos_id: int, k: int) -> Tensor:
    """Positions of the first `k` candidates that do not end in EOS, in rank order.

    Args:
        tokens: candidate tokens sorted best first, [B, C] with C >= 2k.
        eos_id: end-of-sentence id.
        k: beam size.

    Returns:
        positions into the C candidates, [B, k].
    """
    ranks = torch.arange(tokens.size(1), device=tokens.device)  # [C]
    # EOS candidates sort after every other one; at most K of the 2K candidates end in EOS.
    keys = (tokens == eos_id).long() * tokens.size(1) + ranks  # [B, C]
    return keys.topk(k, dim=1, largest=False).indices


def length_penalty(length: int, cfg: DecodeConfig) -> float:
    """Divisor that normalises a summed log-probability of `length` tokens (EOS included).

    `gnmt` is ((5 + length) / 6) ** alpha from Wu et al. (2016), eq. 14; `average`
    divides by the length; `none` keeps the raw sum.
    """
    if cfg.length_norm == "gnmt":
        return ((5 + length) / 6) ** cfg.length_penalty
    if cfg.length_norm == "average":
        return float(length)
    if cfg.length_norm == "none":
        return 1.0
    raise ValueError(f"`length_norm` must be one of gnmt, average, none, but is {cfg.length_norm!r} instead.")


def max_lengths(src_pad_mask: Tensor, cfg: DecodeConfig) -> Tensor:
    """Longest output per sentence, `a * src_len + b` tokens before EOS (src_len: non-pad tokens), [B]."""
    src_len = (~src_pad_mask).sum(dim=1)  # [B, S] -> [B]
    return (cfg.max_len_a * src_len + cfg.max_len_b).long().clamp(min=0)


def block_repeated_ngrams_(log_probs: Tensor, history: Tensor, n: int) -> Tensor:
    """Forbid, in place, tokens that would repeat an n-gram already in each row's history.

    Args:
        log_probs: next-token log-probabilities, [R, V] (R rows: sentences or hypotheses).
        history: tokens emitted so far (BOS excluded), [R, t].
        n: n-gram size; 0 turns blocking off.

    Returns:
        `log_probs`, with the blocked tokens set to -inf.
    """
    if n <= 0 or history.size(1) < n:
        return log_probs
    windows = history.unfold(1, n, 1)  # [R, t] -> [R, W, n], W = t - n + 1 earlier n-grams
    prefix = history[:, history.size(1) - n + 1 :]  # [R, n-1], the n-gram the next token completes
    seen = (windows[:, :, :-1] == prefix.unsqueeze(1)).all(dim=2)  # [R, W]
    # scatter_add, not scatter: a token can follow the prefix at several places.
    hits = torch.zeros_like(log_probs).scatter_add_(1, windows[:, :, -1], seen.to(log_probs.dtype))  # [R, V]
    return log_probs.masked_fill_(hits > 0, float("-inf"))


@dataclass(frozen=True)
class Rules:
    """The search rules of one search, with the ids they forbid gathered once."""

    never: Tensor  # ids never emitted: BOS and PAD
    eos_id: int
    min_len: int  # before this many tokens EOS is forbidden
    no_repeat_ngram: int  # n-gram size to block; 0 = off

    @classmethod
    def of(cls, cfg: DecodeConfig, special_ids: SpecialIds, device: torch.device) -> Rules:
        never = [special_ids.bos, special_ids.pad]
        return cls(torch.tensor(never, device=device), special_ids.eos, cfg.min_len, cfg.no_repeat_ngram)


def constrain_(
    log_probs: Tensor, step: int | Tensor, rules: Rules, at_max: Tensor | None = None, history: Tensor | None = None
) -> Tensor:
    """Apply the search rules to one step's log-probs in place: no BOS or PAD, min/max length, n-gram blocking.

    Rows that reached their maximum length may only emit EOS, at its model value; before
    `rules.min_len` tokens EOS is forbidden (the maximum wins if the two clash). Only the
    forbidden columns are written, plus whole rows when some row is at its maximum.

    Args:
        log_probs: next-token log-probabilities, [R, V].
        step: tokens emitted so far, by every row or by each [R] (rows that started at different steps).
        rules: what is forbidden.
        at_max: [R] True for rows at their maximum length; None when no row is.
        history: tokens emitted so far (BOS excluded), [R, step]; needed for n-gram blocking only.

    Returns:
        `log_probs`, constrained; the allowed entries keep their model values.
    """
    eos = log_probs[:, rules.eos_id].clone() if at_max is not None else None  # [R]
    if history is not None:
        block_repeated_ngrams_(log_probs, history, rules.no_repeat_ngram)
    log_probs.index_fill_(1, rules.never, float("-inf"))
    if isinstance(step, Tensor):
        log_probs[:, rules.eos_id].masked_fill_(step < rules.min_len, float("-inf"))
    elif step < rules.min_len:
        log_probs[:, rules.eos_id] = float("-inf")
    if at_max is not None:
        log_probs.masked_fill_(at_max.unsqueeze(1), float("-inf"))  # [R, 1] over [R, V]
        log_probs[:, rules.eos_id] = torch.where(at_max, eos, log_probs[:, rules.eos_id])
    return log_probs
