"""What a training run shows while it runs: a progress bar on a terminal, plain log lines elsewhere.

Both read the logged metrics only every `trainer.log_every_n_steps` updates. Reading a metric copies it from
the device, which makes the host wait for the GPU; Lightning syncs to log on those steps anyway. So no training
metric is logged with `prog_bar=True`: Lightning turns those into Python numbers after every batch, shown or not.
Lightning's own bar also writes a `\\r`-separated update per batch into a file or a CI log.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

SHOWN = {"train/loss": "loss {:.3f}", "lr": "lr {:.2e}", "tok_s": "{:,.0f} tok/s"}  # metric -> format


def progress_callbacks(show_bar: bool | None, every: int) -> list[Callback]:
    """A progress bar refreshed every `every` updates where `show_bar` (None: where stderr is a terminal),
    else a `LogLines` every `every` updates."""
    if show_bar is None:
        show_bar = sys.stderr.isatty()
    return [Bar(refresh_rate=max(every, 1))] if show_bar else [LogLines(every)]


class Bar(TQDMProgressBar):
    """Lightning's bar, showing the `SHOWN` training metrics, read when it refreshes."""

    def get_metrics(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, module)
        return {**metrics, **{name: float(value) for name, value in _shown(trainer).items()}}


class LogLines(Callback):
    """One line on stderr every `every` updates, from rank 0: step, loss, learning rate, speed, time."""

    def __init__(self, every: int) -> None:
        self.every = max(every, 1)
        self._start = time.perf_counter()
        self._logged = 0  # the update last logged (or started from): once per update, not per accumulated batch

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._logged = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *_: Any) -> None:
        step = trainer.global_step
        if step == self._logged or step % self.every or not trainer.is_global_zero:
            return
        self._logged = step
        parts = [f"step {trainer.global_step:,}" + (f"/{trainer.max_steps:,}" if trainer.max_steps > 0 else "")]
        parts += [SHOWN[name].format(float(value)) for name, value in _shown(trainer).items()]
        parts.append(_clock(time.perf_counter() - self._start))
        print(" | ".join(parts), file=sys.stderr, flush=True)


def _shown(trainer: L.Trainer) -> dict[str, Any]:
    """The latest values of the `SHOWN` metrics that have been logged (device tensors, not yet read)."""
    return {name: trainer.callback_metrics[name] for name in SHOWN if name in trainer.callback_metrics}


def _clock(seconds: float) -> str:
    """H:MM:SS."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
