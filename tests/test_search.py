"""Greedy and beam search: the pure step on hand-made numbers, then search on a tiny trained model.

The model learns to reverse random token sequences for a few seconds on CPU: good
enough that search matters, imperfect enough that beam search finds better-scoring
outputs than greedy on some sentences.
"""

import itertools
from dataclasses import replace

import pytest
import torch
from torch import Tensor

from nmt.checkpoint import SpecialIds
from nmt.config import DecodeConfig, ModelConfig
from nmt.decode import SearchResult, beam_search, beam_step, greedy_search, search
from nmt.decode.beam import Rules, block_repeated_ngrams_, constrain_, first_active, length_penalty, row_max
from nmt.model import Transformer

PAD, BOS, EOS = 0, 2, 3
VOCAB = 20  # ids 4..19 are the toy task's symbols
INF = float("inf")
STEPS = 200  # a few seconds on CPU: most outputs right, some not


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
    """40 held-out sources of 3..10 symbols and their padding mask, [40, 10] each."""
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
    origins, tokens, top = beam_step(log_probs.clone(), scores, 3)
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
    blocked = block_repeated_ngrams_(torch.zeros(2, 8), history, 2)
    assert blocked[0].isinf().nonzero().flatten().tolist() == [5]
    assert not blocked[1].isinf().any()
    unigrams = block_repeated_ngrams_(torch.zeros(2, 8), history, 1)
    assert unigrams[1].isinf().nonzero().flatten().tolist() == [4, 5, 6, 7]


def test_constrain_min_and_max_length() -> None:
    rules = Rules.of(DecodeConfig(min_len=3), SpecialIds(pad=PAD, bos=BOS, eos=EOS), torch.device("cpu"))
    log_probs = torch.arange(12.0).view(2, 6).neg()
    out = constrain_(log_probs, 2, rules, at_max=torch.tensor([True, False]))
    assert out is log_probs  # in place
    assert out[0].isfinite().nonzero().flatten().tolist() == [EOS]  # at its maximum only EOS, despite min_len
    assert out[0, EOS] == -EOS  # at its model value
    assert out[1, EOS] == -INF and out[1, BOS] == -INF and out[1, PAD] == -INF  # before min_len: no EOS, never BOS
    assert out[1, 4:].tolist() == [-10.0, -11.0]
    later = constrain_(torch.zeros(2, 6), 3, rules)  # from min_len on, EOS is allowed
    assert later.isinf().nonzero()[:, 1].tolist() == [PAD, BOS, PAD, BOS]


@pytest.mark.parametrize("width", [1, 37, 64, 8000, 8003])
def test_row_max_is_torch_max_with_the_first_index_of_ties(width: int) -> None:
    values = torch.randn(50, width, generator=torch.Generator().manual_seed(width)).round(decimals=1)  # many ties
    values[0] = 0.0  # every column ties
    values[1, -1] = 99.0  # the maximum in the last (possibly partial) block
    values[2, :3] = float("-inf")
    best, index = row_max(values)
    expected = values.max(dim=1)
    assert torch.equal(best, expected.values)
    assert torch.equal(index, expected.indices)
    assert index[0] == 0 and index[1] == width - 1


def test_length_penalty() -> None:
    assert length_penalty(7, DecodeConfig(length_norm="gnmt", length_penalty=1.0)) == 2.0  # (5+7)/6
    assert length_penalty(7, DecodeConfig(length_norm="gnmt", length_penalty=0.0)) == 1.0
    assert length_penalty(7, DecodeConfig(length_norm="average")) == 7.0
    assert length_penalty(7, DecodeConfig(length_norm="none")) == 1.0


# Search with the trained model.


def _hyps(result: SearchResult) -> list[list[int]]:
    """The best hypothesis of each sentence."""
    return [nbest[0] for nbest in result.tokens]


@pytest.mark.parametrize(
    "cfg",
    [DecodeConfig(), DecodeConfig(length_norm="average", min_len=2, no_repeat_ngram=2, max_len_a=0.5)],
    ids=["default", "constrained"],
)
def test_beam_size_one_is_greedy(model: Transformer, test_set: tuple[Tensor, Tensor], cfg: DecodeConfig) -> None:
    greedy = greedy_search(model, *test_set, cfg, BOS, EOS)
    beam = beam_search(model, *test_set, replace(cfg, beam_size=1, n_best=1), BOS, EOS)
    assert beam.tokens == greedy.tokens
    assert beam.scores == greedy.scores  # bit for bit, not approximately


@pytest.mark.parametrize("norm", ["gnmt", "average", "none"])
def test_scores_are_normalised_model_scores(model: Transformer, test_set: tuple[Tensor, Tensor], norm: str) -> None:
    cfg = DecodeConfig(beam_size=3, n_best=3, length_norm=norm, length_penalty=0.6)
    result = beam_search(model, *test_set, cfg, BOS, EOS)
    for i in range(3):
        hyps = [nbest[i] for nbest in result.tokens]
        reported = torch.tensor(
            [scores[i] * length_penalty(len(h) + 1, cfg) for scores, h in zip(result.scores, hyps, strict=True)]
        )
        assert torch.allclose(reported, _score(model, test_set[0], hyps), atol=1e-4)


def test_beam_finds_higher_model_scores_than_greedy(model: Transformer) -> None:
    src, _ = _reversal_batch(200, torch.Generator().manual_seed(2))  # enough to catch greedy's mistakes
    cfg = DecodeConfig(beam_size=5, length_norm="none")
    greedy = _score(model, src, _hyps(greedy_search(model, src, src == PAD, cfg, BOS, EOS)))
    beam = _score(model, src, _hyps(beam_search(model, src, src == PAD, cfg, BOS, EOS)))
    assert beam.mean() >= greedy.mean()
    assert (beam > greedy + 1e-4).any()


def test_n_best_lists_are_sorted_and_distinct(model: Transformer, test_set: tuple[Tensor, Tensor]) -> None:
    result = beam_search(model, *test_set, DecodeConfig(beam_size=5, n_best=5), BOS, EOS)
    for nbest, scores in zip(result.tokens, result.scores, strict=True):
        assert len(nbest) == len(scores) == 5
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(hyp) for hyp in nbest}) == 5


@pytest.mark.parametrize("search_fn", [greedy_search, beam_search], ids=["greedy", "beam"])
def test_output_does_not_depend_on_when_ended_sentences_leave_the_batch(
    model: Transformer, test_set: tuple[Tensor, Tensor], search_fn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ended sentences stay as -inf rows until they are `COMPACT_AT` of the batch: leaving at once (0), never
    before the end (1.01) and the default must give the same outputs (beam 1 takes the greedy path)."""
    cfg = DecodeConfig(beam_size=1, length_norm="average", max_len_a=1.0, max_len_b=2)  # longer can score higher
    results = []
    for share in (0.0, 1.01, search.COMPACT_AT):
        monkeypatch.setattr(search, "COMPACT_AT", share)
        results.append(search_fn(model, *test_set, cfg, BOS, EOS))
    lengths = {len(nbest[0]) for nbest in results[0].tokens}
    assert len(lengths) > 3  # sentences end at many different steps
    for other in results[1:]:
        assert other.tokens == results[0].tokens
        assert [s[0] for s in other.scores] == pytest.approx([s[0] for s in results[0].scores], abs=1e-5)


def test_batched_search_equals_searching_each_sentence_alone(
    model: Transformer, test_set: tuple[Tensor, Tensor]
) -> None:
    src, mask = test_set[0][:10], test_set[1][:10]
    assert mask.any(1).sum() >= 5  # most rows are padded
    cfg = DecodeConfig(beam_size=4, n_best=2)
    batched = beam_search(model, src, mask, cfg, BOS, EOS)
    for i in range(len(src)):
        alone_src = src[i : i + 1, : int((~mask[i]).sum())]  # [1, S_i]: no padding
        alone = beam_search(model, alone_src, alone_src == PAD, cfg, BOS, EOS)
        assert alone.tokens[0] == batched.tokens[i]
        assert alone.scores[0] == pytest.approx(batched.scores[i], abs=1e-5)


def _search(beam_size: int):
    """The search the engine runs for this beam size: greedy search at 1."""
    return greedy_search if beam_size == 1 else beam_search


@pytest.mark.parametrize("beam_size", [1, 4])
def test_max_len_is_respected(model: Transformer, test_set: tuple[Tensor, Tensor], beam_size: int) -> None:
    cfg = DecodeConfig(beam_size=beam_size, n_best=beam_size, max_len_a=0.5, max_len_b=1)
    result = _search(beam_size)(model, *test_set, cfg, BOS, EOS)
    limits = (0.5 * (~test_set[1]).sum(1) + 1).long().tolist()  # shorter than the reversal
    lengths = [[len(hyp) for hyp in nbest] for nbest in result.tokens]
    assert all(n <= limit for nbest, limit in zip(lengths, limits, strict=True) for n in nbest)
    assert any(max(nbest) == limit for nbest, limit in zip(lengths, limits, strict=True))


@pytest.mark.parametrize("beam_size", [1, 4])
def test_min_len_is_respected(model: Transformer, test_set: tuple[Tensor, Tensor], beam_size: int) -> None:
    cfg = DecodeConfig(beam_size=beam_size, n_best=beam_size, min_len=12)  # sources have <= 10 tokens
    result = _search(beam_size)(model, *test_set, cfg, BOS, EOS)
    assert all(len(hyp) >= 12 for nbest in result.tokens for hyp in nbest)


def _ngrams(hyp: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1)]


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("beam_size", [1, 4])
def test_no_repeat_ngram_leaves_no_repeated_ngram(
    model: Transformer, test_set: tuple[Tensor, Tensor], n: int, beam_size: int
) -> None:
    cfg = DecodeConfig(beam_size=beam_size, n_best=beam_size)
    if n == 1:  # random sources repeat symbols, so unblocked reversals do too: the test has teeth
        free = _search(beam_size)(model, *test_set, cfg, BOS, EOS)
        assert any(len(set(hyp)) < len(hyp) for nbest in free.tokens for hyp in nbest)
    blocked = _search(beam_size)(model, *test_set, replace(cfg, no_repeat_ngram=n), BOS, EOS)
    for nbest in blocked.tokens:
        for hyp in nbest:
            assert len(set(_ngrams(hyp, n))) == len(_ngrams(hyp, n))


@pytest.mark.parametrize("beam_size", [1, 3])
def test_attention_has_one_row_per_output_token(
    model: Transformer, test_set: tuple[Tensor, Tensor], beam_size: int
) -> None:
    cfg = DecodeConfig(beam_size=beam_size, n_best=beam_size)
    search = greedy_search if beam_size == 1 else beam_search
    result = search(model, *test_set, cfg, BOS, EOS, attn_layer=-1)
    plain = search(model, *test_set, cfg, BOS, EOS)
    assert result.attn is not None and plain.attn is None
    assert result.tokens == plain.tokens
    for nbest, attns, src_len in zip(result.tokens, result.attn, (~test_set[1]).sum(1).tolist(), strict=True):
        for hyp, attn in zip(nbest, attns, strict=True):
            assert attn.shape == (len(hyp) + 1, src_len)  # each id, then EOS
            assert (attn >= 0).all()
            assert torch.allclose(attn.sum(1), torch.ones(len(hyp) + 1), atol=1e-5)


@pytest.mark.parametrize("beam", [1, 3])
def test_a_sentence_whose_every_hypothesis_is_forbidden_gets_an_empty_nbest(model: Transformer, beam: int) -> None:
    """`min_len` forbids EOS while blocking repeated 1-grams forbids every symbol already used: with 16 symbols,
    no hypothesis can reach 20 tokens, so each ends at -inf and none is returned (callers must cope)."""
    src = torch.tensor([[5, 6, 7, EOS]])
    cfg = DecodeConfig(beam_size=beam, n_best=1, min_len=20, no_repeat_ngram=1, max_len_a=0.0, max_len_b=25)
    search = greedy_search if beam == 1 else beam_search
    result = search(model, src, src.eq(PAD), cfg, BOS, EOS)
    assert result.tokens == [[]] and result.scores == [[]]


# Independent oracles: exhaustive search and a greedy loop over the full teacher-forced forward.


def _exhaustive(model: Transformer, src: Tensor, symbols: list[int], max_len: int) -> list[tuple[float, list[int]]]:
    """Every output of at most `max_len` symbols (then EOS) with its summed log-prob, best first, for one source."""
    outputs = [list(o) for n in range(max_len + 1) for o in itertools.product(symbols, repeat=n)]
    out = torch.full((len(outputs), max_len), PAD)
    for i, o in enumerate(outputs):
        out[i, : len(o)] = torch.tensor(o, dtype=torch.long)
    with torch.no_grad():
        scores = _teacher_forced(model, src.expand(len(outputs), -1), out).sum(1).tolist()
    return sorted(zip(scores, outputs, strict=True), key=lambda pair: -pair[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_wide_beam_finds_the_exhaustive_ranking(seed: int) -> None:
    """V = 5 (PAD, BOS, EOS and two symbols), at most 3 symbols: 15 outputs in all. A beam of 16
    keeps every prefix and every finished output, so its 15-best list must be the exhaustive ranking."""
    torch.manual_seed(seed)
    cfg = ModelConfig(d_model=16, n_heads=2, enc_layers=1, dec_layers=2, d_ff=32, dropout=0.0, max_positions=16)
    net = Transformer(cfg, 5, 5, PAD).eval()
    with torch.no_grad():  # sharpen the random model, so that the ranking has clear gaps
        net.output.weight.mul_(8.0)
    symbols, max_len = [1, 4], 3
    src = torch.tensor([[4, 1, 4, EOS], [1, EOS, PAD, PAD]])
    decode = DecodeConfig(beam_size=16, n_best=15, length_norm="none", max_len_a=0.0, max_len_b=max_len, min_len=0)
    result = beam_search(net, src, src == PAD, decode, BOS, EOS)
    for row, (nbest, scores) in enumerate(zip(result.tokens, result.scores, strict=True)):
        alone = src[row : row + 1, : int((src[row] != PAD).sum())]
        ranking = _exhaustive(net, alone, symbols, max_len)
        assert len(nbest) == 15
        assert nbest[0] == ranking[0][1]
        assert scores == pytest.approx([score for score, _ in ranking], abs=1e-4)
        assert sorted(map(tuple, nbest)) == sorted(tuple(output) for _, output in ranking)


def _greedy_by_forward(model: Transformer, src: Tensor, cfg: DecodeConfig) -> tuple[list[int], float]:
    """Greedy decoding of one source by re-running the full teacher-forced `forward` on the prefix at every step."""
    max_len = int(cfg.max_len_a * src.size(1) + cfg.max_len_b)
    prefix, score = [BOS], 0.0
    with torch.no_grad():
        while True:
            log_probs = model(src, torch.tensor([prefix])).log_softmax(-1)[0, -1]  # [V], the next token
            log_probs[[BOS, PAD]] = -INF
            if len(prefix) - 1 >= max_len:
                log_probs[torch.arange(VOCAB) != EOS] = -INF
            elif len(prefix) - 1 < cfg.min_len:
                log_probs[EOS] = -INF
            token = int(log_probs.argmax())
            score += float(log_probs[token])
            if token == EOS:
                return prefix[1:], score
            prefix.append(token)


@pytest.mark.parametrize("cfg", [DecodeConfig(length_norm="none"), DecodeConfig(length_norm="none", min_len=12)])
def test_greedy_equals_an_argmax_loop_over_the_full_forward(
    model: Transformer, test_set: tuple[Tensor, Tensor], cfg: DecodeConfig
) -> None:
    src, mask = test_set
    result = greedy_search(model, src, mask, cfg, BOS, EOS)
    for i in range(len(src)):
        alone = src[i : i + 1, : int((~mask[i]).sum())]
        tokens, score = _greedy_by_forward(model, alone, cfg)
        assert result.tokens[i] == [tokens]
        assert result.scores[i][0] == pytest.approx(score, abs=1e-4)
