"""Resuming mid-epoch: a checkpoint records what the batch order of its epoch depends on, and a resume whose
order would differ (seed, data.max_tokens, data.max_sentences, the training pairs left after filtering) is
refused naming the setting and both values, instead of silently dropping or repeating pairs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import train_config
from train_helpers import SHORT

from nmt.checkpoint import CheckpointError
from nmt.config import DataConfig, TrainConfig
from nmt.train.datamodule import TranslationDataModule, lengths_digest
from nmt.train.resume import BATCH_ORDER_KEYS, batching_options, check_same_batch_order
from nmt.train.run import train

CKPT = "run/checkpoints/last.ckpt"


def split(lengths: list[int] | np.ndarray) -> SimpleNamespace:
    """What the data module reads of a `PairSplit`: each side's lengths (here the same on both sides)."""
    side = SimpleNamespace(lengths=np.asarray(lengths, dtype=np.uint16))
    return SimpleNamespace(src=side, tgt=side)


def trainer(epoch: int = 0, done: int = 0) -> SimpleNamespace:
    """The parts of a Lightning `Trainer` the data module reads: its place in the epoch, ranks and checkpoint."""
    progress = SimpleNamespace(current=SimpleNamespace(completed=done))
    fit_loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress))
    return SimpleNamespace(current_epoch=epoch, fit_loop=fit_loop, world_size=1, global_rank=0, ckpt_path=CKPT)


PAIRS = np.random.default_rng(0).integers(2, 30, size=400)
RUN = {"train": split(PAIRS), "max_tokens": 256, "seed": 3, "max_sentences": None}


def module(**changes) -> TranslationDataModule:
    """A data module of `RUN` with `changes`, attached to a trainer at the start of an epoch."""
    options = {**RUN, **changes}
    dm = TranslationDataModule(options.pop("train"), split([4]), **options)
    dm.trainer = trainer()
    return dm


def checkpoint(epoch: int = 2, done: int = 5) -> dict:
    """The data module's state as a checkpoint of `RUN` holds it, `done` batches into `epoch`."""
    saved = module()
    saved.trainer = trainer(epoch, done)
    return saved.state_dict()


def epoch_batches(dm: TranslationDataModule, epoch: int) -> list[list[int]]:
    sampler = dm.train_dataloader().sampler
    sampler.set_epoch(epoch)
    return list(sampler)


def test_an_unchanged_resume_continues_the_epoch_after_the_batches_done() -> None:
    resumed = module()
    resumed.load_state_dict(checkpoint(epoch=2, done=5))
    assert list(resumed.train_dataloader().sampler) == epoch_batches(module(), 2)[5:]


@pytest.mark.parametrize(
    ("changes", "changed", "values"),
    [
        ({"seed": 4}, ("seed",), "(checkpoint 3, this run 4)"),
        ({"max_tokens": 128}, ("max_tokens",), "(checkpoint 256, this run 128)"),
        ({"max_sentences": 8}, ("max_sentences",), "(checkpoint 0, this run 8)"),
        ({"train": split(PAIRS[:-1])}, ("train_pairs", "train_lengths"), "(checkpoint 400, this run 399)"),
        ({"train": split(PAIRS[::-1])}, ("train_lengths",), "(checkpoint '"),
    ],
    ids=["seed", "max_tokens", "max_sentences", "pairs", "lengths"],
)
def test_a_resume_with_another_batch_order_is_refused_naming_the_setting(changes, changed, values) -> None:
    with pytest.raises(CheckpointError, match=rf"checkpoint {CKPT} cannot continue its epoch") as err:
        module(**changes).load_state_dict(checkpoint())
    message = str(err.value)
    assert f"{BATCH_ORDER_KEYS[changed[0]]} {values}" in message and f"init_from={CKPT}" in message
    assert {key for key, name in BATCH_ORDER_KEYS.items() if f"{name} (checkpoint" in message} == set(changed)


def test_no_cap_is_the_same_batch_order_whether_written_0_or_none() -> None:
    module(max_sentences=0).load_state_dict(checkpoint())


def test_the_lengths_digest_follows_the_lengths_not_their_integer_type() -> None:
    wide = lengths_digest(PAIRS.astype(np.uint32), PAIRS.astype(np.uint32))
    assert wide == lengths_digest(PAIRS.astype(np.uint8), PAIRS.astype(np.uint8))
    assert wide != lengths_digest(PAIRS, PAIRS[::-1])
    assert lengths_digest(PAIRS[:2], PAIRS[2:4]) != lengths_digest(PAIRS[:4], PAIRS[:0])  # where the sides split


def test_an_old_checkpoint_without_the_batch_order_is_resumed_unchecked() -> None:
    old = {k: checkpoint()[k] for k in ("epoch", "batches_done", "world_size")}
    resumed = module(max_tokens=200)
    resumed.load_state_dict(old)
    assert list(resumed.train_dataloader().sampler) == epoch_batches(module(max_tokens=200), 2)[5:]


def test_an_old_checkpoint_further_into_its_epoch_than_this_run_has_batches_is_refused() -> None:
    """Not the bare `ValueError` of `TokenBatchSampler.skip`: the checkpoint and what may have changed."""
    small = module(max_tokens=4096)
    batches = len(small.train_dataloader().sampler)
    small.load_state_dict({"epoch": 2, "batches_done": batches + 1, "world_size": 1})
    with pytest.raises(CheckpointError, match=rf"after {batches + 1} batches of epoch 2, but .* have {batches} batch"):
        small.train_dataloader()


def test_the_config_gives_the_batching_options_a_checkpoint_records() -> None:
    """What `load_resume_state` checks before data preparation: the config against the checkpoint's record."""
    cfg = TrainConfig(seed=3, data=DataConfig(max_tokens=256, max_sentences=None))
    check_same_batch_order(checkpoint(), batching_options(cfg), CKPT)
    other = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, max_tokens=300))
    with pytest.raises(CheckpointError, match=r"data\.max_tokens \(checkpoint 256, this run 300\)"):
        check_same_batch_order(checkpoint(), batching_options(other), CKPT)


# --- through `nmt-train` (these train: a few steps on the built-in corpus) ------------------------------------


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, spm_cache) -> TrainConfig:
    """A 4-step run stopped inside its first epoch."""
    cfg = train_config(tmp_path_factory.mktemp("stopped"), spm_cache, SHORT + ["trainer.max_steps=4"])
    train(cfg)
    return cfg


def test_a_resume_with_another_token_budget_is_refused_before_data_preparation(stopped, spm_cache, capsys) -> None:
    budget = stopped.data.max_tokens
    overrides = SHORT + [f"data.max_tokens={budget // 2}", "trainer.max_steps=8", "resume=last"]
    with pytest.raises(CheckpointError, match=rf"data\.max_tokens \(checkpoint {budget}, this run {budget // 2}\)"):
        train(train_config(Path(stopped.run_dir), spm_cache, overrides))
    printed = capsys.readouterr()
    assert "data:" not in printed.out + printed.err  # refused before the data was prepared


def test_a_resume_whose_filter_keeps_other_pairs_is_refused_naming_both_counts(stopped, spm_cache) -> None:
    # Measured: the built-in pairs have 8-27 pieces at this vocabulary (median 15); the run kept all (max_len 128).
    overrides = SHORT + ["data.max_len=16", "trainer.max_steps=8", "resume=last"]
    with pytest.raises(CheckpointError, match=r"training pairs left after .* \(checkpoint \d+, this run \d+\)"):
        train(train_config(Path(stopped.run_dir), spm_cache, overrides))
