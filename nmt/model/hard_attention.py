"""Hard attention as a probe of a trained model: chosen heads attend to one key only, the one they score highest.

The design this toolkit follows names hard attention: take the position of the largest weight instead of
the weighted mean. Applied at inference to a model trained soft, it asks how much each head relies on one
position: `harden(model, ["dec_cross:1"])` sets `MultiHeadAttention.hard_heads` of the chosen heads, whose
weights become a one-hot on the argmax over the keys they may attend (never a padding or future key).

A spec names heads as `KIND[:LAYER[:HEAD]]`: KIND is `enc`, `dec_self` or `dec_cross` (as in
`Transformer.attentions`), LAYER and HEAD count from 0 (HEAD: among the heads the layer has now, after any
pruning); without HEAD every head of the layer, without LAYER every layer of that kind. Examples:
`dec_cross` (every cross-attention head), `dec_cross:1` (layer 1's), `dec_cross:1:3` (one head), `enc:0`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from nmt.config import ConfigError
from nmt.model.head_removal import AttentionKey
from nmt.model.transformer import Transformer

KINDS = ("enc", "dec_self", "dec_cross")  # as in `Transformer.attentions`


class HardenSpecError(ConfigError):
    """A spec of heads to harden is malformed or names heads the model does not have."""


@dataclass(frozen=True)
class HeadSpec:
    """Heads named by one spec: a kind of attention, and a layer and a head of it (None: all of them)."""

    kind: str
    layer: int | None = None
    head: int | None = None


def parse_spec(spec: str) -> HeadSpec:
    """The heads `spec` names, `KIND[:LAYER[:HEAD]]`; raises `HardenSpecError` on any other text."""
    kind, *numbers = spec.strip().split(":")
    if kind not in KINDS or len(numbers) > 2 or not all(number.isdecimal() for number in numbers):
        raise HardenSpecError(
            f"a `harden` spec must be KIND[:LAYER[:HEAD]] with KIND one of {', '.join(KINDS)} and LAYER, HEAD "
            f"counting from 0 (e.g. dec_cross:1:3), but is {spec!r} instead."
        )
    layer, head = [int(number) for number in numbers] + [None] * (2 - len(numbers))
    return HeadSpec(kind, layer, head)


def select_heads(model: Transformer, specs: Sequence[str]) -> dict[AttentionKey, list[int]]:
    """The heads of `model` that `specs` name together, by attention (only those with some), heads ascending.

    Raises:
        HardenSpecError: a spec is malformed, or names a layer or head `model` does not have.
    """
    attentions = model.attentions()
    chosen: dict[AttentionKey, set[int]] = {}
    for spec in specs:
        named = parse_spec(spec)
        layers = sorted(layer for kind, layer in attentions if kind == named.kind)
        if named.layer is not None and named.layer not in layers:
            raise HardenSpecError(
                f"`harden` spec {spec!r} names {named.kind} layer {named.layer}, "
                f"but the model has {named.kind} layers 0-{layers[-1]}."
            )
        for layer in layers if named.layer is None else [named.layer]:
            heads = attentions[named.kind, layer].n_heads
            if named.head is not None and named.head >= heads:
                raise HardenSpecError(
                    f"`harden` spec {spec!r} names head {named.head}, but {named.kind} layer {layer} has "
                    f"{heads} head(s)" + (f" (0-{heads - 1})." if heads else ".")
                )
            chosen.setdefault((named.kind, layer), set()).update(range(heads) if named.head is None else [named.head])
    return {key: sorted(heads) for key, heads in chosen.items() if heads}


def harden(model: nn.Module, specs: Sequence[str]) -> None:
    """Harden exactly the heads `specs` name in every `Transformer` of `model` (itself, or an ensemble's members).

    Every other head goes back to soft attention, so `harden(model, [])` undoes it all; nothing changes when a
    spec is refused. A translator copies its model for a decoding precision at its first search (`TorchEngine`),
    so harden its model before translating, as the commands do.

    Raises:
        HardenSpecError: a spec is malformed, or names a layer or head some member does not have.
    """
    networks = [module for module in model.modules() if isinstance(module, Transformer)]
    chosen = [select_heads(network, specs) for network in networks]  # every spec checked before any change
    for network, heads in zip(networks, chosen, strict=True):
        for key, mha in network.attentions().items():
            if key not in heads:
                mha.hard_heads = None  # the fused kernel again
                continue
            mask = torch.zeros(mha.n_heads, dtype=torch.bool, device=mha.out_proj.weight.device)  # [H]
            mask[heads[key]] = True
            mha.hard_heads = mask
