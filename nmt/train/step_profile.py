"""Where a training step's time goes, by part of the Transformer, from PyTorch's profiler on CPU.

Every operator's own time (its time minus its children's) goes to one part, by what it works on: the optimizer step
and clipping by the range they run in (`Optimizer.*`); the embeddings by name; then the output projection and loss
(an operand with a dimension of the vocabulary's size), the feed-forward blocks (one of `d_ff`), the attention
products and softmax (a 4-D [B, H, T, S] operand, or an attention kernel), the attention's q, k, v and output
projections (the other matrix products), layer norm, and the rest (dropout, residual additions, masks, casts). What
the operators' times do not cover is Python and dispatch between them. `scripts/profile_train_step.py` runs it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch

PARTS = (
    "optimizer step and clipping",
    "embeddings",
    "output projection and loss",
    "feed-forward",
    "attention: scores, softmax, weighted sum",
    "attention: q, k, v and output projections",
    "layer norm",
    "dropout, residuals, masks, casts, other",
)
BETWEEN = "between operators (Python, dispatch)"
MATRIX_PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::linear", "aten::matmul")


@dataclass(frozen=True)
class StepProfile:
    """Seconds per step, unprofiled and profiled, and the profiled step's seconds by part (`PARTS`, then `BETWEEN`)."""

    seconds: float
    profiled: float
    parts: dict[str, float]


def profile_step(step: Callable[[], None], steps: int, vocab: int, d_ff: int) -> StepProfile:
    """Time `steps` calls of `step` (clipping inside an `Optimizer.*` profiler range), then profile as many; the
    caller warms up first."""
    seconds = _time(step, steps)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        profiled = _time(step, steps)
    parts: dict[str, float] = defaultdict(float)
    for event in prof.events():
        parts[part_of(event, vocab, d_ff)] += event.self_cpu_time_total / 1e6 / steps
    timed = {part: parts[part] for part in PARTS}
    return StepProfile(seconds, profiled, {**timed, BETWEEN: profiled - sum(timed.values())})


def part_of(event, vocab: int, d_ff: int) -> str:
    """The part (`PARTS`) of one profiler event (a `FunctionEvent` with input shapes), as the module docstring says."""
    parent = event
    while parent is not None:
        if parent.name.startswith("Optimizer."):
            return PARTS[0]
        parent = parent.cpu_parent
    shapes = [shape for shape in event.input_shapes or [] if shape]
    dims = {dim for shape in shapes for dim in shape}
    if "embedding" in event.name:
        return PARTS[1]
    if vocab in dims:
        return PARTS[2]
    if d_ff in dims:
        return PARTS[3]
    if any(len(shape) == 4 for shape in shapes) or "attention" in event.name:
        return PARTS[4]
    if event.name in MATRIX_PRODUCTS:
        return PARTS[5]
    if "layer_norm" in event.name:
        return PARTS[6]
    return PARTS[7]


def matmul_peak(dtype: torch.dtype, size: int = 2048) -> float:
    """FLOP/s of the best of 10 products of two `size` x `size` matrices of `dtype`."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    best = float("inf")
    for _ in range(10):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def _time(step: Callable[[], None], steps: int) -> float:
    """Seconds per call of `step`, the mean over `steps` calls."""
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps
