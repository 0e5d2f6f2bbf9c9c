"""The optimizer and its schedule: weight decay only on weight matrices, warmup then decay per step."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nmt.config import OptimConfig
from nmt.train.schedule import inverse_sqrt, inverse_sqrt_by_time, linear_by_time, linear_warmup_decay


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay weight matrices only. Biases and LayerNorm gains are spared as in BERT's AdamW recipe
    (decaying a gain towards 0 shrinks the layer's output, it does not regularise it), and so are
    embeddings, where decay pulls the vectors of rare tokens, which get few gradient updates, to zero.

    A weight tied to an embedding (`tie_output`) counts as an embedding.
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for param in model.parameters():  # shared (tied) parameters appear once
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or id(param) in embeddings else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


FUSED_DEVICES = ("cpu", "cuda")
FUSED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def fused_kernels_apply(model: nn.Module) -> bool:
    """Whether torch's fused Adam kernels take every parameter of `model` (device type and dtype)."""
    return all(p.device.type in FUSED_DEVICES and p.dtype in FUSED_DTYPES for p in model.parameters())


def build_optimizer(
    model: nn.Module,
    cfg: OptimConfig,
    max_steps: int,
    allow_fused: bool = True,
    progress: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Adam or AdamW with its per-step LambdaLR schedule, in the form `configure_optimizers` returns.

    Fused where the kernels apply (else foreach): one kernel per step, and it skips a non-finite update on
    the device (`found_inf`, see `TranslationModule.configure_gradient_clipping`), with no host sync.

    Args:
        model: the network whose parameters to optimise (on their training device already).
        cfg: optimizer and schedule settings.
        max_steps: total optimizer steps (for the linear schedule by steps).
        allow_fused: False where fused kernels must not be used (a GradScaler would not unscale them in time).
        progress: the share of the time budget spent so far (`nmt.train.budget.TimeBudget.progress`); needed
            with `cfg.schedule_by` time.
    """
    optimizer_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    groups = parameter_groups(model, cfg.weight_decay)
    fused = allow_fused and fused_kernels_apply(model)
    optimizer = optimizer_class(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused, foreach=not fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_factor(cfg, max_steps, progress))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def schedule_factor(
    cfg: OptimConfig, max_steps: int, progress: Callable[[], float] | None = None
) -> Callable[[int], float]:
    """The multiplier of the peak rate LambdaLR asks for after each step: of the step count, or, by time, of the
    budget's share spent then (the step count is ignored)."""
    if cfg.schedule_by == "time":
        if progress is None:
            raise ValueError("a schedule by time needs `progress`, the share of the time budget spent")
        shape = linear_by_time if cfg.schedule == "linear" else inverse_sqrt_by_time
        # A partial, not a closure: LambdaLR saves a callable object's __dict__ in checkpoints (a partial's is empty).
        return functools.partial(_by_time, progress=progress, shape=shape, warmup=cfg.warmup_fraction)
    if cfg.schedule == "inverse_sqrt":
        return functools.partial(inverse_sqrt, warmup=cfg.warmup_steps)
    return functools.partial(linear_warmup_decay, warmup=cfg.warmup_steps, total=max_steps)


def _by_time(step: int, progress: Callable[[], float], shape: Callable[[float, float], float], warmup: float) -> float:
    """`shape` at the budget's share spent now, whatever the step."""
    return shape(progress(), warmup)
