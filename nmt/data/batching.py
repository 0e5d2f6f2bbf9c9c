"""Token-budget batches of similar-length pairs, shuffled per epoch and sharded across ranks.

Sorting by length before cutting batches keeps padding small; capping padded
positions instead of sentences keeps memory flat across batches (as fairseq's
`--max-tokens`, Ott et al. 2019). An optional cap on sentences per batch bounds
batches of short pairs as well (as fairseq's `--batch-size`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from nmt.checkpoint import SpecialIds


class TokenBatchSampler:
    """Lists of dataset indices whose padded size fits `max_tokens`; a torch `batch_sampler`.

    A batch of B pairs costs `B * max(max_src_len, max_tgt_len)` tokens, and holds at most `max_sentences`
    pairs when that is set. Lengths must be the lengths the model sees, i.e. the token count + 1 for the EOS
    on the source and the BOS/EOS on the target (see `collate`).

    Pairs are sorted by (source, target) length once and cut greedily into batches; an
    epoch shuffles the pairs inside each group of equal lengths (which leaves every batch's
    shape as it was) and then the batches. All of it is numpy over the length arrays, with
    Python loops over batches and length groups only, never over pairs, so a corpus of
    millions of pairs costs one index array (uint32) and, while an epoch runs, its shuffled copy.

    The order of an epoch is a pure function of `seed` and `epoch`, so a resumed run
    replays it exactly and `skip(n)` continues mid-epoch.

    Args:
        src_lens: source length per pair (including EOS).
        tgt_lens: target length per pair (including BOS or EOS).
        max_tokens: padded positions per batch.
        max_sentences: pairs per batch; 0 or None: no cap (the token budget alone cuts batches).
        shuffle: reorder batches and break length ties randomly each epoch;
            False keeps batches in length order and ties in index order (for validation).
        seed: base seed of the per-epoch shuffles.
        num_replicas: ranks sharing the data; each gets distinct batches.
        rank: this process's rank in `0..num_replicas - 1`.
        even: give every rank the same number of batches (`len(self)`), dropping the
            batches left over after an even split, so DDP ranks step together (training);
            False deals every batch out once, some ranks getting one more (validation).
    """

    def __init__(
        self,
        src_lens: Sequence[int] | np.ndarray,
        tgt_lens: Sequence[int] | np.ndarray,
        max_tokens: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        even: bool = True,
        max_sentences: int | None = None,
    ) -> None:
        src, tgt = np.asarray(src_lens), np.asarray(tgt_lens)
        if len(src) != len(tgt):
            raise ValueError(f"`tgt_lens` must have {len(src)} entries like `src_lens`, but has {len(tgt)}.")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"`rank` must be in 0..{num_replicas - 1}, but is {rank} instead.")
        if max_sentences is not None and max_sentences < 0:
            raise ValueError(f"`max_sentences` must be >= 0 (0 or None: no cap), but is {max_sentences} instead.")
        longest = int(max(src.max(initial=0), tgt.max(initial=0)))
        if longest > max_tokens:
            raise ValueError(
                f"`max_tokens` must be >= the longest pair ({longest} tokens), but is {max_tokens} instead; "
                "filter long pairs first."
            )
        self.max_tokens, self.max_sentences, self.shuffle, self.seed = max_tokens, max_sentences or 0, shuffle, seed
        self.num_replicas, self.rank, self.even = num_replicas, rank, even
        self.epoch = 0
        self._skip, self._skip_epoch = 0, 0  # batches to skip at the start of epoch `_skip_epoch` (resuming)
        index_type = np.uint32 if len(src) < 1 << 32 else np.int64
        self._order = np.lexsort((tgt, src)).astype(index_type)  # by source, then target length; ties by index
        sorted_src, sorted_tgt = src[self._order], tgt[self._order]
        tie_breaks = (sorted_src[1:] != sorted_src[:-1]) | (sorted_tgt[1:] != sorted_tgt[:-1])
        self._groups = np.concatenate([[0], np.flatnonzero(tie_breaks) + 1, [len(src)]])  # runs of equal lengths
        self._bounds = _greedy_bounds(np.maximum(sorted_src, sorted_tgt), max_tokens, self.max_sentences)
        self.padding_ratio = _padding_ratio(self._bounds, sorted_src, sorted_tgt)  # per pair, it keeps only the order

    def set_epoch(self, epoch: int) -> None:
        """Select the order of `epoch` for the next iteration (as `DistributedSampler.set_epoch`)."""
        self.epoch = epoch

    def skip(self, n: int) -> None:
        """Make the next iteration of the current epoch start after its first `n` batches (for resuming).

        The skip belongs to the current epoch: a run resumed from the end of an epoch (all its batches done)
        never iterates that epoch again, and the next epoch must then start from its first batch.
        """
        if not 0 <= n <= len(self):
            raise ValueError(f"`n` must be in 0..{len(self)}, but is {n} instead.")
        self._skip, self._skip_epoch = n, self.epoch

    @property
    def num_batches(self) -> int:
        """Batches per epoch on all ranks together (before `even` drops a remainder)."""
        return len(self._bounds) - 1

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        if self.even:
            return self.num_batches // self.num_replicas
        return len(range(self.rank, self.num_batches, self.num_replicas))

    def __iter__(self) -> Iterator[list[int]]:
        order, batch_order = self._epoch_order(self.epoch)
        if self.even:  # drop the remainder so every rank runs the same number of steps (no DDP hang)
            batch_order = batch_order[: len(self) * self.num_replicas]
        mine = batch_order[self.rank :: self.num_replicas]
        start = self._skip if self.epoch == self._skip_epoch else 0
        self._skip = 0
        for b in mine[start:].tolist():
            yield order[self._bounds[b] : self._bounds[b + 1]].tolist()

    def _epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The pairs in length order with ties shuffled, and the order of the batches, for `epoch`."""
        if not self.shuffle:
            return self._order, np.arange(self.num_batches)
        rng = np.random.default_rng([self.seed, epoch])
        order = self._order.copy()
        for start, end in zip(self._groups[:-1].tolist(), self._groups[1:].tolist(), strict=True):
            if end - start > 1:
                rng.shuffle(order[start:end])
        return order, rng.permutation(self.num_batches)


def _padding_ratio(bounds: np.ndarray, *sorted_lens: np.ndarray) -> float:
    """Share of source and target positions that are padding, over all batches of an epoch."""
    if len(bounds) < 2:
        return 0.0
    counts = np.diff(bounds)
    padded = sum(int((np.maximum.reduceat(lens, bounds[:-1]) * counts).sum()) for lens in sorted_lens)
    real = sum(int(lens.sum(dtype=np.int64)) for lens in sorted_lens)
    return 1.0 - real / padded if padded else 0.0


def _greedy_bounds(widths: np.ndarray, max_tokens: int, max_sentences: int = 0) -> np.ndarray:
    """Batch boundaries over pairs in order: each batch takes pairs while (count * widest) <= `max_tokens`
    and count <= `max_sentences` (0: no cap).

    A Python loop over batches, with numpy inside each: the widest pair so far only grows and so does the
    count, so the pairs that fit are a prefix of the window of `max_tokens // first width` pairs (at most
    `max_sentences` of them).
    """
    bounds = [0]
    start, total = 0, len(widths)
    while start < total:
        room = min(max_tokens // int(widths[start]), max_sentences or total)
        window = widths[start : start + room].astype(np.int64)
        fits = np.maximum.accumulate(window) * np.arange(1, len(window) + 1) <= max_tokens
        start += len(window) if fits[-1] else int(np.argmin(fits))
        bounds.append(start)
    return np.asarray(bounds, dtype=np.int64)


@dataclass
class Batch:
    """Padded tensors for teacher forcing: `tgt_in` is `tgt_out` shifted right by one."""

    src: torch.Tensor  # [B, S] source ids + EOS
    tgt_in: torch.Tensor  # [B, T] BOS + target ids
    tgt_out: torch.Tensor  # [B, T] target ids + EOS
    src_tokens: int  # real (non-pad) positions of `src`, counted on the host: reading them costs no device sync
    tgt_tokens: int  # real positions of `tgt_out` (the tokens the loss is summed over)
    index: torch.Tensor | None = None  # [B] positions of the pairs in their split, to restore order
    # [B, T, S] the cross-attention each target piece should have (guided alignment, `nmt.data.links`)
    align: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.src.size(0)

    def pin_memory(self) -> Batch:
        """This batch with its tensors in page-locked memory, for asynchronous copies to a GPU. A DataLoader
        with `pin_memory=True` calls this (torch passes objects without the method through unpinned)."""
        tensors = {
            "src": self.src,
            "tgt_in": self.tgt_in,
            "tgt_out": self.tgt_out,
            "index": self.index,
            "align": self.align,
        }
        return dataclasses.replace(self, **{k: None if t is None else t.pin_memory() for k, t in tensors.items()})


def _pad(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    """Right-pad id lists into one [B, L] long tensor."""
    return pad_sequence([torch.tensor(r, dtype=torch.long) for r in rows], batch_first=True, padding_value=pad_id)


def collate(
    src_ids: list[list[int]],
    tgt_ids: list[list[int]],
    pad_id: int,
    bos_id: int,
    eos_id: int,
    index: list[int] | None = None,
) -> Batch:
    """Add EOS to sources, BOS/EOS to targets, and pad both; each row is one pair.

    Sources and targets each grow by one token, which is why `TokenBatchSampler`
    is given lengths + 1.
    """
    if len(src_ids) != len(tgt_ids):
        raise ValueError(f"`tgt_ids` must have {len(src_ids)} rows like `src_ids`, but has {len(tgt_ids)}.")
    return Batch(
        src=_pad([s + [eos_id] for s in src_ids], pad_id),
        tgt_in=_pad([[bos_id] + t for t in tgt_ids], pad_id),
        tgt_out=_pad([t + [eos_id] for t in tgt_ids], pad_id),
        src_tokens=sum(map(len, src_ids)) + len(src_ids),
        tgt_tokens=sum(map(len, tgt_ids)) + len(tgt_ids),
        index=None if index is None else torch.tensor(index, dtype=torch.long),
    )


def teacher_forcing_batches(
    src_ids: Sequence[list[int]],
    tgt_ids: Sequence[list[int]],
    special_ids: SpecialIds,
    max_tokens: int = 4096,
) -> Iterator[Batch]:
    """Length-sorted batches of whole pairs, at most `max_tokens` padded target positions each (or one pair).

    For measuring a trained model (alignments, head statistics), not for training: no shuffling, no
    sharding. Pairs with an empty side are left out; `Batch.index` gives each row's pair.
    """
    order = sorted(
        (i for i in range(len(src_ids)) if src_ids[i] and tgt_ids[i]), key=lambda i: (len(tgt_ids[i]), len(src_ids[i]))
    )
    batch: list[int] = []
    for i in order + [None]:
        if batch and (i is None or (len(batch) + 1) * (len(tgt_ids[i]) + 1) > max_tokens):
            src, tgt = [src_ids[j] for j in batch], [tgt_ids[j] for j in batch]
            yield collate(src, tgt, special_ids.pad, special_ids.bos, special_ids.eos, index=batch)
            batch = []
        if i is not None:
            batch.append(i)
