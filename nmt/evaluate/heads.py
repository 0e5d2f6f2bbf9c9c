"""What each attention head does, measured on held-out pairs: importance, confidence and entropy.

- importance (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"): the expected absolute
  gradient of the loss with respect to a gate on the head's output, |dL/dξ_h|, taken per batch of
  teacher-forced pairs and averaged per target token. A head whose removal would change the loss
  little has a small score. `normalized` divides it by the L2 norm of its attention's scores, which
  is how Michel et al. rank heads of different layers against each other;
- confidence (Voita et al. 2019): the mean, over queries, of the largest attention weight: a head that
  looks at one position has confidence near 1;
- entropy: the mean entropy (nats) of the attention distribution over keys, log(keys) when uniform.

Queries at padding are left out of confidence and entropy; the loss is the token-level NLL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from nmt.data.batching import Batch
from nmt.evaluate.report import to_markdown_table
from nmt.model import Transformer


@dataclass(frozen=True)
class HeadStats:
    """One head's scores; `head` indexes the heads its attention has now."""

    kind: str  # enc | dec_self | dec_cross, as in `Transformer.attentions`
    layer: int
    head: int
    importance: float  # E|dL/dξ| per target token (Michel et al. 2019)
    normalized: float  # importance / L2 norm of its attention's importances: comparable across layers
    confidence: float  # mean largest attention weight of a query (Voita et al. 2019)
    entropy: float  # mean entropy of a query's attention over keys, nats

    @property
    def key(self) -> tuple[str, int]:
        """(kind, layer): the attention it belongs to."""
        return self.kind, self.layer


def head_statistics(model: Transformer, batches: Iterable[Batch]) -> list[HeadStats]:
    """Importance, confidence and entropy of every head of `model` (in eval mode) over `batches`.

    The model's gates are set for the measurement and cleared afterwards; its weights are untouched.
    """
    device = next(model.parameters()).device
    attentions = {key: mha for key, mha in model.attentions().items() if mha.n_heads > 0}
    sums = {key: torch.zeros(3, mha.n_heads, device=device) for key, mha in attentions.items()}  # |grad|, conf, ent
    queries = {"enc": 0, "dec": 0}  # real (non-pad) queries of the encoder and of the decoder
    tokens = 0
    try:
        for mha in attentions.values():
            mha.head_gate = torch.ones(mha.n_heads, device=device, requires_grad=True)
        for batch in batches:
            src, tgt_in, tgt_out = (t.to(device) for t in (batch.src, batch.tgt_in, batch.tgt_out))
            logits, maps = model.attention_maps(src, tgt_in)
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(), tgt_out.flatten(), ignore_index=model.pad_id, reduction="sum"
            )
            grads = torch.autograd.grad(loss, [mha.head_gate for mha in attentions.values()])
            tokens += batch.tgt_tokens
            real = {"enc": src.ne(model.pad_id), "dec": tgt_in.ne(model.pad_id)}  # [B,S], [B,T]
            queries = {side: queries[side] + int(mask.sum()) for side, mask in real.items()}
            by_kind = {"enc": maps.encoder, "dec_self": maps.decoder, "dec_cross": maps.cross}
            for ((kind, layer), total), grad in zip(sums.items(), grads, strict=True):
                weights = by_kind[kind][layer].detach().float()  # [B,H,Q,K]
                mask = real["enc" if kind == "enc" else "dec"][:, None, :].float()  # [B,1,Q]
                total[0] += grad.abs()
                total[1] += (weights.amax(-1) * mask).sum((0, 2))
                total[2] += (-torch.xlogy(weights, weights).sum(-1) * mask).sum((0, 2))
    finally:
        for mha in attentions.values():
            mha.head_gate = None
    if tokens == 0:
        raise ValueError("no pairs to measure the heads on: every pair has an empty side.")
    return [row for key, total in sums.items() for row in _rows(key, total, tokens, queries)]


def _rows(key: tuple[str, int], total: Tensor, tokens: int, queries: dict[str, int]) -> list[HeadStats]:
    """One attention's heads from its sums [3, H] (|gradient|, confidence, entropy)."""
    importance = total[0] / tokens
    confidence, entropy = total[1:] / queries["enc" if key[0] == "enc" else "dec"]
    normalized = importance / importance.norm().clamp_min(1e-20)
    return [
        HeadStats(*key, h, float(importance[h]), float(normalized[h]), float(confidence[h]), float(entropy[h]))
        for h in range(importance.numel())
    ]


def to_markdown(stats: Sequence[HeadStats]) -> str:
    """The table `nmt-prune` prints: one row per head, its attention's heads together."""
    rows = [
        {
            "attention": s.kind,
            "layer": s.layer,
            "head": s.head,
            "importance": f"{s.importance:.2e}",  # spans decades: scientific notation
            "normalized": s.normalized,
            "confidence": s.confidence,
            "entropy": s.entropy,
        }
        for s in stats
    ]
    return to_markdown_table(rows, list(rows[0]) if rows else ["attention"], digits=3)
