"""Token embeddings with sinusoidal or learned positions (Vaswani et al. 2017, 3.4 and 3.5)."""

import math

import torch
from torch import Tensor, nn

from nmt.config import ModelConfig


def sinusoids(n_positions: int, d_model: int) -> Tensor:
    """The fixed table [n_positions, D]: PE(p, 2i) = sin(p / 10000^(2i/D)), PE(p, 2i+1) = cos(same)."""
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]  # [P,1]
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(n_positions, d_model)
    table[:, 0::2] = torch.sin(position * inv_freq)  # [P,1] * [D/2] -> [P,D/2]
    table[:, 1::2] = torch.cos(position * inv_freq)[:, : d_model // 2]
    return table


class SinusoidalPositions(nn.Module):
    """Fixed positions, kept as a non-persistent buffer: rebuilt on load, absent from checkpoints."""

    def __init__(self, n_positions: int, d_model: int):
        super().__init__()
        self.register_buffer("table", sinusoids(n_positions, d_model), persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        return self.table[positions]  # [T] -> [T,D], or [B,T] -> [B,T,D]


class Embedding(nn.Module):
    """Token embedding times sqrt(D), plus the position encoding, then dropout.

    The sqrt(D) scale lifts embeddings initialised at std D^-1/2 to unit variance, on a par with
    the sinusoids (Vaswani et al. 2017, 3.4).
    """

    def __init__(self, vocab_size: int, cfg: ModelConfig, pad_id: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, cfg.d_model, padding_idx=pad_id)
        self.scale = math.sqrt(cfg.d_model)
        self.max_positions = cfg.max_positions
        if cfg.positions == "learned":
            self.positions: nn.Module = nn.Embedding(cfg.max_positions, cfg.d_model)
        else:
            self.positions = SinusoidalPositions(cfg.max_positions, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, tokens: Tensor, start: int | Tensor = 0) -> Tensor:
        """Embed `tokens` [B,T] at positions start, ..., start+T-1; returns [B,T,D].

        `start` is one position for every row, or one per row [B] (continuous batching, where rows joined the
        decoding at different steps); per-row starts are not checked against `max_positions` (the search keeps
        each row within its maximum length, and a check would wait on the device at every step)."""
        if isinstance(start, Tensor):
            positions = start[:, None] + torch.arange(tokens.size(1), device=tokens.device)  # [B,1] + [T] -> [B,T]
            return self.dropout(self.tokens(tokens) * self.scale + self.positions(positions))  # + [B,T,D]
        end = start + tokens.size(1)
        if end > self.max_positions:
            raise ValueError(
                f"sequence length must be <= `max_positions` ({self.max_positions}), but is {end} instead."
            )
        positions = torch.arange(start, end, device=tokens.device)  # [T]
        x = self.tokens(tokens) * self.scale + self.positions(positions)  # [B,T,D] + [T,D]
        return self.dropout(x)
