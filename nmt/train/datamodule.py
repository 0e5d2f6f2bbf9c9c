"""The LightningDataModule: token-budget batches over a prepared corpus's memory-mapped splits, resumable mid-epoch."""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from nmt.checkpoint import CheckpointError
from nmt.data.batching import Batch, TokenBatchSampler
from nmt.data.prepared import PairSplit, TokenArrays
from nmt.data.synonyms import SynonymTable, replace_synonyms
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.errors import UserError
from nmt.train.compat import batches_done
from nmt.train.resume import check_same_batch_order

DIGEST_CHUNK = 1 << 20  # lengths hashed at a time: a bounded copy however large the corpus


class PairBatches(Dataset):
    """A split indexed by whole batches: `dataset[indices]` is the `Batch` of those pairs."""

    def __init__(self, pairs: PairSplit) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, indices: list[int]) -> Batch:
        return self.pairs.batch(indices, PAD_ID, BOS_ID, EOS_ID)


class TranslationDataModule(L.LightningDataModule):
    """Serves training batches (shuffled per epoch, sharded per rank) and validation batches (fixed order,
    split across ranks).

    Its `state_dict` records how far the current epoch got, so a resumed run
    skips the batches it already trained on and sees the same data order as an
    uninterrupted run; and what that order depends on, so a resume whose order
    would differ is refused (`nmt.train.resume.check_same_batch_order`).
    """

    def __init__(
        self,
        train: PairSplit,
        valid: PairSplit,
        max_tokens: int,
        seed: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        max_sentences: int | None = None,
        synonyms: SynonymTable | None = None,
        synonym_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.synonyms, self.synonym_rate = synonyms, synonym_rate
        self.train, self.valid = train, valid
        self.max_tokens, self.max_sentences, self.seed = max_tokens, max_sentences, seed
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches already trained) of a resumed run

    def _loader(self, pairs: PairSplit, sampler: TokenBatchSampler, workers: int = 0) -> DataLoader:
        # The sampler yields whole batches and is the loader's `sampler` (batch_size=None), because that
        # is where Lightning calls `set_epoch` at the start of every epoch (never on a `batch_sampler`).
        # Its own generator: creating an iterator would otherwise draw from the global RNG that dropout
        # uses, and a resumed run creates iterators at other moments than an uninterrupted one.
        # The sampler runs in this process, so workers only assemble batches: the order is the same.
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            PairBatches(pairs),
            sampler=sampler,
            batch_size=None,
            collate_fn=_as_is,
            generator=generator,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=workers > 0,
        )

    def _sampler(self, pairs: PairSplit, shuffle: bool) -> TokenBatchSampler:
        return TokenBatchSampler(
            src_lens=_plus_one(pairs.src),  # + EOS
            tgt_lens=_plus_one(pairs.tgt),  # + BOS (tgt_in) / EOS (tgt_out)
            max_tokens=self.max_tokens,
            max_sentences=self.max_sentences,
            shuffle=shuffle,
            seed=self.seed,
            num_replicas=self.trainer.world_size,
            rank=self.trainer.global_rank,
            even=shuffle,  # training ranks must step together; validation covers every pair once
        )

    def train_dataloader(self) -> DataLoader:
        """The training batches of every epoch; those a resumed run already trained on are skipped.

        Raises:
            UserError: the split has no pairs, or too few batches to give every rank one.
            CheckpointError: the resumed epoch had more batches done than this run's epoch has.
        """
        sampler = self._sampler(self.train, shuffle=True)
        check_dealt(sampler)
        if self._resume_at is not None:
            # Lightning creates the first iterator before it sets the epoch, and with workers that iterator draws
            # its first batches at once: the sampler must hold the resumed epoch and skip from the start.
            epoch, done = self._resume_at
            if done > len(sampler):  # a checkpoint older than the recorded batch order, with other settings
                raise CheckpointError(
                    f"checkpoint {self.trainer.ckpt_path} was written after {done} batches of epoch {epoch}, but "
                    f"this run's epochs have {len(sampler)} batches per rank: its data or batching options "
                    "(seed, data.max_tokens, data.max_sentences, data.max_len, data.max_ratio, the corpus) differ "
                    "from the checkpoint's run. Resume with the original run's settings, or start a new run from "
                    f"its weights with init_from={self.trainer.ckpt_path}."
                )
            sampler.set_epoch(epoch)
            sampler.skip(done)
            self._resume_at = None
        return self._loader(self.train, sampler, self.num_workers)

    def val_dataloader(self) -> DataLoader:
        # Each rank decodes its share of the validation set; the module gathers the hypotheses for BLEU.
        return self._loader(self.valid, self._sampler(self.valid, shuffle=False))

    def on_before_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Training sources with synonyms put in (`nmt.data.synonyms`), on the host: their lengths change."""
        if self.synonyms is not None and self.trainer.training:
            return replace_synonyms(batch, self.synonyms, self.synonym_rate, self.seed, self.trainer.current_epoch)
        return batch

    @functools.cached_property
    def batch_order(self) -> dict[str, Any]:
        """What the training batches of an epoch, and their order, depend on besides the world size (keys of
        `nmt.train.resume.BATCH_ORDER_KEYS`)."""
        return {
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "max_sentences": self.max_sentences or 0,
            "train_pairs": len(self.train.src.lengths),
            "train_lengths": lengths_digest(self.train.src.lengths, self.train.tgt.lengths),
        }

    def state_dict(self) -> dict[str, Any]:
        """Where the epoch stands, across how many ranks its batches are dealt, and what their order depends on
        (see `nmt.train.resume`)."""
        return {
            "epoch": self.trainer.current_epoch,
            "batches_done": batches_done(self.trainer),
            "world_size": self.trainer.world_size,
            **self.batch_order,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the checkpoint's epoch where it stopped, after refusing a batch order of this run that differs
        from the checkpoint's (a key the checkpoint lacks is not checked).

        Raises:
            CheckpointError: naming each setting that differs, with both values.
        """
        check_same_batch_order(state_dict, self.batch_order, str(self.trainer.ckpt_path))
        self._resume_at = int(state_dict["epoch"]), int(state_dict["batches_done"])


def check_dealt(sampler: TokenBatchSampler) -> None:
    """Refuse a training split that leaves a rank without batches: Lightning would train nothing, warn
    'No training batches', and the run would end without a model.

    Raises:
        UserError: the split has no pairs, or fewer batches than ranks.
    """
    if sampler.num_batches == 0:
        raise UserError(
            "the training split has no pairs: every pair was filtered out when the corpus was prepared "
            "(its manifest.json holds the filter statistics). Raise data.max_len or data.max_ratio."
        )
    if len(sampler) == 0:
        raise UserError(
            f"the training split's {sampler.num_batches} batches cannot be dealt to {sampler.num_replicas} ranks: "
            "every rank needs one. Lower data.max_tokens or data.max_sentences, or train on fewer devices."
        )


def lengths_digest(src_lens: np.ndarray, tgt_lens: np.ndarray) -> str:
    """A short SHA-256 of the pairs' source and target lengths, in order: the data the batch order depends on
    (the same for any integer type the lengths are stored in)."""
    digest = hashlib.sha256()
    for lengths in (src_lens, tgt_lens):
        digest.update(len(lengths).to_bytes(8, "little"))
        for start in range(0, len(lengths), DIGEST_CHUNK):
            digest.update(np.asarray(lengths[start : start + DIGEST_CHUNK], dtype="<u4").tobytes())
    return digest.hexdigest()[:16]


def _plus_one(side: TokenArrays) -> np.ndarray:
    """The side's lengths + 1, in their own small integer type unless that would overflow."""
    lengths = side.lengths
    if len(lengths) and int(lengths.max()) >= np.iinfo(lengths.dtype).max:
        lengths = lengths.astype(np.int64)
    return lengths + 1


def _as_is(batch: Batch) -> Batch:
    """The dataset already collates whole batches."""
    return batch
