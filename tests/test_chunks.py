import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.config import TokenizerConfig
from nmt.data.builtin import builtin_corpus
from nmt.data.tokenizer import train_tokenizer
from nmt.documents.chunks import split_long


def words(text: str) -> int:
    return len(text.split())


def chunks(text: str, length, limit: int) -> list[str]:
    return [text[start:end] for start, end in split_long(text, length, limit)]


def assert_nothing_lost(text: str, spans: list[tuple[int, int]]) -> None:
    """The spans and the whitespace between them give back the text, and no span has whitespace around it."""
    rebuilt = [text[: spans[0][0]]] if spans else [text]
    for (start, end), (following, _) in zip(spans, [*spans[1:], (len(text), 0)][: len(spans)], strict=True):
        rebuilt += [text[start:end], text[end:following]]
        assert text[start:end] == text[start:end].strip() and not text[end:following].strip()
    assert "".join(rebuilt) == text


def test_a_sentence_that_fits_stays_one_span_without_surrounding_whitespace():
    assert split_long("  A short sentence.\n", words, 3) == [(2, 19)]
    assert split_long("   ", words, 3) == []


def test_a_twice_too_long_sentence_without_clauses_gives_two_chunks_of_similar_length():
    text = " ".join(f"w{i:02d}" for i in range(20))
    assert chunks(text, words, 12) == [text[:39], text[40:]]  # ten words each
    assert len(chunks(text, words, 20)) == 1 and len(chunks(text, words, 7)) == 3


def test_clause_punctuation_is_preferred_over_a_plain_word_boundary():
    text = "one two three four, five six seven eight nine ten eleven twelve thirteen"
    assert chunks(text, words, 10) == ["one two three four,", "five six seven eight nine ten eleven twelve thirteen"]
    plain = text.replace(",", "")
    assert [words(chunk) for chunk in chunks(plain, words, 10)] in ([6, 7], [7, 6])  # without it, balanced
    # Three chunks either way: one cut at the comma beats the more balanced 7 + 7 + 7 with two inside the clause.
    text = " ".join(f"w{i:02d}" for i in range(5)) + ", " + " ".join(f"w{i:02d}" for i in range(5, 21))
    assert [words(chunk) for chunk in chunks(text, words, 10)] == [5, 8, 8]


def test_clause_punctuation_far_from_the_middle_does_not_unbalance_the_chunks():
    text = "one, " + " ".join(f"w{i:02d}" for i in range(15))
    assert [words(chunk) for chunk in chunks(text, words, 9)] in ([9, 7], [8, 8], [7, 9])  # not [1, 8, 7]
    text = "It costs 1,000 dollars or 2,000 euros at 10:30"
    assert " ".join(chunks(text, len, 20)) == text  # cut at spaces only: "1,000" and "10:30" are no clauses


def test_chinese_without_spaces_is_cut_between_characters_and_at_its_commas():
    text = "我们今天去公园散步，然后一起吃晚饭，最后回家休息。"
    assert chunks(text, len, 18) == ["我们今天去公园散步，", "然后一起吃晚饭，最后回家休息。"]
    assert chunks("我们今天去公园散步然后一起吃晚饭最后回家休息", len, 12) == [
        "我们今天去公园散步然后",
        "一起吃晚饭最后回家休息",
    ]


def test_a_word_longer_than_the_limit_is_cut_between_characters():
    text = "see " + "x" * 50 + " here"
    spans = split_long(text, len, 10)
    assert all(end - start <= 10 for start, end in spans) and len(spans) >= 6
    assert_nothing_lost(text, spans)
    assert split_long("abcd", lambda piece: 2 * len(piece), 1) == [(0, 1), (1, 2), (2, 3), (3, 4)]  # kept whole


def test_a_word_that_fits_is_not_cut_even_to_save_a_chunk():
    assert chunks("aaa bbbbbb ccc", len, 7) == ["aaa", "bbbbbb", "ccc"]  # not "aaa bbb", "bbb ccc"
    assert chunks("我用 Python 写代码，你呢？", len, 8) == ["我用", "Python", "写代码，你呢？"]


def test_the_length_function_is_called_a_modest_number_of_times():
    calls = []

    def counted(piece: str) -> int:
        calls.append(piece)
        return words(piece)

    text = " ".join(["word"] * 1000)
    spans = split_long(text, counted, 50)
    assert all(words(text[start:end]) <= 50 for start, end in spans)
    # Each clause too long for a chunk is measured in pieces of a quarter of the limit, and each chunk once.
    assert len(spans) <= 22 and len(calls) <= 10 * len(spans)


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match=r"`limit` must be >= 1, but is 0 instead\."):
        split_long("text", len, 0)


PIECES = ["a", "word", "longerword", " ", "  ", ", ", "; ", " — ", "，", "汉字", "。", "\n", "1,000"]


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.sampled_from(PIECES), max_size=60).map("".join), limit=st.integers(1, 30))
def test_every_chunk_fits_and_no_character_is_lost(text, limit):
    spans = split_long(text, len, limit)
    assert all(end - start <= limit for start, end in spans)
    assert_nothing_lost(text, spans)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    corpus = builtin_corpus("train", 400, seed=0)
    return train_tokenizer(corpus.src, corpus.tgt, TokenizerConfig(vocab_size=300), tmp_path_factory.mktemp("spm"))


def test_chunks_fit_a_real_tokenizers_count(tokenizer):
    def subwords(piece: str) -> int:
        return len(tokenizer.encode_src([piece])[0])

    text = "today the children see three hundred twenty one red apples, " * 6 + "and they buy a beautiful old house"
    assert subwords(text) > 60
    spans = split_long(text, subwords, 30)
    assert len(spans) > 2 and all(subwords(text[start:end]) <= 30 for start, end in spans)
    assert all(text[start:end].endswith(",") for start, end in spans[:-1])  # cut at the commas
    assert_nothing_lost(text, spans)
    plain = text.replace(",", "")
    for limit in (40, 100):
        sizes = [subwords(plain[start:end]) for start, end in split_long(plain, subwords, limit)]
        assert len(sizes) == math.ceil(subwords(plain) / limit) and max(sizes) <= limit
        assert max(sizes) <= 1.25 * min(sizes)  # balanced
