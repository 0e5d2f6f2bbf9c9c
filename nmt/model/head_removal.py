"""Head removal: a model without some attention heads (`prune_heads`), and back to full heads as zeros
(`restore_heads`) for exporters that need one head count. Rounds of pruning are `nmt.workflows.pruning_rounds`.

Removing head h of an attention takes out its rows of the query, key and value projections (and of
the additive score vector) and its columns of the output projection; the other heads keep their
weights, so the pruned model computes exactly what the full one computes with h's gate at 0 (up to
the order of floating-point sums). The pruned shape is recorded as per-layer head counts in the
model config, so a pruned checkpoint loads like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Set

import torch
from torch import Tensor

from nmt.model.attention import MultiHeadAttention
from nmt.model.transformer import Transformer

AttentionKey = tuple[str, int]  # (kind, layer) as in `Transformer.attentions`: ("enc", 0), ("dec_cross", 2)


def prune_heads(model: Transformer, drop: Mapping[AttentionKey, Set[int]]) -> Transformer:
    """A new model without the heads `drop` names (indices into each attention's current heads)."""
    attentions = model.attentions()
    unknown = sorted(set(drop) - set(attentions))
    if unknown:
        raise ValueError(
            f"no attention {unknown[0]} in the model; attentions are (kind, layer) of {sorted(attentions)}."
        )
    keep = {key: [h for h in range(mha.n_heads) if h not in drop.get(key, ())] for key, mha in attentions.items()}
    return _reshaped(model, keep)


def restore_heads(model: Transformer) -> Transformer:
    """The same function with `n_heads` heads in every attention: the pruned heads come back as zeros.

    A zero head has zero values, so it adds nothing; this is for exporters whose format needs one head
    count throughout (CTranslate2).
    """
    return _reshaped(model, {key: list(range(mha.n_heads)) for key, mha in model.attentions().items()}, pad=True)


def _reshaped(model: Transformer, keep: Mapping[AttentionKey, list[int]], pad: bool = False) -> Transformer:
    """A copy of `model` whose attentions keep the heads `keep` lists, in order; `pad` fills up to n_heads."""
    cfg = model.cfg
    counts = {key: cfg.n_heads if pad else len(heads) for key, heads in keep.items()}
    shape = dataclasses.replace(
        cfg,
        **{
            f"{kind}_heads": [] if pad else [counts[kind, i] for i in range(len(cfg.heads(kind)))]
            for kind in ("enc", "dec_self", "dec_cross")
        },
    )
    pruned = Transformer(shape, model.src_embed.tokens.num_embeddings, model.output.out_features, model.pad_id)
    weights = model.state_dict()
    for (kind, layer), mha in model.attentions().items():
        prefix = _prefix(kind, layer)
        for name, tensor in _head_weights(mha, keep[kind, layer], cfg.n_heads if pad else None).items():
            weights[prefix + name] = tensor
    pruned.load_state_dict(weights)
    first = next(model.parameters())
    return pruned.to(device=first.device, dtype=first.dtype).train(model.training)  # where and as `model` was


def _prefix(kind: str, layer: int) -> str:
    return {"enc": f"encoder.{layer}.self_attn.", "dec_self": f"decoder.{layer}.self_attn."}.get(
        kind, f"decoder.{layer}.cross_attn."
    )


def _head_weights(mha: MultiHeadAttention, heads: list[int], pad_to: int | None) -> dict[str, Tensor]:
    """The head-shaped weights of `mha` for `heads` only (zero-padded to `pad_to` heads when given)."""
    d = mha.head_dim

    def rows(t: Tensor) -> Tensor:  # [H*d, ...] -> [len(heads)*d, ...], per head
        picked = t.unflatten(0, (mha.n_heads, d))[heads]
        if pad_to is not None:
            picked = torch.cat([picked, picked.new_zeros(pad_to - len(heads), *picked.shape[1:])])
        return picked.flatten(0, 1)

    out = {
        f"{proj}.{p}": rows(getattr(getattr(mha, proj), p).detach())
        for proj in ("q_proj", "k_proj", "v_proj")
        for p in ("weight", "bias")
    }
    out["out_proj.weight"] = rows(mha.out_proj.weight.detach().T).T
    if mha.kind == "additive":
        out["score_v"] = rows(mha.score_v.detach().flatten()).view(-1, d)
    return out
