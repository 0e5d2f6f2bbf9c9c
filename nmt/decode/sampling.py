"""Drawing tokens at random from the model's distribution: temperature, top-k, nucleus (top-p) and epsilon.

Pure functions on log-probabilities; `nmt.decode.search.sample_search` drives them step by step.
Sampling gives diverse outputs where search gives the mode: back-translation with sampled sources
trains better models than with beam outputs (Edunov et al. 2018).
"""

from __future__ import annotations

import torch
from torch import Tensor

from nmt.config import DecodeConfig


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
    """One token id per row of `log_probs` [..., V], drawn from the filtered distribution."""
    probs = filter_logits(log_probs, cfg).softmax(dim=-1)
    return torch.multinomial(probs.reshape(-1, probs.size(-1)), 1, generator=generator).view(probs.shape[:-1])
