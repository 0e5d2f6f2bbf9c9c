"""Token-budget batches of similar-length pairs, shuffled per epoch and sharded across ranks.

Sorting by length before cutting batches keeps padding small; capping padded
positions instead of sentences keeps memory flat across batches (as fairseq's
`--max-tokens`, Ott et al. 2019).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence


class TokenBatchSampler:
    """Lists of dataset indices whose padded size fits `max_tokens`; a torch `batch_sampler`.

    A batch of B pairs costs `B * max(max_src_len, max_tgt_len)` tokens. Lengths
    must be the lengths the model sees, i.e. the token count + 1 for the EOS on
    the source and the BOS/EOS on the target (see `collate`).

    The order of an epoch is a pure function of `seed + epoch`, so a resumed run
    replays it exactly and `skip(n)` continues mid-epoch.

    Args:
        src_lens: source length per pair (including EOS).
        tgt_lens: target length per pair (including BOS or EOS).
        max_tokens: padded positions per batch.
        shuffle: reorder batches and break length ties randomly each epoch;
            False keeps batches in length order (for validation).
        seed: base seed of the per-epoch shuffles.
        num_replicas: ranks sharing the data; each gets distinct batches.
        rank: this process's rank in `0..num_replicas - 1`.
        even: give every rank the same number of batches (`len(self)`), dropping the
            batches left over after an even split, so DDP ranks step together (training);
            False deals every batch out once, some ranks getting one more (validation).
    """

    def __init__(
        self,
        src_lens: Sequence[int],
        tgt_lens: Sequence[int],
        max_tokens: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        even: bool = True,
    ) -> None:
        if len(src_lens) != len(tgt_lens):
            raise ValueError(f"`tgt_lens` must have {len(src_lens)} entries like `src_lens`, but has {len(tgt_lens)}.")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"`rank` must be in 0..{num_replicas - 1}, but is {rank} instead.")
        longest = max((max(s, t) for s, t in zip(src_lens, tgt_lens, strict=True)), default=0)
        if longest > max_tokens:
            raise ValueError(
                f"`max_tokens` must be >= the longest pair ({longest} tokens), but is {max_tokens} instead; "
                "filter long pairs first."
            )
        self.src_lens, self.tgt_lens = list(src_lens), list(tgt_lens)
        self.max_tokens, self.shuffle, self.seed = max_tokens, shuffle, seed
        self.num_replicas, self.rank, self.even = num_replicas, rank, even
        self.epoch = 0
        self._skip = 0
        self._num_batches = len(self._batches(0))

    def set_epoch(self, epoch: int) -> None:
        """Select the order of `epoch` for the next iteration (as `DistributedSampler.set_epoch`)."""
        self.epoch = epoch

    def skip(self, n: int) -> None:
        """Make the next iteration of the current epoch start after its first `n` batches (for resuming)."""
        if not 0 <= n <= len(self):
            raise ValueError(f"`n` must be in 0..{len(self)}, but is {n} instead.")
        self._skip = n

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        if self.even:
            return self._num_batches // self.num_replicas
        return len(range(self.rank, self._num_batches, self.num_replicas))

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches(self.epoch)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(batches)
        if self.even:  # drop the remainder so every rank runs the same number of steps (no DDP hang)
            batches = batches[: len(self) * self.num_replicas]
        mine = batches[self.rank :: self.num_replicas]
        start, self._skip = self._skip, 0
        yield from mine[start:]

    def _batches(self, epoch: int) -> list[list[int]]:
        """All batches in length order; equal-length pairs are ordered randomly per epoch."""
        ties = random.Random(self.seed + epoch)
        keys = [ties.random() if self.shuffle else i for i in range(len(self.src_lens))]
        order = sorted(range(len(keys)), key=lambda i: (self.src_lens[i], self.tgt_lens[i], keys[i]))
        batches: list[list[int]] = []
        batch: list[int] = []
        width = 0  # the longest side in `batch`
        for i in order:
            new_width = max(width, self.src_lens[i], self.tgt_lens[i])
            if batch and (len(batch) + 1) * new_width > self.max_tokens:
                batches.append(batch)
                batch, new_width = [], max(self.src_lens[i], self.tgt_lens[i])
            batch.append(i)
            width = new_width
        if batch:
            batches.append(batch)
        return batches

    def padding_ratio(self) -> float:
        """Share of source and target positions that are padding, over all batches of an epoch."""
        padded = real = 0
        for batch in self._batches(self.epoch):
            for lens in (self.src_lens, self.tgt_lens):
                sizes = [lens[i] for i in batch]
                padded += len(sizes) * max(sizes)
                real += sum(sizes)
        return 1.0 - real / padded if padded else 0.0


@dataclass
class Batch:
    """Padded tensors for teacher forcing: `tgt_in` is `tgt_out` shifted right by one."""

    src: torch.Tensor  # [B, S] source ids + EOS
    tgt_in: torch.Tensor  # [B, T] BOS + target ids
    tgt_out: torch.Tensor  # [B, T] target ids + EOS
    index: torch.Tensor | None = None  # [B] positions of the pairs in their split, to restore order

    def __len__(self) -> int:
        return self.src.size(0)


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
        index=None if index is None else torch.tensor(index, dtype=torch.long),
    )
