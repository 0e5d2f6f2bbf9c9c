"""Training speed as users feel it: real (non-pad) source+target tokens per second of training wall time."""

from __future__ import annotations

import resource
import statistics
import time
from typing import Any

import lightning as L
import torch
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

    def __init__(self, warmup: int = 10) -> None:
        self.warmup = warmup
        self.rates: list[float] = []
        self.tokens = 0
        self.seconds = 0.0
        self.all_ranks_tok_s = 0.0
        self.ranks = 1
        self._last: float | None = None

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Batch, _: int
    ) -> None:
        now = time.perf_counter()
        tokens = batch.src_tokens + batch.tgt_tokens  # counted at collate time: no device sync
        if self._last is not None:
            rate = tokens / (now - self._last)
            # torch.full fills on the device; `log` would copy a float from the host, which waits for the GPU.
            module.log("tok_s", torch.full((), rate, device=module.device), batch_size=1)
            if trainer.global_step > self.warmup:
                self.rates.append(rate)
                self.tokens += tokens
                self.seconds += now - self._last
        self._last = now

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last = None

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Add up the measured tokens of every rank, once: the speed of the whole (DDP) job."""
        totals = torch.tensor([float(self.tokens), self.seconds], dtype=torch.float64, device=module.device)
        totals = trainer.strategy.reduce(totals, reduce_op="sum")
        self.ranks = trainer.world_size
        tokens, seconds = totals.tolist()
        self.all_ranks_tok_s = tokens / (seconds / self.ranks) if seconds else 0.0  # ranks step in lockstep

    def summary(self) -> dict[str, float]:
        """Median and mean tokens/s of this rank over the measured steps, the mean of all ranks together,
        and this process's peak resident memory."""
        return {
            "steps_measured": len(self.rates),
            "median_tok_s": statistics.median(self.rates) if self.rates else 0.0,
            "mean_tok_s": self.tokens / self.seconds if self.seconds else 0.0,
            "ranks": self.ranks,
            "all_ranks_tok_s": self.all_ranks_tok_s,
            "peak_rss_gb": peak_rss_gb(),
        }
