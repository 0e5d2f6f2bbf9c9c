"""Label-smoothed cross-entropy over non-pad target tokens (Szegedy et al. 2016; Vaswani et al. 2017, 5.4), and the
guided-alignment loss of cross-attention against word links (Garg et al. 2019)."""

from __future__ import annotations

import torch


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
    keep = target.ne(pad_id).flatten()  # [B*T]
    loss, nll = _SmoothedCrossEntropy.apply(logits.flatten(0, 1), target.flatten(), keep, smoothing)
    return loss, nll, keep.sum()


class _SmoothedCrossEntropy(torch.autograd.Function):
    """`label_smoothed_nll` over [N, V] logits in one pass each way, a block of rows at a time: the [N, V] float32
    log-probabilities are never stored, and the backward writes `softmax - smoothed target` straight into the
    logits' dtype. The loss and its gradient are computed in float32 (float64 stays float64).

    Per kept row, with lse the log-sum-exp of the logits z: nll = lse - z_gold, and the uniform part
    -mean_v log p_v = lse - mean_v z; the gradient of the loss is p - (1 - eps) * onehot(gold) - eps / V, of the NLL
    p - onehot(gold). Pad rows get nothing; a NaN or +inf logit in a kept row makes the loss and its row's gradient
    non-finite, as the training step expects of a bad update; a -inf logit (a probability of 0) makes the smoothed
    loss +inf but leaves the gradient finite, as the log-softmax loss before it did."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, smoothing: float):
        dtype = torch.promote_types(logits.dtype, torch.float32)
        lse = torch.empty(logits.size(0), dtype=dtype, device=logits.device)  # [N]
        mean = torch.empty_like(lse)
        for rows in _blocks(logits):
            block = logits[rows].to(dtype)  # [n, V]
            lse[rows] = torch.logsumexp(block, dim=-1)
            mean[rows] = block.mean(dim=-1)
        gold = logits.gather(1, target.unsqueeze(1)).squeeze(1).to(dtype)  # [N]; pad ids index a real row
        nll = (lse - gold).masked_fill(~keep, 0.0)  # masked_fill, not a product: NaN * 0 is NaN
        uniform = (lse - mean).masked_fill(~keep, 0.0)
        ctx.save_for_backward(logits, target, keep, lse)
        ctx.smoothing = smoothing
        nll_sum = nll.sum()
        return (1.0 - smoothing) * nll_sum + smoothing * uniform.sum(), nll_sum

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: torch.Tensor, grad_nll: torch.Tensor):
        logits, target, keep, lse = ctx.saved_tensors
        eps, vocab = ctx.smoothing, logits.size(1)
        # d/dz of grad_loss * loss + grad_nll * nll, per kept row
        on_probs = grad_loss + grad_nll
        on_gold = (grad_loss * (1.0 - eps) + grad_nll).expand(logits.size(0), 1).to(lse.dtype)  # [N, 1]
        grad = torch.empty_like(logits)
        for rows in _blocks(logits):
            block = logits[rows].to(lse.dtype, copy=True).sub_(lse[rows, None]).exp_()  # probabilities [n, V]
            block.mul_(on_probs).sub_(grad_loss * eps / vocab)
            block.scatter_add_(1, target[rows, None], -on_gold[rows])
            grad[rows] = block.masked_fill_(~keep[rows, None], 0.0)
        return grad, None, None, None


def _blocks(logits: torch.Tensor, elements: int = 1 << 22) -> list[slice]:
    """Slices of rows of `logits` [N, V], about `elements` values each (16 MB in float32)."""
    step = max(1, elements // max(1, logits.size(1)))
    return [slice(start, start + step) for start in range(0, logits.size(0), step)]


def alignment_nll(attn: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of cross-attention `attn` [B, T, S] against the attention `target` [B, T, S] that word
    links give (`nmt.data.links.attention_targets`): `-sum target * log attn`, so a row without links (all zero)
    carries no loss, as in fairseq's `label_smoothed_cross_entropy_with_alignment`. 0-d, summed like the
    token loss it is added to."""
    return -(target * attn.float().clamp(min=1e-9).log()).sum()
