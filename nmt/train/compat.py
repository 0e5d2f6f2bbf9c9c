"""Every private Lightning API nmt uses, in one place, each behind a function that says what it is for.

Lightning's private names can change in any minor release, which is why `pyproject.toml` caps Lightning below
the next minor version not yet tested; `tests/test_compat.py` checks each of these against the installed
version. The PyTorch counterpart is `nmt.compat`.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint

CSVExperimentWriter = _ExperimentWriter  # writes a CSVLogger's metrics.csv; nmt.train.logs makes it continue one


def batches_done(trainer: L.Trainer) -> int:
    """Training batches completed in the current epoch (what a resumed run must skip)."""
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.completed)


def batches_done_in_run(trainer: L.Trainer) -> int:
    """Training batches completed in this run, across epochs (Lightning's count for `val_check_interval`)."""
    return int(trainer.fit_loop.epoch_loop.total_batch_idx) + 1


def validate_after_this_batch(trainer: L.Trainer, validate: bool) -> None:
    """Have Lightning validate after the current training batch, or not: its batch rule (with
    `check_val_every_n_epoch=None`) validates when the batches done in the run are a multiple of `val_check_batch`,
    so that is set to the count now, or to the next one. Lightning reads it after `on_train_batch_end`, and when a
    resumed run restarts, to learn whether its checkpoint was written at a validation."""
    done = batches_done_in_run(trainer)
    trainer.val_check_batch = done if validate else done + 1


def save_last_checkpoint(callback: ModelCheckpoint, trainer: L.Trainer) -> None:
    """Have `callback` write its `last.ckpt` now, with the metrics it monitors."""
    callback._save_last_checkpoint(trainer, callback._monitor_candidates(trainer))


def last_saved_step(callback: ModelCheckpoint) -> int:
    """The global step of the last checkpoint `callback` wrote (-1 before any)."""
    return int(callback._last_global_step_saved)


def average_begun(callback: EMAWeightAveraging) -> bool:
    """Whether the weight average of `callback` holds at least one update (not only the initial copy)."""
    average: Any = callback._average_model
    return average is not None and int(average.n_averaged) > 0
