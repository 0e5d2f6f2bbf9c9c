"""Label-smoothed cross-entropy over non-pad target tokens (Szegedy et al. 2016; Vaswani et al. 2017, 5.4), and the
guided-alignment loss of cross-attention against word links (Garg et al. 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_smoothed_nll(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed smoothed loss and summed NLL over the non-pad positions of `target`.

    The smoothed target puts `1 - smoothing` on the gold token and spreads
    `smoothing` uniformly over the whole vocabulary, gold included (Szegedy et al.;
    PyTorch's `cross_entropy(label_smoothing=eps)`), so the loss is
    `(1 - eps) * nll + eps * mean_v(-log p_v)`. fairseq spreads `eps` over the V - 1
    other tokens instead (`eps / (V - 1)` each): for V in the thousands the two differ
    by a factor V / (V - 1) on the uniform part.

    Args:
        logits: [B, T, V] unnormalised scores.
        target: [B, T] gold ids; `pad_id` positions carry no loss.
        smoothing: epsilon in [0, 1).
        pad_id: id of padding.

    Returns:
        (loss_sum, nll_sum, n_tokens), 0-d tensors; divide by n_tokens for per-token values. The count stays
        on the device (reading it would sync); the training step takes it from `Batch.tgt_tokens` instead.
    """
    vocab = logits.size(-1)
    log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float32).flatten(0, 1)  # [B, T, V] -> [B*T, V]
    target = target.flatten()  # [B*T]
    keep = target.ne(pad_id)  # [B*T]
    nll = F.nll_loss(log_probs, target, ignore_index=pad_id, reduction="sum")
    # Sum over the vocabulary first, so no [N, V] copy of the kept rows is made (memory: logits dominate).
    uniform = -log_probs.sum(dim=-1).masked_fill(~keep, 0.0).sum() / vocab  # masked_fill: NaN * 0 is NaN
    loss = (1.0 - smoothing) * nll + smoothing * uniform
    return loss, nll, keep.sum()


def alignment_nll(attn: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of cross-attention `attn` [B, T, S] against the attention `target` [B, T, S] that word
    links give (`nmt.data.links.attention_targets`): `-sum target * log attn`, so a row without links (all zero)
    carries no loss, as in fairseq's `label_smoothed_cross_entropy_with_alignment`. 0-d, summed like the
    token loss it is added to."""
    return -(target * attn.float().clamp(min=1e-9).log()).sum()
