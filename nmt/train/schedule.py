"""Learning-rate schedules as multipliers of the peak rate, for `torch.optim.lr_scheduler.LambdaLR`."""

from __future__ import annotations

import math


def inverse_sqrt(step: int, warmup: int) -> float:
    """Linear warmup to 1, then decay with 1/sqrt(step) (Vaswani et al. 2017, eq. 3, rescaled to peak 1)."""
    step = max(step, 1)
    if warmup == 0:
        return 1.0 / math.sqrt(step)
    return min(step / warmup, math.sqrt(warmup / step))


def linear_warmup_decay(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1 over `warmup` steps, then linear decay to 0 at `total` steps."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))
