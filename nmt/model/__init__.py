"""The Transformer network in plain PyTorch: it gets a `ModelConfig` and vocabulary sizes, nothing more."""

from nmt.model.attention import MultiHeadAttention
from nmt.model.transformer import DecoderCache, Transformer

__all__ = ["DecoderCache", "MultiHeadAttention", "Transformer"]
