"""A training split that cannot train: one the filter empties, or one with fewer batches than ranks, is refused
in one line, instead of a run that logs 'No training batches' and ends without a model."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from nmt.config import ConfigError, DataConfig, TokenizerConfig, TrainConfig, check
from nmt.data.corpus import CorpusError
from nmt.data.prepare import prepare_corpus
from nmt.errors import UserError
from nmt.train.datamodule import TranslationDataModule


def test_a_filter_that_drops_every_training_pair_is_refused_quoting_its_statistics(spm_cache, tmp_path) -> None:
    """The built-in pairs have 5 words or more, so at least 5 pieces: `max_len=4` drops all of them."""
    data = DataConfig(name="builtin", builtin_train_size=300, max_len=4, cache_dir=str(spm_cache))
    with pytest.raises(CorpusError, match=r"no training pair of builtin train\.en, builtin train\.de is left") as err:
        prepare_corpus(data, TokenizerConfig(vocab_size=300), tmp_path / "empty")
    assert "kept 0 of 300 pairs; dropped 0 with an empty side, 300 longer than 4 tokens" in str(err.value)
    assert not (tmp_path / "empty").exists()
    kept = prepare_corpus(dataclasses.replace(data, max_len=128), TokenizerConfig(vocab_size=300), tmp_path / "all")
    assert kept["splits"]["train"]["pairs"] == 300


def data_module(pairs: int, ranks: int) -> TranslationDataModule:
    """A data module over `pairs` pairs of 9 tokens each (10 with EOS), 2 pairs per batch, on rank 0 of `ranks`."""
    side = SimpleNamespace(lengths=np.full(pairs, 9, dtype=np.uint8))
    split = SimpleNamespace(src=side, tgt=side)
    module = TranslationDataModule(split, split, max_tokens=20, seed=0)
    module.trainer = SimpleNamespace(world_size=ranks, global_rank=0)
    return module


def test_a_training_split_without_pairs_is_refused() -> None:
    with pytest.raises(UserError, match="the training split has no pairs: every pair was filtered out"):
        data_module(pairs=0, ranks=1).train_dataloader()
    assert len(data_module(pairs=1, ranks=1).train_dataloader().sampler) == 1


def test_fewer_training_batches_than_ranks_are_refused() -> None:
    with pytest.raises(UserError, match="the training split's 3 batches cannot be dealt to 4 ranks"):
        data_module(pairs=6, ranks=4).train_dataloader()
    assert len(data_module(pairs=8, ranks=4).train_dataloader().sampler) == 1


@pytest.mark.parametrize(("max_len", "refused"), [(0, True), (-1, True), (1, False)])
def test_data_max_len_must_be_at_least_one(max_len, refused) -> None:
    cfg = TrainConfig(data=DataConfig(max_len=max_len))
    if not refused:
        assert check(cfg).data.max_len == max_len
        return
    with pytest.raises(ConfigError, match=rf"`data\.max_len` must be >= 1, but is {max_len} instead"):
        check(cfg)
