"""Sampling: the filters keep what they promise, draws follow the distribution, temperature -> 0 is greedy,
and a seed reproduces its samples. Uses the session's tiny model (`model_path`)."""

from __future__ import annotations

import math

import pytest
import torch

from nmt.config import ConfigError, DataConfig, DecodeConfig, TranslateConfig, check
from nmt.data.sources import get_corpus
from nmt.decode.sampling import filter_logits, sample_tokens
from nmt.decode.translator import Translator

pytestmark = pytest.mark.usefixtures("one_thread")

PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()


def _kept(cfg: DecodeConfig) -> list[int]:
    return filter_logits(PROBS, cfg)[0].isfinite().nonzero().squeeze(1).tolist()


@pytest.mark.parametrize(
    ("options", "kept"),
    [
        ({}, [0, 1, 2, 3]),
        ({"top_k": 2}, [0, 1]),
        ({"top_k": 9}, [0, 1, 2, 3]),
        ({"top_p": 0.6}, [0, 1]),  # 0.5 < 0.6: the second token is needed to reach it
        ({"top_p": 0.5}, [0]),
        ({"top_p": 0.9}, [0, 1, 2]),
        ({"epsilon": 0.1}, [0, 1, 2]),
        ({"epsilon": 0.9}, [0]),  # the most probable token always stays
        ({"top_k": 3, "top_p": 0.6, "epsilon": 0.01}, [0, 1]),
    ],
)
def test_filters_keep_the_tokens_they_promise(options, kept) -> None:
    assert _kept(DecodeConfig(sampling=True, **options)) == kept


def test_draws_follow_the_tempered_distribution() -> None:
    generator = torch.Generator().manual_seed(0)
    for temperature in (1.0, 2.0):
        cfg = DecodeConfig(sampling=True, temperature=temperature)
        draws = sample_tokens(PROBS.expand(40_000, 4), cfg, generator)
        expected = (PROBS[0] / temperature).softmax(0)
        observed = torch.bincount(draws, minlength=4).double() / draws.numel()
        assert torch.allclose(observed, expected.double(), atol=0.01), (temperature, observed, expected)


def test_a_row_that_allows_no_token_draws_one_scored_minus_infinity() -> None:
    """Where the rules leave nothing (a toy vocabulary with min_len and no_repeat_ngram), the draw must not fail:
    the row gets a token whose log-prob, -inf, ends its sample unfinished."""
    log_probs = torch.stack([PROBS[0], torch.full((4,), float("-inf"))])  # [2, V]
    drawn = sample_tokens(log_probs, DecodeConfig(sampling=True), torch.Generator().manual_seed(0))
    assert drawn.shape == (2,) and 0 <= int(drawn[1]) < 4
    assert log_probs[1, drawn[1]] == float("-inf")


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return get_corpus(DataConfig(), "test").src[:40]


@pytest.fixture(scope="module")
def greedy(model_path, lines) -> list:
    return Translator.from_checkpoint(model_path, DecodeConfig(beam_size=1), device="cpu").translate(lines)


@pytest.mark.parametrize(
    "options", [{"temperature": 1e-6}, {"top_k": 1}, {"top_p": 1e-6}], ids=["t->0", "top1", "p->0"]
)
def test_sampling_that_leaves_one_choice_is_greedy_search(model_path, lines, greedy, options) -> None:
    cfg = DecodeConfig(sampling=True, beam_size=1, seed=5, **options)
    sampled = Translator.from_checkpoint(model_path, cfg, device="cpu").translate(lines)
    assert [t.best for t in sampled] == [t.best for t in greedy]
    for s, g in zip(sampled, greedy, strict=True):
        assert s.scores == pytest.approx(g.scores, abs=1e-4)  # the model's log-probs, not the tempered ones


def _samples(model_path, lines, seed: int) -> list[list[str]]:
    cfg = DecodeConfig(sampling=True, beam_size=1, n_best=3, temperature=1.5, seed=seed)
    return [t.texts for t in Translator.from_checkpoint(model_path, cfg, device="cpu").translate(lines)]


def test_samples_are_reproducible_with_a_seed_and_differ_with_another(model_path, lines, greedy) -> None:
    first, again, other = (_samples(model_path, lines, seed) for seed in (3, 3, 4))
    assert first == again
    assert first != other
    assert all(len(texts) == 3 for texts in first)  # n_best samples per input, even above beam_size
    assert sum(len(set(texts)) > 1 for texts in first) > len(lines) // 2  # at temperature 1.5 they vary
    cfg = DecodeConfig(sampling=True, beam_size=1, n_best=3, temperature=1.5, seed=3)
    for t in Translator.from_checkpoint(model_path, cfg, device="cpu").translate(lines[:10]):
        assert t.scores == sorted(t.scores, reverse=True) and all(math.isfinite(s) for s in t.scores)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": 0.0}, r"`temperature` must be > 0"),
        ({"top_p": 0.0}, r"`top_p` must be in \(0, 1\]"),
        ({"top_k": -1}, r"`top_k` must be >= 0"),
        ({"epsilon": 1.0}, r"`epsilon` must be in \[0, 1\)"),
    ],
)
def test_bad_sampling_options_are_refused(options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        check(DecodeConfig(sampling=True, **options))


def test_sampling_with_ctranslate2_is_refused() -> None:
    cfg = TranslateConfig(ckpt="m", backend="ctranslate2", decode=DecodeConfig(sampling=True, beam_size=1))
    with pytest.raises(ConfigError, match=r"`decode.sampling` needs `backend=torch`"):
        check(cfg)


def test_sampling_a_line_with_terms_is_refused_in_one_line(model_path) -> None:
    """A jsonl line with constraints under decode=sample: the search's rules do not apply to sampling, so it is a
    configuration error (one line, no traceback), while lines without terms sample."""
    sampler = Translator.from_checkpoint(model_path, DecodeConfig(sampling=True, beam_size=1), device="cpu")
    with pytest.raises(ConfigError, match="constraints, avoid and prefix need beam or greedy search"):
        sampler.translate(["a dog ."], constraints=[["Hund"]])
    assert sampler.translate(["a dog ."])[0].best
