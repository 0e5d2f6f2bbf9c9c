"""Greedy and beam search: the pure step on hand-made numbers, then search on a tiny trained model.

The model learns to reverse random token sequences for a few seconds on CPU: good
enough that search matters, imperfect enough that beam search finds better-scoring
outputs than greedy on some sentences.
"""

import pytest
import torch
from torch import Tensor

from nmt.config import DecodeConfig, ModelConfig
from nmt.decode import beam_step
from nmt.decode.beam import block_repeated_ngrams, constrain, first_active, length_penalty
from nmt.model import Transformer

PAD, BOS, EOS = 0, 2, 3
VOCAB = 20  # ids 4..19 are the toy task's symbols
INF = float("inf")
STEPS = 250


def _reversal_batch(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """`n` random sequences of 3..10 symbols and their reversals, right-padded, [n, 10] each."""
    lengths = torch.randint(3, 11, (n,), generator=generator)
    src = torch.randint(4, VOCAB, (n, 10), generator=generator)
    src[torch.arange(10) >= lengths[:, None]] = PAD  # [10] >= [n, 1] -> [n, 10]
    tgt = torch.full_like(src, PAD)
    for i, length in enumerate(lengths.tolist()):
        tgt[i, :length] = src[i, :length].flip(0)
    return src, tgt


def _teacher_forced(model: Transformer, src: Tensor, out: Tensor) -> Tensor:
    """Per-position log-probs [B, T+1] of `out` [B, T] (PAD-padded) followed by EOS, 0 at padding."""
    bos = torch.full_like(out[:, :1], BOS)
    tgt_in = torch.cat([bos, out], dim=1)  # [B, 1 + T]
    labels = torch.cat([out, torch.full_like(bos, PAD)], dim=1)  # [B, T + 1]
    labels[torch.arange(labels.size(0)), (out != PAD).sum(1)] = EOS
    log_probs = model(src, tgt_in).log_softmax(-1)  # [B, T+1, V]
    return log_probs.gather(2, labels.unsqueeze(2)).squeeze(2).masked_fill(labels == PAD, 0.0)


@pytest.fixture(scope="module")
def model() -> Transformer:
    return _train_reverser(STEPS)


def _train_reverser(steps: int) -> Transformer:
    """A 2+2-layer Transformer trained for a few seconds to reverse sequences."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    cfg = ModelConfig(d_model=64, n_heads=4, enc_layers=2, dec_layers=2, d_ff=128, dropout=0.0, max_positions=64)
    net = Transformer(cfg, VOCAB, VOCAB, PAD)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(steps):
        src, tgt = _reversal_batch(64, generator)
        loss = -_teacher_forced(net, src, tgt).sum() / ((tgt != PAD).sum() + len(tgt))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@pytest.fixture(scope="module")
def test_set() -> tuple[Tensor, Tensor]:
    src, _ = _reversal_batch(40, torch.Generator().manual_seed(1))
    return src, src == PAD


def _score(model: Transformer, src: Tensor, hyps: list[list[int]]) -> Tensor:
    """Unnormalised model score (summed log-probs, EOS included) of one hypothesis per sentence, [B]."""
    out = torch.zeros(len(hyps), max(map(len, hyps)) + 1, dtype=torch.long)
    for i, hyp in enumerate(hyps):
        out[i, : len(hyp)] = torch.tensor(hyp, dtype=torch.long)
    with torch.no_grad():
        return _teacher_forced(model, src, out).sum(1)


# The pure step, on hand-made numbers.


def test_beam_step_picks_best_extensions_over_all_beams() -> None:
    log_probs = torch.tensor([[[-0.1, -2.5, -3.0], [-0.2, -1.9, -4.0]]])  # [B=1, K=2, V=3]
    scores = torch.tensor([[-1.0, -0.5]])
    origins, tokens, top = beam_step(log_probs, scores, 3)
    # totals: beam 0 -> -1.1, -3.5, -4.0; beam 1 -> -0.7, -2.4, -4.5
    assert origins.tolist() == [[1, 0, 1]]
    assert tokens.tolist() == [[0, 0, 1]]
    assert torch.allclose(top, torch.tensor([[-0.7, -1.1, -2.4]]))


def test_beam_step_keeps_sentences_apart() -> None:
    log_probs = torch.log(torch.tensor([[[0.6, 0.4]], [[0.1, 0.9]]]))  # [B=2, K=1, V=2]
    origins, tokens, top = beam_step(log_probs, torch.zeros(2, 1), 1)
    assert origins.tolist() == [[0], [0]]
    assert tokens.tolist() == [[0], [1]]
    assert torch.allclose(top.exp(), torch.tensor([[0.6], [0.9]]))


def test_beam_step_rejects_too_many_candidates() -> None:
    with pytest.raises(ValueError, match="`n` must be in"):
        beam_step(torch.zeros(1, 2, 3), torch.zeros(1, 2), 7)


def test_first_active_skips_eos_in_rank_order() -> None:
    tokens = torch.tensor([[EOS, 5, EOS, 7], [4, 5, 6, EOS]])
    assert first_active(tokens, EOS, 2).tolist() == [[1, 3], [0, 1]]


def test_block_repeated_ngrams_forbids_only_completions_of_seen_ngrams() -> None:
    history = torch.tensor([[4, 5, 6, 4], [4, 5, 6, 7]])  # row 0 ends in 4, which was followed by 5
    blocked = block_repeated_ngrams(torch.zeros(2, 8), history, 2)
    assert blocked[0].isinf().nonzero().flatten().tolist() == [5]
    assert not blocked[1].isinf().any()
    unigrams = block_repeated_ngrams(torch.zeros(2, 8), history, 1)
    assert unigrams[1].isinf().nonzero().flatten().tolist() == [4, 5, 6, 7]


def test_constrain_min_and_max_length() -> None:
    cfg = DecodeConfig(min_len=3)
    log_probs = torch.full((2, 6), -1.0)
    out = constrain(log_probs, torch.full((2, 2), 4), torch.tensor([2, 9]), cfg, BOS, EOS)
    assert out[0].isfinite().nonzero().flatten().tolist() == [EOS]  # at its maximum: only EOS
    assert out[1, EOS] == -INF and out[1, BOS] == -INF  # before min_len: no EOS, and never BOS
    assert out[1, 4] == -1.0


def test_length_penalty() -> None:
    assert length_penalty(7, DecodeConfig(length_norm="gnmt", length_penalty=1.0)) == 2.0  # (5+7)/6
    assert length_penalty(7, DecodeConfig(length_norm="gnmt", length_penalty=0.0)) == 1.0
    assert length_penalty(7, DecodeConfig(length_norm="average")) == 7.0
    assert length_penalty(7, DecodeConfig(length_norm="none")) == 1.0
