"""Property-based tests (hypothesis): invariants that must hold for any input, not just hand-picked ones."""

from __future__ import annotations

import gzip
import random
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmt.config import DecodeConfig, TokenizerConfig
from nmt.data.batching import TokenBatchSampler
from nmt.data.corpus import iter_lines, read_lines
from nmt.data.tokenizer import Tokenizer, train_tokenizer
from nmt.decode.translator import Translator

UMLAUTS = "äöüÄÖÜß"
CJK = "我你他是的不了人在有这中大来上国个到说们为子和也时要就出会可"
EMOJI = "😀😂👍🎉🚀"
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"()-" + UMLAUTS + CJK + EMOJI

FIXTURES = [HealthCheck.function_scoped_fixture]


def _training_lines(n: int = 3000) -> list[str]:
    """Random "sentences" over `ALPHABET`, so every character of it is in the vocabulary (coverage 1.0)."""
    rng = random.Random(0)
    words = ["the", "house", "is", "green", "Mädchen", "Straße", "über", "schön", "我们", "中国", "你好", "😀", "🎉"]
    lines = [" ".join(ALPHABET)]
    for _ in range(n):
        tokens = [rng.choice(words) if rng.random() < 0.7 else "".join(rng.choices(ALPHABET, k=3)) for _ in range(8)]
        lines.append(" ".join(tokens))
    return lines


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    lines = _training_lines()
    cfg = TokenizerConfig(vocab_size=500, character_coverage=1.0)
    return train_tokenizer(lines, lines, cfg, tmp_path_factory.mktemp("spm-properties"))


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=ALPHABET + " " * 10, max_size=80))
def test_tokenizer_round_trip_returns_the_normalised_text(tokenizer: Tokenizer, text: str) -> None:
    """`decode_tgt(encode_tgt([x])[0])` is x after NFKC, with whitespace runs collapsed to one space and stripped.

    The alphabet only holds characters seen in training, so none comes back as the unknown piece.
    """
    expected = " ".join(unicodedata.normalize("NFKC", text).split())
    assert tokenizer.decode_tgt(tokenizer.encode_tgt([text])[0]) == expected


lengths = st.integers(min_value=1, max_value=60)
pairs = st.lists(st.tuples(lengths, lengths), min_size=1, max_size=300)


def _sampler(pairs: list[tuple[int, int]], max_tokens: int, seed: int, **kw) -> TokenBatchSampler:
    src, tgt = zip(*pairs, strict=True)
    return TokenBatchSampler(src, tgt, max_tokens, seed=seed, **kw)


@settings(max_examples=100, deadline=None)
@given(
    pairs=pairs,
    max_tokens=st.integers(min_value=64, max_value=2048),
    num_replicas=st.integers(min_value=1, max_value=4),
    seed=st.integers(min_value=0, max_value=1000),
    epoch=st.integers(min_value=0, max_value=5),
    data=st.data(),
)
def test_batches_fit_the_budget_cover_every_pair_and_shard_disjointly(
    pairs: list[tuple[int, int]], max_tokens: int, num_replicas: int, seed: int, epoch: int, data: st.DataObject
) -> None:
    whole = _sampler(pairs, max_tokens, seed)
    whole.set_epoch(epoch)
    batches = list(whole)
    for batch in batches:
        assert len(batch) * max(max(pairs[i]) for i in batch) <= max_tokens
    assert sorted(i for batch in batches for i in batch) == list(range(len(pairs)))

    shards = []
    for rank in range(num_replicas):
        sampler = _sampler(pairs, max_tokens, seed, num_replicas=num_replicas, rank=rank)
        sampler.set_epoch(epoch)
        shards.append([i for batch in sampler for i in batch])
        assert sum(1 for _ in sampler) == len(sampler) == len(batches) // num_replicas
    seen = [i for shard in shards for i in shard]
    assert len(seen) == len(set(seen))

    again = _sampler(pairs, max_tokens, seed)
    again.set_epoch(epoch)
    assert list(again) == batches
    n = data.draw(st.integers(min_value=0, max_value=len(batches)), label="skip")
    again.skip(n)
    assert list(again) == batches[n:]


line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=30)


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(line_text, min_size=1, max_size=20),
    endings=st.lists(st.sampled_from(["\n", "\r\n"]), min_size=20, max_size=20),
    final_break=st.booleans(),
    bom=st.booleans(),
    packed=st.booleans(),
)
def test_read_lines_and_iter_lines_agree_on_any_line_endings(
    lines: list[str], endings: list[str], final_break: bool, bom: bool, packed: bool
) -> None:
    # Without a final break an empty last line would be indistinguishable from no line at all.
    final_break = final_break or lines[-1] == ""
    text = "".join(line + end for line, end in zip(lines, endings, strict=False))
    if not final_break:
        text = text.removesuffix(endings[len(lines) - 1])
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("corpus.txt.gz" if packed else "corpus.txt")
        path.write_bytes(gzip.compress(data) if packed else data)
        expected = [line.strip() for line in lines]
        assert read_lines(path) == expected
        assert list(iter_lines(path)) == expected


@pytest.fixture(scope="module")
def greedy(model_path: Path, one_thread) -> Translator:
    return Translator.from_checkpoint(model_path, DecodeConfig(beam_size=1, max_len_b=5, max_len_a=0.5), "cpu")


translate_line = st.one_of(
    st.just(""),
    st.text(" \t\u3000", min_size=1, max_size=5),
    st.text(ALPHABET + " ", max_size=20),
    st.lists(st.sampled_from(["a", "man", "is", "riding", "a", "horse", "dog", "two", "women"]), max_size=60).map(
        " ".join
    ),
)


@settings(max_examples=15, deadline=None, suppress_health_check=FIXTURES)
@given(lines=st.lists(translate_line, max_size=20))
def test_translation_preserves_lines_and_does_not_depend_on_batching(greedy: Translator, lines: list[str]) -> None:
    """One output per input, in order; empty exactly for blank inputs; the same as translating each line alone."""
    together = [t.best for t in greedy.translate(lines)]
    assert len(together) == len(lines)
    assert [not out for out in together] == [not line.strip() for line in lines]
    assert together == [greedy.translate([line])[0].best for line in lines]
