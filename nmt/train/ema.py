"""An exponential moving average of the weights that can begin after the warmup.

Averaging from the first update keeps decay^steps of the random initial weights in the average
(0.999^3200 is 4%), and early validations score an average of mostly untrained weights. Starting
later (`ema_start`, e.g. at the end of the warmup) begins the average from the weights of that
update; until then the run validates and checkpoints its raw weights.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging


class DelayedEMA(EMAWeightAveraging):
    """Lightning's EMA of the weights, begun with the weights after update `start` (0 or 1: the first).

    Lightning swaps its average in for validation, checkpoints and the end of training even before its
    first update, when the average is still a copy of the initial weights; this one uses the raw weights
    until the average has begun, and is Lightning's callback from then on.
    """

    def __init__(self, decay: float, start: int = 0) -> None:
        # Lightning counts updates from 0: its step index s is the weights after update s + 1.
        super().__init__(decay=decay, update_starting_at_step=max(start - 1, 0))

    def _begun(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._begun():
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._begun():
            super().on_validation_epoch_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._begun():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if "averaging_state" in checkpoint:  # saved once the average had begun; before, there is none to load
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._begun():
            super().on_train_end(trainer, pl_module)
