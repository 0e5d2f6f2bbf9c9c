"""The test sets of document translation (`nmt.evaluate.documents`, `markup_sets`, `piece_sets`): built the
same under a seed and as they claim (tags around consistent aligned spans, one piece per line), scored right
on hand-made placements, and the three benchmarks run end to end on the session's tiny model."""

from __future__ import annotations

import pytest

from nmt.checkpoint import trained_on
from nmt.config import DecodeConfig
from nmt.data.corpus import read_lines
from nmt.decode.translator import Translator
from nmt.documents.protect import protect
from nmt.documents.segment import Segment, Span, Tag
from nmt.evaluate.documents import benchmark_paragraphs, held_out_corpus, paragraph_pairs
from nmt.evaluate.markup_sets import (
    benchmark_markup,
    builtin_set,
    consistent_spans,
    tag_scores,
    tagged_pairs,
    well_formed,
)
from nmt.evaluate.piece_sets import KINDS, benchmark_pieces, piece_lines

pytestmark = pytest.mark.usefixtures("one_thread")

BOLD, ITALIC = Tag("<b>", "</b>"), Tag("<i>", "</i>")


def test_paragraphs_are_drawn_the_same_under_a_seed_and_group_the_references_alike():
    src = [f"Sentence number {i} is here." for i in range(60)]
    src[7] = "a caption without a final period"
    ref = [f"Satz Nummer {i} ist hier." for i in range(60)]
    pairs = paragraph_pairs(src, ref, seed=3, langs=("en", "de"))
    assert pairs == paragraph_pairs(src, ref, seed=3, langs=("en", "de"))
    assert [len(s.sentences) for s, _ in pairs] != [
        len(s.sentences) for s, _ in paragraph_pairs(src, ref, 4, ("en", "de"))
    ]
    for source, reference in pairs:
        assert 2 <= len(source.sentences) <= 16 and len(source.sentences) == len(reference.sentences)
        numbers = [source.text[a:b].split()[2] for a, b in source.sentences]
        assert numbers == [reference.text[a:b].split()[2] for a, b in reference.sentences]
    assert all(src[7] not in source.text for source, _ in pairs)  # not one whole sentence: left out


def test_consistent_spans_keep_aligned_phrases_and_drop_gaps_unaligned_words_links_leaving_and_punctuation():
    # 0-0, a swap (1-2, 2-1), word 3 to two words (3-3, 3-4), word 4 unaligned, word 5 to 5 and to 0's target,
    # the final period to the final period
    links = {(0, 0), (1, 2), (2, 1), (3, 3), (3, 4), (5, 5), (5, 0), (6, 6)}
    spans = dict(consistent_spans(links, list("abcdef."), ["A", "C", "B", "D", "D'", "F", "."]))
    assert spans[1, 2] == (2, 3) and spans[1, 3] == (1, 3) and spans[3, 4] == (3, 5)
    assert (0, 1) not in spans  # target 0 is also linked to source 5, outside the span
    assert (0, 2) not in spans  # targets 0 and 2: not contiguous
    assert (3, 5) not in spans and (4, 5) not in spans  # source 4 is unaligned
    assert (6, 7) not in spans  # punctuation alone
    assert all(j - i <= 3 for i, j in spans)


def test_tagged_pairs_are_the_same_under_a_seed_and_wrap_consistent_aligned_spans():
    pairs, gold = builtin_set(60)
    links = [g.sure for g in gold]
    tagged = tagged_pairs(pairs, links, seed=0)
    assert tagged == tagged_pairs(pairs, links, seed=0)
    assert tagged != tagged_pairs(pairs, links, seed=1)
    assert len(tagged) == len(pairs)  # every built-in pair has a consistent span
    counts = set()
    for t in tagged:
        tags = [span.tag for span in t.source.spans]
        assert 1 <= len(tags) <= 2 and len(set(tags)) == len(tags)
        assert sorted(tags, key=str) == sorted((s.tag for s in t.reference.spans), key=str)
        counts.add(len(tags))
        for span in t.source.spans:
            source_words = _words(t.source, span)
            target_words = _words(t.reference, next(s for s in t.reference.spans if s.tag == span.tag))
            assert 1 <= len(source_words) <= 3
            assert {j for i, j in links[t.index] if i in source_words} == target_words
            assert {i for i, j in links[t.index] if j in target_words} <= source_words
    assert counts == {1, 2}


def _words(segment: Segment, span: Span) -> set[int]:
    """The indices of the space-separated words a span covers; the span must cover whole words."""
    starts = [0] + [k + 1 for k, char in enumerate(segment.text) if char == " "]
    ends = [k for k, char in enumerate(segment.text) if char == " "] + [len(segment.text)]
    assert span.start in starts and span.end in ends
    return set(range(starts.index(span.start), ends.index(span.end) + 1))


@pytest.mark.parametrize("source", ["builtin", "multi30k"])
def test_every_piece_line_holds_its_own_piece_once_and_protection_takes_it_whole(shared_data, source):
    if source == "builtin":
        lines = [src for src, _ in builtin_set(100)[0]]
    else:
        lines = read_lines(shared_data / "multi30k" / "test2016.en.gz")[:200]
    found = piece_lines(lines, seed=0)
    assert found == piece_lines(lines, seed=0) and found != piece_lines(lines, seed=1)
    assert [x.kind for x in found[:10]] == [*KINDS, *KINDS]
    assert len({x.piece for x in found}) == len(found)
    for line, x in zip(lines, found, strict=True):
        assert x.text.count(x.piece) == 1
        assert x.text.replace(x.piece, " ").split() == line.split()
        assert any(x.piece in span.tag.open for span in protect(Segment(x.text)).spans), x.text


def test_a_placement_equal_to_the_reference_scores_100_and_a_shifted_one_less():
    text = "der rote Hund sieht die Katze"
    reference = Segment(text, [Span(4, 13, BOLD), Span(24, 29, ITALIC)])  # <b>rote Hund</b>, <i>Katze</i>
    assert tag_scores([reference], [reference]) == {
        "accuracy": 100.0,
        "overlap_f1": 100.0,
        "structure": 100.0,
        "well_formed": 100.0,
    }
    shifted = Segment(text, [Span(8, 19, BOLD), Span(24, 29, ITALIC)])  # <b>Hund sieht</b>
    scores = tag_scores([shifted], [reference])
    assert scores["accuracy"] == 50.0 and 50.0 < scores["overlap_f1"] < 100.0
    assert scores["structure"] == 100.0 and scores["well_formed"] == 100.0


def test_a_dropped_tag_breaks_the_structure_match():
    text = "der rote Hund sieht die Katze"
    reference = Segment(text, [Span(4, 13, BOLD), Span(24, 29, ITALIC)])
    dropped = Segment(text, [Span(4, 13, BOLD)])
    scores = tag_scores([dropped, reference], [reference, reference])
    assert scores["structure"] == 50.0 and scores["accuracy"] == 75.0


def test_well_formed_refuses_crossed_or_unclosed_tags():
    assert well_formed("a <b>b <i>c</i></b> &amp; d")
    assert not well_formed("a <b>b <i>c</b></i>")
    assert not well_formed("a <b>b")


def test_the_three_benchmarks_run_on_the_tiny_model(model_path):
    translator = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=2), device="cpu")
    langs = translator.langs
    test = held_out_corpus(trained_on(model_path))
    src, ref = test.src[:12], test.tgt[:12]
    a = benchmark_paragraphs(translator, paragraph_pairs(src, ref, 18, langs), langs)  # paragraphs of 4, 3, 5
    lines, split, _, before = a["rows"]
    assert split["bleu"] == lines["bleu"] and split["same_as_lines"] == a["paragraphs"] == 3
    assert split["units"] == lines["units"] == a["sentences"] and before["units"] == a["paragraphs"]
    assert all(row["truncated"] == 0 for row in a["rows"])

    pairs, gold = builtin_set(8)
    b = benchmark_markup(translator, pairs, gold, tagged_pairs(pairs, [g.sure for g in gold], 0), langs)
    assert b["forced_mismatch"] == 0 and [row["well_formed"] for row in b["rows"]] == [100.0, 100.0]
    assert b["rows"][0]["accuracy"] > b["rows"][1]["accuracy"]
    assert b["translation"]["bleu_tagged"] == b["translation"]["bleu_untagged"]
    assert abs(b["aer"]["search"] - b["aer"]["nmt_align"]) <= 1.0

    c = benchmark_pieces(translator, piece_lines(src[:5], 0), src[:5], ref[:5], langs)
    everything = c["rows"][-1]
    assert everything["kind"] == "all" and everything["kept_on"] == 100.0 > everything["kept_off"]
    assert c["plain"]["identical_without_piece"] == c["plain"]["lines"] - c["plain"]["with_piece"]


def test_silver_links_from_eflomal_agree_with_the_gold_links_and_read_back(tmp_path):
    from nmt.evaluate.alignment import alignment_error_rate, read_alignments
    from nmt.evaluate.silver_links import eflomal_links, write_links

    pairs, gold = builtin_set(400)
    silver = eflomal_links(pairs[:100], pairs[100:])
    assert len(silver) == 100
    for (src, tgt), links in zip(pairs, silver, strict=False):
        assert all(s < len(src.split()) and t < len(tgt.split()) for s, t in links.sure)
    aer = alignment_error_rate([a.sure for a in silver], gold[:100]).aer
    assert aer < 0.3, aer  # the built-in corpus is word for word: a real aligner finds most links
    write_links(tmp_path / "links", silver)
    assert read_alignments(tmp_path / "links") == silver
