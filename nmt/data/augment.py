"""SwitchOut (Wang et al. 2018): training pairs with random words put in, drawn afresh every epoch.

For each side of a pair of L tokens, a number n in 0..L is drawn with p(n) proportional to exp(-n / tau), and
each token is replaced with probability n / L by a token drawn uniformly from the side's vocabulary (special
ids excepted), as the authors' implementation does; source and target are drawn independently, and the decoder's
input and output see the same target. In a long sentence about 1 / (e^(1/tau) - 1) tokens are replaced on
average: 0.16 at tau = 0.5, 0.58 at tau = 1, 1.5 at tau = 2.

Every draw is a pure function of (seed, epoch, pair, position): counter-based random numbers (a 32-bit integer
hash), so every epoch draws anew, a resumed run draws exactly what the uninterrupted one did, and a pair's draw
does not depend on its batch, rank or device.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from nmt.data.batching import Batch
from nmt.data.tokenizer import EOS_ID, PAD_ID

FIRST_WORD = 4  # ids below are PAD, UNK, BOS, EOS: never drawn
_MASK = 0xFFFFFFFF
_SOURCE, _TARGET = 1, 2  # streams of the two sides
_COUNT, _WHERE, _WHICH = 1, 2, 3  # streams of one side's draws: how many, where, which token


def _mul32(x: Tensor, c: int) -> Tensor:
    """x * c mod 2**32 for 32-bit x and c, in int64 without overflow (two 16-bit halves of c)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _MASK


def _hash32(x: Tensor) -> Tensor:
    """A bijective mix of 32-bit values held in int64 (Wellons' lowbias32)."""
    x = _mul32(x ^ (x >> 16), 0x7FEB352D)
    x = _mul32(x ^ (x >> 15), 0x846CA68B)
    return x ^ (x >> 16)


def uniform(seed: int, epoch: int, pair: Tensor, position: Tensor, stream: int) -> Tensor:
    """Numbers in [0, 1) (float64), one per broadcast element of `pair` [B, 1] and `position` [1, T] (or [B, 1])."""
    h = _hash32(torch.full_like(pair, seed & _MASK))
    for value in (epoch, stream):
        h = _hash32(h ^ (value & _MASK))
    h = _hash32(h ^ (pair & _MASK))
    h = _hash32(h ^ (position & _MASK))
    return h.double() / 2.0**32


def switchout(batch: Batch, tau: float, seed: int, epoch: int, vocab_sizes: tuple[int, int]) -> Batch:
    """`batch` with SwitchOut applied to both sides (see the module docstring); needs `batch.index`."""
    if batch.index is None:
        raise ValueError("SwitchOut draws per pair: the batch needs `index`.")
    pair = batch.index.to(batch.src.device).view(-1, 1)  # [B, 1]
    src = _replace(batch.src, tau, seed, epoch, pair, vocab_sizes[0], _SOURCE)
    tgt_out = _replace(batch.tgt_out, tau, seed, epoch, pair, vocab_sizes[1], _TARGET)
    tgt_in = batch.tgt_in.clone()
    tgt_in[:, 1:] = torch.where(batch.tgt_in[:, 1:] == PAD_ID, PAD_ID, tgt_out[:, :-1])  # BOS + the same target
    return dataclasses.replace(batch, src=src, tgt_in=tgt_in, tgt_out=tgt_out)


def _replace(ids: Tensor, tau: float, seed: int, epoch: int, pair: Tensor, vocab_size: int, side: int) -> Tensor:
    """One side [B, L] (EOS and padding kept) with each row's tokens replaced as SwitchOut draws them."""
    words = (ids != PAD_ID) & (ids != EOS_ID)  # [B, L]
    length = words.sum(1, keepdim=True).double()  # [B, 1]
    positions = torch.arange(ids.size(1), device=ids.device).view(1, -1)  # [1, L]
    stream = side * 16
    # n from the truncated geometric p(n) ~ r**n, n in 0..L, r = exp(-1/tau), by inverting its distribution.
    r = math.exp(-1.0 / tau)
    u = uniform(seed, epoch, pair, torch.zeros_like(pair), stream + _COUNT)  # [B, 1]
    n = torch.floor(torch.log1p(-u * (1 - r ** (length + 1))) / math.log(r)).clamp(max=length)  # [B, 1]
    chosen = words & (uniform(seed, epoch, pair, positions, stream + _WHERE) < n / length.clamp(min=1))
    drawn = FIRST_WORD + (uniform(seed, epoch, pair, positions, stream + _WHICH) * (vocab_size - FIRST_WORD)).long()
    return torch.where(chosen, drawn, ids)
