"""Training speed as users feel it: real (non-pad) source+target tokens per second of training wall time."""

from __future__ import annotations

import resource
import statistics
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from nmt.data.batching import Batch


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


class Throughput(Callback):
    """Logs `tok_s` each step and keeps per-step rates for a summary.

    The clock runs from one training batch end to the next, so data loading and
    the optimizer step count, and validation (which resets the clock) does not.
    The first `warmup` steps (allocator and thread-pool warm-up) are left out of
    the summary.
    """

    def __init__(self, pad_id: int, warmup: int = 10) -> None:
        self.pad_id, self.warmup = pad_id, warmup
        self.rates: list[float] = []
        self.tokens = 0
        self.seconds = 0.0
        self._last: float | None = None

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Batch, _: int
    ) -> None:
        now = time.perf_counter()
        tokens = int(batch.src.ne(self.pad_id).sum() + batch.tgt_out.ne(self.pad_id).sum())
        if self._last is not None:
            rate = tokens / (now - self._last)
            module.log("tok_s", rate, prog_bar=True, batch_size=1)
            if trainer.global_step > self.warmup:
                self.rates.append(rate)
                self.tokens += tokens
                self.seconds += now - self._last
        self._last = now

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last = None

    def summary(self) -> dict[str, float]:
        """Median and mean tokens/s over the measured steps, and peak resident memory."""
        return {
            "steps_measured": len(self.rates),
            "median_tok_s": statistics.median(self.rates) if self.rates else 0.0,
            "mean_tok_s": self.tokens / self.seconds if self.seconds else 0.0,
            "peak_rss_gb": peak_rss_gb(),
        }
