"""The arithmetic a search runs in: float32, bfloat16 or float16 weights, or int8 linear layers on CPU.

`32` is the reference. On CPU its linear layers run on oneDNN rather than MKL (the same weights, not a
copy), whose float32 products outran MKL's on the AMD CPU they were measured on (docs/engines.md, "float32 on
oneDNN"; not yet measured on Intel CPUs). CTranslate2 too uses MKL only on Intel CPUs, oneDNN elsewhere.

`bf16` decodes with a bfloat16 copy of the weights (fast where the hardware has bf16 units: AMX or AVX512-BF16
CPUs, and GPUs; emulated, and slower, elsewhere); attention softmax and the final log-softmax still run in
float32. A copy, not `torch.autocast`: autocast recasts every weight at every call, which for one-token
decoder steps costs more than the bf16 products save (docs/engines.md, "bf16: a weight copy, not autocast").

`fp16` is the same with a float16 copy, on CUDA only (CPUs have no fast float16 products). float16 keeps more
mantissa than bfloat16 but overflows above 65504; where that could bite it is as safe as bf16: masked
attention scores are -inf (exact in float16) and their softmax runs in float32 (the fused kernel of
`scaled_dot_product_attention` takes a boolean mask and accumulates in float32), the final log-softmax too,
and the search keeps float32 scores throughout (`Transformer.decode_step` returns float32 log-probs).

`int8` replaces every linear layer, the output projection included, by PyTorch's dynamically quantized one
(int8 weights with a scale per output channel, activations quantized per batch), which runs on CPU only. One
scale per channel rather than per matrix costs no speed and recovers most of the BLEU that quantization loses
(docs/engines.md, "int8: one scale per output channel").
"""

from __future__ import annotations

import copy
import itertools
import warnings
from typing import TypeVar

import torch
from torch import Tensor, nn

from nmt.compat import onednn_linear
from nmt.config import PRECISIONS, ConfigError
from nmt.device import warn_if_slow_bf16
from nmt.errors import UserError
from nmt.model import Transformer

M = TypeVar("M", bound=nn.Module)


class QuantizedTrainingError(UserError, RuntimeError):
    """A quantized model was asked to train: it exists for decoding only."""


def quantize_int8(model: Transformer) -> Transformer:
    """A copy of `model` with int8 linear layers, for decoding on CPU; it refuses to run in training mode."""
    with warnings.catch_warnings():  # PyTorch announces a successor API; this one is what 2.x ships
        warnings.simplefilter("ignore")
        qconfig = {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu(), qconfig, torch.qint8)
    quantized.register_forward_pre_hook(_refuse_training)
    return quantized.eval()


def _refuse_training(module: nn.Module, _: object) -> None:
    if module.training:
        raise QuantizedTrainingError(
            "this model has int8-quantized linear layers and cannot be trained; train the float32 model "
            "and quantize it for decoding with decode.precision=int8."
        )


class PrecisionError(ConfigError):
    """A decoding precision this device cannot run (fp16 off CUDA, int8 off the CPU)."""


def model_for(model: Transformer, precision: str, device: torch.device) -> Transformer:
    """The network to search with at `precision`: `model` (on CPU with `onednn_linears`), its bfloat16 or
    float16 copy, or its int8 copy."""
    if precision not in PRECISIONS:
        raise ConfigError(f"`decode.precision` must be one of {', '.join(PRECISIONS)}, but is {precision!r} instead.")
    if precision == "32":
        return onednn_linears(model) if device.type == "cpu" and torch.backends.mkldnn.is_available() else model
    if precision == "bf16":
        warn_if_slow_bf16(precision, device, "decode.precision")
        return copy.deepcopy(model).to(torch.bfloat16).eval()
    if precision == "fp16":
        if device.type != "cuda":
            raise PrecisionError(
                f"`decode.precision=fp16` runs on CUDA only, but the device is {device}; use 32, bf16 or int8 there."
            )
        return copy.deepcopy(model).to(torch.float16).eval()
    if device.type != "cpu":
        raise PrecisionError(
            f"`decode.precision=int8` runs on CPU only, but the device is {device}; use bf16 or fp16 there."
        )
    return quantize_int8(model)


class OneDNNLinear(nn.Module):
    """A float32 linear layer computed by oneDNN, holding the very weight and bias of the `nn.Linear` it replaces."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias

    def forward(self, x: Tensor) -> Tensor:
        return onednn_linear(x, self.weight, self.bias)


def onednn_linears(model: M) -> M:
    """A copy of `model`'s modules sharing its parameters (no weight is copied), its linear layers on oneDNN."""
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    fast = copy.deepcopy(model, memo=shared)
    for module in list(fast.modules()):
        for name, child in module.named_children():
            if type(child) is nn.Linear and child.weight.numel():  # a layer with every head pruned has no weight
                setattr(module, name, OneDNNLinear(child))
    return fast.eval()
