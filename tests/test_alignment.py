"""Alignment error rate against hand-computed values, the links format, and subword-to-word aggregation."""

from __future__ import annotations

import pytest
import torch

from nmt.checkpoint import load_checkpoint
from nmt.config import DataConfig
from nmt.data.corpus import CorpusError
from nmt.data.sources import get_corpus
from nmt.data.tokenizer import Tokenizer
from nmt.decode.align import argmax_links, format_links, search_links, word_attention, word_index
from nmt.evaluate.alignment import (
    GoldAlignment,
    alignment_error_rate,
    parse_links,
    read_alignments,
)


def _gold(sure: set, possible_only: set = frozenset()) -> GoldAlignment:
    return GoldAlignment(frozenset(sure), frozenset(sure | possible_only))


def test_aer_of_hand_computed_cases() -> None:
    gold = _gold({(0, 0), (1, 2)}, {(2, 1)})  # S = 2 links, P = 3 links
    exact = alignment_error_rate([{(0, 0), (1, 2)}], [gold])
    assert (exact.precision, exact.recall, exact.aer) == (1.0, 1.0, 0.0)
    # A = {0-0 (sure), 2-1 (possible), 3-3 (wrong)}: |A∩S| = 1, |A∩P| = 2, |A| = 3, |S| = 2
    mixed = alignment_error_rate([{(0, 0), (2, 1), (3, 3)}], [gold])
    assert mixed.precision == pytest.approx(2 / 3)
    assert mixed.recall == pytest.approx(1 / 2)
    assert mixed.aer == pytest.approx(1 - (1 + 2) / (3 + 2))
    # Corpus level: counts are summed over sentences, not AERs averaged.
    second = _gold({(0, 1)})
    both = alignment_error_rate([{(0, 0), (2, 1), (3, 3)}, {(1, 1)}], [gold, second])
    assert both.aer == pytest.approx(1 - (1 + 2) / (4 + 3)) and both.sentences == 2
    assert alignment_error_rate([{(2, 1)}], [gold]).aer == pytest.approx(1 - 1 / 3)  # a possible link only


def test_links_parse_zero_and_one_indexed_with_sure_and_possible() -> None:
    one = parse_links("1-1 3p2 2-3", one_indexed=True)
    assert one.sure == {(0, 0), (1, 2)} and one.possible == {(0, 0), (1, 2), (2, 1)}
    assert parse_links("0-0 2p1 1-2") == one
    assert format_links({(2, 1), (0, 0), (1, 2)}) == "0-0 1-2 2-1"
    assert parse_links(format_links(one.possible)).sure == one.possible


def test_bad_links_are_refused_naming_file_and_line(tmp_path) -> None:
    path = tmp_path / "gold.txt"
    path.write_text("1-1 2-2\n1-1 x-3\n")
    with pytest.raises(CorpusError, match=rf"{path}, line 2: 'x-3' is not a link"):
        read_alignments(path, one_indexed=True)
    path.write_text("0-1\n")
    with pytest.raises(CorpusError, match=r"line 1: '0-1' has position 0, but the links are 1-indexed"):
        read_alignments(path, one_indexed=True)


def test_the_hansards_gold_set_reads_whole(shared_data) -> None:
    gold = read_alignments(shared_data / "alignment" / "enfr.gold", one_indexed=True)
    pairs = (shared_data / "alignment" / "enfr.src-tgt").read_text(encoding="utf-8").splitlines()
    assert len(gold) == len(pairs) == 447
    for links, pair in zip(gold, pairs, strict=True):
        english, french = (side.split() for side in pair.split("|||"))
        assert all(i < len(english) and j < len(french) for i, j in links.possible)
        assert links.sure <= links.possible
    assert sum(len(g.possible - g.sure) for g in gold) > 0  # the set has possible links


def test_pieces_map_to_the_words_of_the_text() -> None:
    pieces = ["\u2581un", "believ", "able", "\u2581,", "\u2581oh", "\u2581", "!"]
    assert word_index(pieces) == [0, 0, 0, 1, 2, 3, 3]
    assert word_index(["ab", "\u2581c"]) == [0, 1]  # a text that does not start with the mark


def test_real_pieces_rebuild_every_word_punctuation_included(model_path) -> None:
    tokenizer = Tokenizer.from_bytes(load_checkpoint(model_path).tokenizer)
    vocabulary = tokenizer.src_pieces()
    # Built-in sentences end in "apples." (a word with its full stop); the last line has detached punctuation.
    lines = [*get_corpus(DataConfig(), "test").src[:200], "now the children buy twenty - one red apples ."]
    several = 0
    for line, ids in zip(lines, tokenizer.encode_src(lines), strict=True):
        pieces = [vocabulary[i] for i in ids]
        words = word_index(pieces)
        rebuilt = ["".join(p for p, w in zip(pieces, words, strict=True) if w == k) for k in range(max(words) + 1)]
        assert [w.replace("\u2581", "") for w in rebuilt] == line.split(), line
        several += any(words.count(k) > 1 for k in set(words))
    assert several > 0  # some words came in several pieces


def test_word_attention_sums_source_pieces_and_averages_target_pieces() -> None:
    attn = torch.tensor(
        [  # source pieces: word 0 = pieces 0,1; word 1 = piece 2
            [0.1, 0.2, 0.7],  # target word 0, piece 0
            [0.3, 0.3, 0.4],  # target word 0, piece 1
            [0.6, 0.3, 0.1],  # target word 1
        ]
    )
    words = word_attention(attn, tgt_words=[0, 0, 1], src_words=[0, 0, 1])
    assert torch.allclose(words, torch.tensor([[(0.3 + 0.6) / 2, (0.7 + 0.4) / 2], [0.9, 0.1]]))
    assert torch.allclose(words.sum(1), torch.ones(2))  # still distributions over source words
    assert argmax_links(words) == {(1, 0), (0, 1)}
    with pytest.raises(ValueError, match=r"`attn` must be \[3, 2\]"):
        word_attention(attn, tgt_words=[0, 0, 1], src_words=[0, 1])


def test_a_hypothesis_with_no_pieces_has_no_links() -> None:
    """A search that wrote EOS first (decode.min_len=0) leaves a [1, S + 1] attention and no target pieces."""
    assert search_links(torch.rand(1, 4), ["▁a", "▁b", "▁c"], []) == set()
    assert search_links(torch.rand(3, 1), [], ["▁x", "▁y"]) == set()
    assert search_links(torch.rand(3, 4), ["▁a", "▁b", "▁c"], ["▁x", "▁y"]) != set()
