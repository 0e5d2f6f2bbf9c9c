"""An exponential moving average of the weights that can begin after the warmup.

Averaging from the first update keeps decay^steps of the random initial weights in the average
(0.999^3200 is 4%), and early validations score an average of mostly untrained weights. Starting
later (`ema_start`, e.g. at the end of the warmup; with a schedule by time `ema_start_fraction` of the budget)
begins the average from the weights of that update; until then the run validates and checkpoints its raw weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging

from nmt.train.compat import average_begun


class DelayedEMA(EMAWeightAveraging):
    """Lightning's EMA of the weights, begun with the weights after update `start` (0 or 1: the first), or, when
    `start_reached` is given, after the first update at which it returns True (a share of the time budget spent).

    Lightning swaps its average in for validation, checkpoints and the end of training even before its
    first update, when the average is still a copy of the initial weights; this one uses the raw weights
    until the average has begun, and is Lightning's callback from then on, except at the end of training,
    where it leaves the raw weights in place (see `on_train_end`).
    """

    def __init__(self, decay: float, start: int = 0, start_reached: Callable[[], bool] | None = None) -> None:
        # Lightning counts updates from 0: its step index s is the weights after update s + 1.
        super().__init__(decay=decay, update_starting_at_step=max(start - 1, 0))
        self._start_reached = start_reached
        self._swapped = False  # the average is in the module for validation

    def _begun(self) -> bool:
        return average_begun(self)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if self._start_reached is not None and not self._begun() and not self._start_reached():
            return False
        return super().should_update(step_idx, epoch_idx)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._begun():
            super().on_validation_epoch_start(trainer, pl_module)
            self._swapped = True

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._swapped:
            super().on_validation_epoch_end(trainer, pl_module)
            self._swapped = False

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._begun():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)
            if self._swapped:  # mid-validation (a signal stopped it): the module holds the average, not the raw weights
                checkpoint["state_dict"], checkpoint["current_model_state"] = (
                    checkpoint["current_model_state"],
                    checkpoint["state_dict"],
                )

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if "averaging_state" in checkpoint:  # saved once the average had begun; before, there is none to load
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Leave the raw weights in the module (Lightning's callback copies the average in here): the checkpoints
        carry the average as their weights already, and the `last.ckpt` written after this hook must keep the
        raw weights as the state to continue from, which goes with the optimizer's moments."""
