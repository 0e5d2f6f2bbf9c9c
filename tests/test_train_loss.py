"""The training loss and learning-rate schedules, checked against hand computations and their definitions."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

from nmt.train.loss import label_smoothed_nll
from nmt.train.schedule import inverse_sqrt, linear_warmup_decay

PAD, V = 0, 6


def logits_and_target(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random [2, 4, V] logits; row 0 has one pad position at the end, row 1 has two."""
    torch.manual_seed(seed)
    logits = torch.randn(2, 4, V) * 3
    target = torch.tensor([[1, 5, 2, PAD], [3, 3, PAD, PAD]])
    return logits, target


def hand_loss(logits: torch.Tensor, target: torch.Tensor, eps: float) -> tuple[float, float, int]:
    """(1 - eps) * nll + eps * mean_v(-log p_v), summed over non-pad positions, in plain Python floats."""
    loss = nll = 0.0
    count = 0
    for row, gold_row in zip(logits.tolist(), target.tolist(), strict=True):
        for scores, gold in zip(row, gold_row, strict=True):
            if gold == PAD:
                continue
            log_z = math.log(sum(math.exp(s) for s in scores))
            neg_log_p = [log_z - s for s in scores]
            loss += (1 - eps) * neg_log_p[gold] + eps * sum(neg_log_p) / len(scores)
            nll += neg_log_p[gold]
            count += 1
    return loss, nll, count


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_label_smoothing_matches_hand_computation(eps: float) -> None:
    logits, target = logits_and_target()
    loss, nll, n_tokens = label_smoothed_nll(logits, target, eps, PAD)
    want_loss, want_nll, want_count = hand_loss(logits, target, eps)
    assert isinstance(n_tokens, torch.Tensor) and n_tokens == want_count == 5  # a count on the device: no sync
    assert loss.item() == pytest.approx(want_loss, rel=1e-5)
    assert nll.item() == pytest.approx(want_nll, rel=1e-5)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_loss_agrees_with_torch_cross_entropy(eps: float) -> None:
    """PyTorch's `label_smoothing` spreads eps over all classes too, so both definitions coincide."""
    logits, target = logits_and_target(seed=1)
    loss, nll, _ = label_smoothed_nll(logits, target, eps, PAD)
    flat = logits.flatten(0, 1), target.flatten()  # [B*T, V], [B*T]
    ce = F.cross_entropy(*flat, reduction="sum", ignore_index=PAD, label_smoothing=eps)
    plain = F.cross_entropy(*flat, reduction="sum", ignore_index=PAD)
    torch.testing.assert_close(loss, ce)
    torch.testing.assert_close(nll, plain)  # the NLL ignores smoothing
    if eps == 0.0:
        torch.testing.assert_close(loss, plain)


def test_half_precision_logits_are_scored_in_float32() -> None:
    logits, target = logits_and_target()
    half = logits.bfloat16()
    loss, _, _ = label_smoothed_nll(half, target, 0.1, PAD)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, label_smoothed_nll(half.float(), target, 0.1, PAD)[0])


def test_pad_positions_carry_no_loss() -> None:
    logits, target = logits_and_target()
    changed = logits.clone()
    pad = target.eq(PAD)
    changed[pad] = torch.randn(int(pad.sum()), V) * 100  # any finite values at pad positions
    for eps in (0.0, 0.1):
        before, after = label_smoothed_nll(logits, target, eps, PAD), label_smoothed_nll(changed, target, eps, PAD)
        assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
        assert before[2] == after[2] == int(target.ne(PAD).sum())


def test_extra_pad_columns_change_nothing() -> None:
    """A batch padded to a longer length scores the same as the tight one."""
    logits, target = logits_and_target()
    wider_logits = torch.cat([logits, torch.randn(2, 3, V)], dim=1)  # [B, T+3, V]
    wider_target = torch.cat([target, torch.full((2, 3), PAD)], dim=1)  # [B, T+3]
    narrow = label_smoothed_nll(logits, target, 0.1, PAD)
    wide = label_smoothed_nll(wider_logits, wider_target, 0.1, PAD)
    assert wide[0].item() == pytest.approx(narrow[0].item(), rel=1e-6)
    assert wide[1].item() == pytest.approx(narrow[1].item(), rel=1e-6)
    assert wide[2] == narrow[2]


def test_all_pad_batch_has_zero_tokens_and_zero_loss() -> None:
    logits = torch.randn(2, 3, V)
    loss, nll, n_tokens = label_smoothed_nll(logits, torch.full((2, 3), PAD), 0.1, PAD)
    assert n_tokens == 0
    assert loss.item() == 0.0 and nll.item() == 0.0


def test_non_finite_logits_at_pad_positions_carry_no_loss() -> None:
    """An overflow at a pad position (e.g. under fp16) must not turn a good step into a skipped one."""
    logits, target = logits_and_target()
    changed = logits.clone()
    changed[target.eq(PAD)] = float("inf")
    before, after = label_smoothed_nll(logits, target, 0.1, PAD), label_smoothed_nll(changed, target, 0.1, PAD)
    torch.testing.assert_close(after[1], before[1])
    torch.testing.assert_close(after[0], before[0])


def composite_loss(logits: torch.Tensor, target: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition through stored float32 log-probabilities (the loss before it was fused)."""
    log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float32).flatten(0, 1)
    keep = target.flatten().ne(PAD)
    nll = F.nll_loss(log_probs, target.flatten(), ignore_index=PAD, reduction="sum")
    uniform = -log_probs.sum(dim=-1).masked_fill(~keep, 0.0).sum() / logits.size(-1)
    return (1 - eps) * nll + eps * uniform, nll


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("rows", "vocab"), [(4, V), (700, 8000)])  # one block of rows; several (5.6M values)
def test_loss_and_gradients_match_the_composite_definition(rows: int, vocab: int, dtype: torch.dtype) -> None:
    """Both outputs' gradients, weighted differently, reach the logits in their dtype, pad rows get none."""
    torch.manual_seed(0)
    logits = (torch.randn(2, rows // 2, vocab) * 3).to(dtype)
    target = torch.randint(1, vocab, (2, rows // 2))
    target[0, -3:] = PAD
    fused, reference = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    loss, nll, _ = label_smoothed_nll(fused, target, 0.1, PAD)
    want_loss, want_nll = composite_loss(reference, target, 0.1)
    torch.testing.assert_close(loss, want_loss, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(nll, want_nll, rtol=1e-5, atol=1e-3)
    (loss + 0.5 * nll).backward()
    (want_loss + 0.5 * want_nll).backward()
    assert fused.grad.dtype == dtype and not fused.grad[0, -3:].any()
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-2, "atol": 1e-4}
    torch.testing.assert_close(fused.grad, reference.grad, **tolerance)


def test_loss_gradient_passes_gradcheck_in_float64() -> None:
    logits, target = logits_and_target()
    logits = logits.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda z: label_smoothed_nll(z, target, 0.2, PAD)[:2], (logits,))


def test_a_non_finite_logit_in_a_kept_row_makes_loss_and_gradient_non_finite() -> None:
    """The training step skips such an update by its non-finite gradients."""
    logits, target = logits_and_target()
    logits[0, 1, 3] = float("nan")
    logits.requires_grad_()
    loss, _, _ = label_smoothed_nll(logits, target, 0.1, PAD)
    loss.backward()
    assert not loss.isfinite() and not logits.grad[0, 1].isfinite().any()
    assert logits.grad[1].isfinite().all()


@pytest.mark.parametrize("warmup", [4, 400, 4000])
def test_inverse_sqrt_warms_up_linearly_then_decays_with_inverse_sqrt(warmup: int) -> None:
    assert inverse_sqrt(warmup // 2, warmup) == pytest.approx(0.5)
    assert inverse_sqrt(warmup, warmup) == pytest.approx(1.0)
    assert inverse_sqrt(4 * warmup, warmup) == pytest.approx(0.5)
    assert inverse_sqrt(9 * warmup, warmup) == pytest.approx(1 / 3)
    for step in range(1, warmup + 1, max(1, warmup // 7)):
        assert inverse_sqrt(step, warmup) == pytest.approx(step / warmup)
    for step in (warmup + 1, 2 * warmup + 3, 50 * warmup):
        assert inverse_sqrt(step, warmup) == pytest.approx(math.sqrt(warmup / step))
    # LambdaLR calls the factor with 0 before the first step; it is clamped to step 1 (never a zero rate).
    assert inverse_sqrt(0, warmup) == inverse_sqrt(1, warmup) > 0


def test_inverse_sqrt_without_warmup_starts_at_peak() -> None:
    assert inverse_sqrt(0, 0) == inverse_sqrt(1, 0) == 1.0
    assert inverse_sqrt(16, 0) == pytest.approx(0.25)


@pytest.mark.parametrize(("warmup", "total"), [(4, 20), (10, 100), (0, 7)])
def test_linear_warmup_decay_peaks_at_warmup_and_reaches_zero_at_total(warmup: int, total: int) -> None:
    factors = [linear_warmup_decay(step, warmup, total) for step in range(total + 3)]
    assert factors[warmup] == 1.0
    assert factors[total] == 0.0 and factors[total + 1] == factors[total + 2] == 0.0
    assert all(f > 0 for f in factors[:total])  # every real optimizer step (0..total-1) moves the weights
    rises, falls = factors[: warmup + 1], factors[warmup : total + 1]
    assert all(b - a == pytest.approx(1 / (warmup + 1)) for a, b in pairwise(rises))  # linear warmup
    assert all(a - b == pytest.approx(1 / (total - warmup)) for a, b in pairwise(falls))  # linear decay
