"""Learning-rate schedules as multipliers of the peak rate, for `torch.optim.lr_scheduler.LambdaLR`: by optimizer
step, or by the share of a time budget spent (`optim.schedule_by`)."""

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


def inverse_sqrt_by_time(progress: float, warmup: float) -> float:
    """`inverse_sqrt` on the share of a time budget spent (`progress`, from 0): linear warmup to 1 over its
    first `warmup` share (> 0), then decay with 1/sqrt(progress)."""
    if progress < warmup:
        return progress / warmup
    return math.sqrt(warmup / progress)


def linear_by_time(progress: float, warmup: float) -> float:
    """Linear warmup to 1 over the first `warmup` share of a time budget, then linear decay to 0 at its end
    (`progress` 1): a schedule that ends with the budget beats one cut short by it (Li et al. 2020,
    "Budgeted Training: Rethinking Deep Neural Network Training Under Resource Constraints")."""
    if progress < warmup:
        return progress / warmup
    return max(0.0, (1.0 - progress) / (1.0 - warmup))
