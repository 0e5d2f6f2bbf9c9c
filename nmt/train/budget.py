"""Training to a time budget (`optim.schedule_by=time`): the run's clock, and the callback that ends the run and
places its validations by the share of `trainer.max_time` spent.

What counts as time is the wall time of the fit, as Lightning's `max_time` counts it: from the first training
step on, validations and checkpoint writes included, across resumes (a checkpoint saves the seconds spent, and a
resumed run adds its own). Data preparation before the fit and the export or averaging after it do not count.
Validation is counted because the budget is what the run costs: leaving it out would let a run with frequent
validations overrun its budget by their total, and the learning rate would no longer end with the budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from nmt.config import ConfigError, TrainConfig
from nmt.train.compat import batches_done_in_run, validate_after_this_batch


class TrainingClock:
    """Seconds of training across resumes: those a checkpoint saved, plus this process's since `start`.

    Args:
        now: the clock read, in seconds (`time.monotonic`; a test passes a fake one).
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.now = now
        self.before = 0.0  # seconds of the run before this process (restored from a checkpoint)
        self._start: float | None = None

    def start(self) -> None:
        """Training begins (again) in this process."""
        self._start = self.now()

    def restore(self, seconds: float) -> None:
        """Continue a run that had trained `seconds` when its checkpoint was written."""
        self.before = seconds

    def elapsed(self) -> float:
        """Seconds of training so far, this process's and those before it."""
        return self.before + (0.0 if self._start is None else self.now() - self._start)


def max_time_seconds(max_time: str) -> int:
    """Seconds of a `DD:HH:MM:SS` budget."""
    try:
        days, hours, minutes, seconds = (int(part) for part in max_time.split(":"))
    except ValueError:
        raise ConfigError(f"`trainer.max_time` must be DD:HH:MM:SS, but is {max_time!r} instead.") from None
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def validation_points(every: float) -> list[float]:
    """Shares of the budget to validate at: its end, and every `every` before it (`every` in (0, 1]).

    Counted back from the end, so that the last validation comes at the end whatever `every` is, and the
    checkpoints that `keep_last` keeps lie evenly spaced in the budget's last stretch.
    """
    count = math.ceil(round(1.0 / every, 9))  # round: 1 / 0.1 must give 10 points, not 11
    return [1.0 - k * every for k in range(count) if 1.0 - k * every > 0.0]


class TimeBudget(Callback):
    """Ends the run after the update that reaches `seconds` on `clock`, and validates at `validation_points`.

    `progress()` is the share of the budget spent, read just before each update, which the learning rate after
    that update (Lightning steps the schedule before `on_train_batch_end`), the start of the weight average, the
    stop and the validations follow. Rank 0's clock decides it for every rank, so that all ranks update with the
    same learning rate and stop and validate together.

    Args:
        clock: the run's training clock (the module's, which checkpoints save and resumes restore).
        seconds: the budget, `trainer.max_time`.
        validate_every: share of the budget between validations, counted back from its end.
    """

    def __init__(self, clock: TrainingClock, seconds: float, validate_every: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.points = validation_points(validate_every)
        self._progress = 0.0
        self._decided = 0.0  # the progress at which the latest validation and stop were decided
        self._validated_batch = -1  # training batches done in the run when it last validated

    def progress(self) -> float:
        """The share of the budget spent, as read before the latest update (0 before training)."""
        return self._progress

    def reached(self, share: float) -> bool:
        """Whether `share` of the budget has been spent."""
        return self._progress >= share

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._progress = self._decided = self._agreed_progress(trainer)
        # Resumed from a checkpoint written while validating: Lightning must see that validation as one it
        # scheduled, to finish it before training on (as it does at `val_check_interval`).
        validate_after_this_batch(trainer, batches_done_in_run(trainer) == self._validated_batch)

    def on_before_optimizer_step(self, trainer: L.Trainer, module: L.LightningModule, optimizer: Any) -> None:
        self._progress = self._agreed_progress(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        """Validate when the latest update passed a validation point, and stop once the budget is spent. A batch
        that only accumulates gradients reads no time, so the run stops and validates after whole updates."""
        before, self._decided = self._decided, max(self._decided, self._progress)  # a validation may have moved it on
        validate = any(before < point <= self._progress for point in self.points)
        if validate:
            self._validated_batch = batches_done_in_run(trainer)
        validate_after_this_batch(trainer, validate)
        if self._progress >= 1.0:
            trainer.should_stop = True

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Skip the points a validation overran: one longer than the interval between points would otherwise be
        followed by another after every update (the budget's end is still validated: stopping validates)."""
        if not trainer.sanity_checking:
            self._decided = max(self._decided, self._agreed_progress(trainer))

    def _agreed_progress(self, trainer: L.Trainer) -> float:
        """Rank 0's share of the budget spent, on every rank."""
        return float(trainer.strategy.broadcast(self.clock.elapsed() / self.seconds, src=0))

    def state_dict(self) -> dict[str, Any]:
        return {"validated_batch": self._validated_batch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._validated_batch = int(state_dict.get("validated_batch", -1))


def describe_budget(cfg: TrainConfig) -> str:
    """One line saying how a run scheduled by time spends its budget."""
    optim, trainer = cfg.optim, cfg.trainer
    decay = "decays linearly to 0 at its end" if optim.schedule == "linear" else "decays with 1/sqrt(time)"
    line = (
        f"schedule by time: the learning rate warms up over the first {optim.warmup_fraction:.1%} of max_time "
        f"{trainer.max_time} (wall time of the fit, validation included) and {decay}; validation every "
        f"{trainer.val_check_fraction:.1%} of it, the last at its end"
    )
    if cfg.ema_decay and cfg.ema_start_fraction:
        line += f"; the weight average begins after {cfg.ema_start_fraction:.1%} of it"
    return line + "; max_time alone ends the run (trainer.max_steps and trainer.max_epochs are not used)"
