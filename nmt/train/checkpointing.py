"""Writing training checkpoints: atomically, read back as data, `last.ckpt` at every validation, and a
validation of the very last step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn

from nmt.checkpoint import check_training_checkpoint, read_raw, save_checkpoint
from nmt.train.compat import batches_done_in_run, last_saved_step, save_last_checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temp file and renamed (a kill never leaves a torn `last.ckpt`),
    and read back with `weights_only=True` (no pickled code runs on resume)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        raw = read_raw(path)
        check_training_checkpoint(raw, path)  # Lightning reads files only to resume
        return raw


class CheckpointEveryValidation(ModelCheckpoint):
    """Top-k checkpoints by the monitored metric, and `last.ckpt` refreshed at every validation and at the end.

    Lightning (2.6) rewrites `last.ckpt` only when a top-k checkpoint is saved, so while
    BLEU plateaus a kill would lose every step since the last improvement; and a run that
    stops between validations (max_steps, max_time) would resume from before its last steps.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._unscheduled = False  # whether the latest validation came between scheduled ones

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not trainer.sanity_checking:
            self._refresh_last(trainer)
            # Lightning's own rule (with check_val_every_n_epoch=None): was this a scheduled validation?
            self._unscheduled = batches_done_in_run(trainer) % trainer.val_check_batch != 0

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer, again=self._unscheduled)

    def _refresh_last(self, trainer: L.Trainer, again: bool = False) -> None:
        """Write `last.ckpt` unless this step's is written; `again`: in any case. A run whose last validation
        came between scheduled ones (`max_time`, `ValidateTheLastStep`) writes it again at the end: resumed
        from the copy written during that validation, Lightning would log every later step one step behind."""
        fitting = trainer.state.fn == TrainerFn.FITTING
        if fitting and self.save_last and (again or last_saved_step(self) != trainer.global_step):
            save_last_checkpoint(self, trainer)


class ValidateTheLastStep(Callback):
    """Validate (and so checkpoint) the weights of the last step when `max_steps` is no multiple of
    `val_check_interval`: asking Lightning to stop there makes it validate first, as it does when `max_time`
    runs out, so `model.pt` can be the final weights, not only those of the last interval."""

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True
