"""Drawing tokens at random from the model's distribution: temperature, top-k, nucleus (top-p) and epsilon.

Pure functions on log-probabilities, and `sample_search`, which drives them step by step over the search
loop of `nmt.decode.search`.
Sampling gives diverse outputs where search gives the mode: back-translation with sampled sources
trains better models than with beam outputs (Edunov et al. 2018).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from nmt.checkpoint import SpecialIds
from nmt.config import DecodeConfig
from nmt.decode.beam import Rules
from nmt.decode.search import SearchResult, _finish, _next_log_probs, _start

if TYPE_CHECKING:
    from nmt.model.transformer import Transformer


def filter_logits(log_probs: Tensor, cfg: DecodeConfig) -> Tensor:
    """The log-probs [..., V] divided by the temperature, with the tokens the filters drop set to -inf.

    Top-k keeps the k most probable tokens; top-p the fewest whose probability reaches p (Holtzman et
    al. 2020); epsilon drops tokens less probable than epsilon (Hewitt et al. 2022). The most probable
    token always stays, so something can be drawn.
    """
    logits = log_probs / cfg.temperature
    best = logits.max(dim=-1, keepdim=True).values
    if cfg.top_k:
        kth = logits.topk(min(cfg.top_k, logits.size(-1)), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.epsilon:
        logits = logits.masked_fill((log_probs.exp() < cfg.epsilon) & (logits < best), float("-inf"))
    if cfg.top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the more probable tokens
        logits = logits.scatter(-1, order, ordered.masked_fill(before >= cfg.top_p, float("-inf")))
    return logits


def sample_tokens(log_probs: Tensor, cfg: DecodeConfig, generator: torch.Generator | None = None) -> Tensor:
    """One token id per row of `log_probs` [..., V], drawn from the filtered distribution; a row that forbids
    every token draws any (its log-prob, -inf, tells the caller)."""
    logits = filter_logits(log_probs, cfg)
    none = logits.amax(dim=-1, keepdim=True) == float("-inf")  # [..., 1] rows that allow no token
    probs = (logits.masked_fill(none, 0.0) if bool(none.any()) else logits).softmax(dim=-1)
    return torch.multinomial(probs.reshape(-1, probs.size(-1)), 1, generator=generator).view(probs.shape[:-1])


def sample_search(
    model: Transformer,
    src: Tensor,
    src_pad_mask: Tensor,
    cfg: DecodeConfig,
    bos_id: int,
    eos_id: int,
    generator: torch.Generator | None = None,
    attn_layer: int | None = None,
) -> SearchResult:
    """Translate a batch by sampling: `cfg.n_best` independent outputs per sentence, each token drawn from
    the model's distribution as `cfg.temperature`, `top_k`, `top_p` and `epsilon` shape it.

    Scores are the model's own log-probs of the drawn tokens (before temperature and filters), normalised
    as in beam search; samples come best first. The same `generator` state, batch and settings give the
    same samples. Arguments as `beam_search`'s, with `cfg.n_best` the samples per sentence, plus the
    random stream `generator` to draw from (None: torch's global one).
    """
    n = cfg.n_best
    with torch.inference_mode():
        rules = Rules.of(cfg, SpecialIds(pad=model.pad_id, bos=bos_id, eos=eos_id), src.device)
        running, finished = _start(model, src, src_pad_mask, cfg, n, attn_layer)
        alive = torch.ones(src.size(0), n, dtype=torch.bool, device=src.device)  # [b, n] samples without EOS yet
        for step in range(finished.tokens.size(2)):
            log_probs, step_attn = _next_log_probs(model, running, step, rules, bos_id, attn_layer)  # [b, W, V]
            b, w, v = log_probs.shape
            origins = torch.arange(n, device=src.device).div(n // w, rounding_mode="floor").expand(b, n)  # W=1 fans out
            log_probs = log_probs.gather(1, origins.unsqueeze(2).expand(b, n, v))  # [b, n, V]
            tokens = sample_tokens(log_probs, cfg, generator).masked_fill(~alive, model.pad_id)  # [b, n]
            scores = running.scores.gather(1, origins) + log_probs.gather(2, tokens.unsqueeze(2)).squeeze(2)
            _finish(finished, running, step, (origins, tokens, scores), step_attn, cfg, eos_id)
            alive &= (tokens != eos_id) & (scores > float("-inf"))  # a row with no token allowed ends unfinished
            keep = alive.any(dim=1).nonzero().squeeze(1)  # [k]
            if keep.numel() == 0:
                break
            running = running.advance(keep, step, (origins, tokens, scores), step_attn, moved=w != n)
            alive = alive if running.kept is None else alive[running.kept]
        return finished.result(n, src_pad_mask)
