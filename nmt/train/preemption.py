"""Preemption: a run told to stop by SIGTERM (or SIGUSR1, SLURM's warning signal) writes `last.ckpt` and exits.

Lightning already catches SIGTERM: it finishes the current batch, has every DDP rank stop at the same step
(rank 0 broadcasts the signal) and raises `SIGTERMException`, but writes no checkpoint. This callback also
routes SIGUSR1 there and writes `last.ckpt` of the finished step, so a requeued job continues with
`resume=last` exactly where the signal stopped it.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from nmt.train.compat import save_last_checkpoint

PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM  # the shell's code for a process ended by SIGTERM


class WriteLastOnPreemption(Callback):
    """On SIGTERM or SIGUSR1, write `checkpoint`'s `last.ckpt` at the step the run stopped."""

    def __init__(self, checkpoint: ModelCheckpoint) -> None:
        self.checkpoint = checkpoint
        self.stopped_at: int | None = None  # the step written, once a signal stopped the run
        self._previous: Any = None

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = signal.signal(signal.SIGUSR1, _as_sigterm)

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):  # every rank gets here at the same step: saving is collective
            save_last_checkpoint(self.checkpoint, trainer)
            self.stopped_at = trainer.global_step

    def teardown(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGUSR1, self._previous)
            self._previous = None


def _as_sigterm(signum: int, frame: FrameType | None) -> None:
    """Hand SIGUSR1 to the SIGTERM handler in force (Lightning's, during a fit)."""
    handler = signal.getsignal(signal.SIGTERM)
    if callable(handler):
        handler(signal.SIGTERM, frame)


class Preempted(Exception):
    """The run was stopped by a signal after writing `path` at `step` (None: stopped before training began)."""

    def __init__(self, step: int | None, path: Path) -> None:
        where = f"at step {step:,}; {path} holds it" if step is not None else "before its first step"
        super().__init__(f"stopped by a signal {where}: continue with resume=last in the same run directory.")
        self.step, self.path = step, path
