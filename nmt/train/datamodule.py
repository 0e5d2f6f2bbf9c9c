"""The LightningDataModule: token-budget batches over prepared pairs, resumable mid-epoch."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from nmt.data.batching import Batch, TokenBatchSampler, collate
from nmt.data.prepare import EncodedPairs
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID


class TranslationDataModule(L.LightningDataModule):
    """Serves training batches (shuffled per epoch, sharded per rank) and validation batches (fixed order).

    Its `state_dict` records how far the current epoch got, so a resumed run
    skips the batches it already trained on and sees the same data order as an
    uninterrupted run.
    """

    def __init__(self, train: EncodedPairs, valid: EncodedPairs, max_tokens: int, seed: int) -> None:
        super().__init__()
        self.train, self.valid = train, valid
        self.max_tokens, self.seed = max_tokens, seed
        self._resume: dict[str, int] | None = None

    def _loader(self, pairs: EncodedPairs, sampler: TokenBatchSampler) -> DataLoader:
        items = list(zip(range(len(pairs)), pairs.src, pairs.tgt, strict=True))
        # Its own generator: creating an iterator would otherwise draw from the global RNG that dropout
        # uses, and a resumed run creates iterators at other moments than an uninterrupted one.
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(items, batch_sampler=sampler, collate_fn=_collate, generator=generator)

    def _sampler(self, pairs: EncodedPairs, shuffle: bool, replicas: int, rank: int) -> TokenBatchSampler:
        return TokenBatchSampler(
            src_lens=[len(s) + 1 for s in pairs.src],  # + EOS
            tgt_lens=[len(t) + 1 for t in pairs.tgt],  # + BOS (tgt_in) / EOS (tgt_out)
            max_tokens=self.max_tokens,
            shuffle=shuffle,
            seed=self.seed,
            num_replicas=replicas,
            rank=rank,
        )

    def train_dataloader(self) -> DataLoader:
        sampler = self._sampler(self.train, True, self.trainer.world_size, self.trainer.global_rank)
        if self._resume is not None:
            sampler.set_epoch(self._resume["epoch"])
            sampler.skip(self._resume["batches_done"])
            self._resume = None
        return self._loader(self.train, sampler)

    def val_dataloader(self) -> DataLoader:
        # Every rank decodes the whole validation set, so BLEU needs no gathering.
        return self._loader(self.valid, self._sampler(self.valid, False, 1, 0))

    def state_dict(self) -> dict[str, Any]:
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": self.trainer.current_epoch, "batches_done": progress.completed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = {"epoch": int(state_dict["epoch"]), "batches_done": int(state_dict["batches_done"])}


def _collate(items: list[tuple[int, list[int], list[int]]]) -> Batch:
    index, src, tgt = zip(*items, strict=True)
    return collate(list(src), list(tgt), PAD_ID, BOS_ID, EOS_ID, index=list(index))
