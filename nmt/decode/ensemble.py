"""Ensembles: several models decoding as one, for greedy search, beam search and sampling alike.

`Ensemble` offers the decoding interface of `Transformer` (`encode`, `start_decoding`, `decode_step`),
so the searches run it unchanged: each step every member advances its own cache on the same tokens,
and the next-token log-probs are the mean of the members' log-probs, renormalised (a log-linear
ensemble, as OpenNMT-py and Marian combine models). The members must share one tokenizer.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from nmt.model.transformer import DecoderCache, Transformer


@dataclasses.dataclass
class EnsembleCache:
    """One `DecoderCache` per member, reordered together; `cross_attn` is their mean after a step."""

    members: list[DecoderCache]
    cross_attn: Tensor | None = None

    def reorder_(self, rows: Tensor, sources: Tensor | None = None) -> None:
        """As `DecoderCache.reorder_`, for every member."""
        for cache in self.members:
            cache.reorder_(rows, sources)
        if self.cross_attn is not None:
            self.cross_attn = self.cross_attn.index_select(0, rows)


class Ensemble(nn.Module):
    """Models that decode together; `cfg.max_positions` is the least of theirs."""

    def __init__(self, models: list[Transformer]) -> None:
        super().__init__()
        self.members = nn.ModuleList(models)
        self.cfg = dataclasses.replace(models[0].cfg, max_positions=min(m.cfg.max_positions for m in models))
        self.pad_id = models[0].pad_id

    def param_count(self) -> int:
        """Number of distinct parameters of all members (what decoding with the ensemble computes with)."""
        return sum(p.numel() for p in self.parameters())

    def encode(self, src: Tensor, src_pad_mask: Tensor) -> list[Tensor]:
        """Each member's memory of `src` [B,S]."""
        return [member.encode(src, src_pad_mask) for member in self.members]

    def start_decoding(
        self, memory: list[Tensor], src_pad_mask: Tensor, max_len: int, max_rows: int | None = None
    ) -> EnsembleCache:
        """Each member's empty cache (see `Transformer.start_decoding`)."""
        return EnsembleCache(
            [
                m.start_decoding(mem, src_pad_mask, max_len, max_rows)
                for m, mem in zip(self.members, memory, strict=True)
            ]
        )

    def decode_step(
        self, tokens: Tensor, cache: EnsembleCache, need_attn: bool = False, attn_layer: int = -1
    ) -> Tensor:
        """Advance every member on `tokens` [R]; the mean of their log-probs, renormalised, [R,V]."""
        members = zip(self.members, cache.members, strict=True)
        steps = [m.decode_step(tokens, c, need_attn, attn_layer) for m, c in members]
        if need_attn:
            cache.cross_attn = torch.stack([c.cross_attn for c in cache.members]).mean(0)
        return torch.stack(steps).mean(0).log_softmax(dim=-1)
