"""The arithmetic a search runs in: float32, bf16 autocast, or int8 linear layers on CPU.

`32` is the reference. `bf16` runs matrix products in bfloat16 under `torch.autocast` (fast
where the hardware has bf16 units: AMX or AVX512-BF16 CPUs, and GPUs; emulated, and slower,
elsewhere), keeping float32 weights, normalisation and the final log-softmax. `int8` replaces
every linear layer, the output projection included, by PyTorch's dynamically quantized one
(int8 weights, activations quantized per batch), which runs on CPU only.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from nmt.config import PRECISIONS, ConfigError
from nmt.device import warn_if_slow_bf16
from nmt.errors import UserError
from nmt.model import Transformer


class QuantizedTrainingError(UserError, RuntimeError):
    """A quantized model was asked to train: it exists for decoding only."""


def quantize_int8(model: Transformer) -> Transformer:
    """A copy of `model` with int8 linear layers, for decoding on CPU; it refuses to run in training mode."""
    with warnings.catch_warnings():  # PyTorch announces a successor API; this one is what 2.x ships
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu(), {nn.Linear}, torch.qint8)
    quantized.register_forward_pre_hook(_refuse_training)
    return quantized.eval()


def _refuse_training(module: nn.Module, _: object) -> None:
    if module.training:
        raise QuantizedTrainingError(
            "this model has int8-quantized linear layers and cannot be trained; train the float32 model "
            "and quantize it for decoding with decode.precision=int8."
        )


def model_for(model: Transformer, precision: str, device: torch.device) -> Transformer:
    """The network to search with at `precision`: `model` itself, or its int8 copy."""
    if precision not in PRECISIONS:
        raise ConfigError(f"`decode.precision` must be one of {', '.join(PRECISIONS)}, but is {precision!r} instead.")
    if precision != "int8":
        warn_if_slow_bf16(precision, device, "decode.precision")
        return model
    if device.type != "cpu":
        raise ConfigError(f"`decode.precision=int8` runs on CPU only, but the device is {device}; use bf16 there.")
    return quantize_int8(model)


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """bf16 autocast for `precision=bf16` on `device`; nothing otherwise."""
    if precision != "bf16":
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield
