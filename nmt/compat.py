"""Every private PyTorch API nmt uses, in one place, each behind a function that says what it is for.

Private names can change in any PyTorch release; `tests/test_compat.py` checks each one against the installed
version, so an upgrade that breaks one fails there, by name, rather than deep inside training or decoding.
The Lightning counterpart is `nmt.train.compat` (kept apart so that decoding never imports Lightning).
"""

from __future__ import annotations

import torch
from torch import Tensor


def foreach_norm(tensors: list[Tensor]) -> list[Tensor]:
    """The 2-norm of each tensor, in one kernel per dtype and device (`torch._foreach_norm`)."""
    return list(torch._foreach_norm(tensors))


def foreach_mul_(tensors: list[Tensor], factor: Tensor) -> None:
    """Multiply every tensor in place by the 0-d tensor `factor`, without reading it on the host."""
    torch._foreach_mul_(tensors, factor)


def skip_update_on_device(optimizer: torch.optim.Optimizer, found_inf: Tensor) -> bool:
    """Have a fused optimizer skip its next step where the 0-d `found_inf` is 1.0, decided on the device.

    This is the protocol `torch.amp.GradScaler` uses with fused Adam(W) (`_step_supports_amp_scaling`, and the
    `found_inf` and `grad_scale` attributes its `step` reads); the step also takes back its step count.
    Returns False, doing nothing, for an optimizer without that support.
    """
    if not getattr(optimizer, "_step_supports_amp_scaling", False):
        return False
    optimizer.found_inf, optimizer.grad_scale = found_inf, None
    return True


def onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """`F.linear(x, weight, bias)` in float32 computed by oneDNN (`mkldnn._linear_pointwise`), on CPU."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
