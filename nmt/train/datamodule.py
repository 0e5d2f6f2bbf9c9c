"""The LightningDataModule: token-budget batches over prepared pairs, resumable mid-epoch."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from nmt.data.batching import Batch, TokenBatchSampler, collate
from nmt.data.prepare import EncodedPairs
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID


class PairBatches(Dataset):
    """Encoded pairs indexed by whole batches: `dataset[indices]` is the collated `Batch` of those pairs."""

    def __init__(self, pairs: EncodedPairs) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, indices: list[int]) -> Batch:
        src = [self.pairs.src[i] for i in indices]
        tgt = [self.pairs.tgt[i] for i in indices]
        return collate(src, tgt, PAD_ID, BOS_ID, EOS_ID, index=indices)


class TranslationDataModule(L.LightningDataModule):
    """Serves training batches (shuffled per epoch, sharded per rank) and validation batches (fixed order,
    split across ranks).

    Its `state_dict` records how far the current epoch got, so a resumed run
    skips the batches it already trained on and sees the same data order as an
    uninterrupted run.
    """

    def __init__(self, train: EncodedPairs, valid: EncodedPairs, max_tokens: int, seed: int) -> None:
        super().__init__()
        self.train, self.valid = train, valid
        self.max_tokens, self.seed = max_tokens, seed
        self._skip_on_resume: int | None = None  # batches of the resumed epoch already trained

    def _loader(self, pairs: EncodedPairs, sampler: TokenBatchSampler) -> DataLoader:
        # The sampler yields whole batches and is the loader's `sampler` (batch_size=None), because that
        # is where Lightning calls `set_epoch` at the start of every epoch (never on a `batch_sampler`).
        # Its own generator: creating an iterator would otherwise draw from the global RNG that dropout
        # uses, and a resumed run creates iterators at other moments than an uninterrupted one.
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(PairBatches(pairs), sampler=sampler, batch_size=None, collate_fn=_as_is, generator=generator)

    def _sampler(self, pairs: EncodedPairs, shuffle: bool) -> TokenBatchSampler:
        return TokenBatchSampler(
            src_lens=[len(s) + 1 for s in pairs.src],  # + EOS
            tgt_lens=[len(t) + 1 for t in pairs.tgt],  # + BOS (tgt_in) / EOS (tgt_out)
            max_tokens=self.max_tokens,
            shuffle=shuffle,
            seed=self.seed,
            num_replicas=self.trainer.world_size,
            rank=self.trainer.global_rank,
            even=shuffle,  # training ranks must step together; validation covers every pair once
        )

    def train_dataloader(self) -> DataLoader:
        sampler = self._sampler(self.train, shuffle=True)
        if self._skip_on_resume is not None:
            # Lightning sets the epoch (its count of processed epochs) before iterating; the skip stays.
            sampler.skip(self._skip_on_resume)
            self._skip_on_resume = None
        return self._loader(self.train, sampler)

    def val_dataloader(self) -> DataLoader:
        # Each rank decodes its share of the validation set; the module gathers the hypotheses for BLEU.
        return self._loader(self.valid, self._sampler(self.valid, shuffle=False))

    def state_dict(self) -> dict[str, Any]:
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": self.trainer.current_epoch, "batches_done": progress.completed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._skip_on_resume = int(state_dict["batches_done"])  # the epoch itself is Lightning's to restore


def _as_is(batch: Batch) -> Batch:
    """The dataset already collates whole batches."""
    return batch
