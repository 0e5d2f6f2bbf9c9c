"""Decoding: greedy and batched beam search over a trained `nmt.model.Transformer`."""

from nmt.decode.beam import beam_step
from nmt.decode.search import SearchResult, beam_search, greedy_search

__all__ = ["SearchResult", "beam_search", "beam_step", "greedy_search"]
