"""Markup placed on a translation along the model's alignment (`place`) and by substring search (the baseline)."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from collections import Counter
from xml.sax.saxutils import escape

from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.documents.placement import place, place_by_substring
from nmt.documents.protect import protect
from nmt.documents.segment import Segment, Span, Tag, render

B = Tag("<b>", "</b>")
I = Tag("<i>", "</i>")  # noqa: E741
LINK = Tag('<a href="https://example.org/?q=1&amp;r=2" class="x">', "</a>")
IMAGE = Tag('<img src="cat.png" alt="a cat"/>', kind="void")


def pieces(text: str) -> list[tuple[int, int]]:
    """Word and punctuation pieces, each with the whitespace before it (as SentencePiece's "▁dog" covers " dog")."""
    return [match.span() for match in re.finditer(r"\s*\w+|\s*[^\w\s]", text)]


def links(source: str, target: str, pairs: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """Character links from (target piece, source piece) index pairs."""
    source_pieces, target_pieces = pieces(source), pieces(target)
    return [(*target_pieces[t], *source_pieces[s]) for t, s in pairs]


def test_a_bold_word_follows_its_translation_when_the_sentence_is_reordered():
    source = "The dog sleeps in the garden."
    target = "Im Garten schläft der Hund."
    alignment = links(source, target, [(0, 3), (1, 5), (2, 2), (3, 0), (4, 1), (5, 6)])
    dog, garden = Span(4, 7, B), Span(22, 28, B)
    assert render(place(Segment(source, [dog]), target, alignment)) == "Im Garten schläft der <b>Hund</b>."
    assert render(place(Segment(source, [garden]), target, alignment)) == "Im <b>Garten</b> schläft der Hund."


def test_nested_tags_stay_nested_and_keep_their_attributes():
    source = Segment("Click here now please.", [Span(6, 14, LINK), Span(6, 10, B)])
    target = "Bitte jetzt hier klicken."
    placed = place(source, target, links(source.text, target, [(0, 3), (1, 2), (2, 1), (3, 0), (4, 4)]))
    assert render(placed) == f"Bitte {LINK.open}jetzt <b>hier</b></a> klicken."
    assert placed.spans[0].tag is LINK  # the source's own tag object: attributes untouched


def test_siblings_that_would_overlap_leave_the_range_to_the_one_with_more_pieces():
    source = Segment("a big red fast car", [Span(2, 9, B), Span(10, 14, I)])
    target = "ein großes schnelles rotes Auto"  # "schnelles" (fast) lands between "großes" and "rotes" (big red)
    placed = place(source, target, links(source.text, target, [(0, 0), (1, 1), (2, 3), (3, 2), (4, 4)]))
    assert render(placed) == "ein <b>großes schnelles rotes</b> <i></i>Auto"
    tie = Segment("a big red fast car", [Span(2, 9, B), Span(10, 18, I)])  # two pieces each: "big red" first
    placed = place(tie, target, links(tie.text, target, [(0, 0), (1, 1), (2, 3), (3, 2), (4, 4)]))
    assert render(placed) == "ein <b>großes schnelles rotes</b> <i>Auto</i>"


def test_an_element_whose_word_is_unaligned_goes_to_its_nearest_aligned_neighbour():
    source = Segment("I saw a very big house.", [Span(8, 12, I)])
    target = "Ich sah ein großes Haus."
    placed = place(source, target, links(source.text, target, [(0, 0), (1, 1), (2, 2), (3, 4), (4, 5), (5, 6)]))
    assert render(placed) == "Ich sah ein <i></i>großes Haus."  # both neighbours one space away: the next one
    source = Segment("She sings loudly and badly.", [Span(10, 16, I)])
    placed = place(source, "Sie singt.", links(source.text, "Sie singt.", [(0, 0), (1, 1), (2, 5)]))
    assert render(placed) == "Sie singt<i></i>."  # "and badly" unaligned: "sings" is the nearer neighbour


def test_a_point_goes_before_the_translation_of_the_next_word():
    source = "I like cats."
    target = "Katzen mag ich."
    alignment = links(source, target, [(0, 2), (1, 1), (2, 0), (3, 3)])
    assert render(place(Segment(source, [Span(7, 7, IMAGE)]), target, alignment)) == f"{IMAGE.open}Katzen mag ich."
    assert render(place(Segment(source, [Span(2, 2, IMAGE)]), target, alignment)) == f"Katzen {IMAGE.open}mag ich."
    assert render(place(Segment(source, [Span(12, 12, IMAGE)]), target, alignment)) == f"Katzen mag ich.{IMAGE.open}"


def test_a_point_at_an_element_start_stays_on_its_side_of_the_edge_in_document_order():
    source = "See the picture here."
    target = "Hier ist das Bild."
    alignment = links(source, target, [(0, 3), (1, 0), (2, 1), (3, 2), (4, 4)])
    inside = place(Segment(source, [Span(16, 20, LINK), Span(16, 16, IMAGE)]), target, alignment)
    assert [(span.start, span.end, span.tag) for span in inside.spans] == [(0, 4, LINK), (0, 0, IMAGE)]
    before = place(Segment(source, [Span(16, 16, IMAGE), Span(16, 20, LINK)]), target, alignment)
    assert [span.tag for span in before.spans] == [IMAGE, LINK]


def test_whitespace_at_the_edges_of_a_piece_stays_outside_the_tags():
    source = Segment("a big dog barks", [Span(2, 9, B)])
    target = "ein großer Hund bellt"
    placed = place(source, target, links(source.text, target, [(0, 0), (1, 1), (2, 2), (3, 3)]))
    assert render(placed) == "ein <b>großer Hund</b> bellt"
    trailing = [(0, 4, 0, 2), (4, 11, 2, 6), (11, 16, 6, 10), (16, 21, 10, 15)]  # pieces with the space after them
    assert render(place(source, target, trailing)) == "ein <b>großer Hund</b> bellt"


def test_an_untranslatable_piece_gets_spaces_only_where_the_translation_needs_them():
    source = protect(Segment("Visit https://x.org today."))
    german = "Besuchen Sie heute."
    placed = place(source, german, links(source.text, german, [(0, 0), (1, 0), (2, 1), (3, 2)]))
    assert render(placed) == "Besuchen Sie https://x.org heute."
    chinese = "今天访问。"  # written without spaces
    placed = place(source, chinese, [(0, 2, 6, 11), (2, 4, 0, 5), (4, 5, 11, 12)])
    assert render(placed) == "https://x.org今天访问。"


def test_a_point_that_ends_a_word_follows_that_word():
    source = protect(Segment("see {x} (details)"))  # the point sits right after "see"
    target = "siehe (Details)"
    placed = place(source, target, links(source.text, target, [(0, 0), (1, 1), (2, 2), (3, 3)]))
    assert render(placed) == "siehe {x} (Details)"


def test_odd_alignments_give_well_formed_markup():
    source = Segment("She sings loudly.", [Span(4, 16, LINK), Span(10, 16, I), Span(10, 10, IMAGE)])
    for target, alignment in [
        ("", []),
        ("Sie singt laut.", []),
        ("Sie singt laut.", [(-5, 100, 3, 1000), (8, 2, 0, 0), (3, 3, 4, 9)]),
        ("Sie singt laut.", [(0, 3, 10, 16)] * 3),
    ]:
        placed = place(source, target, alignment)
        assert placed.text == target
        assert Counter(span.tag for span in placed.spans) == Counter(span.tag for span in source.spans)
        ET.fromstring(f"<root>{render(placed)}</root>")


def test_the_substring_baseline_finds_a_word_translated_alone():
    source = Segment("The dog sleeps in the garden.", [Span(4, 7, B)])
    placed = place_by_substring(
        source, "Im Garten schläft der Hund.", lambda texts: [{"dog": "Hund."}[t] for t in texts]
    )
    assert render(placed) == "Im Garten schläft der <b>Hund</b>."
    source = Segment("The dog sleeps.", [Span(0, 7, B)])
    placed = place_by_substring(source, "Jetzt schläft der Hund.", lambda texts: ["Der Hund" for _ in texts])
    assert render(placed) == "Jetzt schläft <b>der Hund</b>."  # found whatever the case


def test_the_substring_baseline_loses_a_reordered_inflected_phrase_that_the_alignment_keeps():
    source = Segment("I saw the big dog yesterday.", [Span(6, 17, B)])
    target = "Gestern sah ich den großen Hund."  # accusative: "the big dog" alone is "der große Hund"
    baseline = place_by_substring(source, target, lambda texts: [{"the big dog": "der große Hund"}[t] for t in texts])
    assert [(span.start, span.end) for span in baseline.spans] == [(8, 8)]  # empty, at the proportional place
    alignment = links(source.text, target, [(0, 5), (1, 1), (2, 0), (3, 2), (4, 3), (5, 4), (6, 6)])
    assert render(place(source, target, alignment)) == "Gestern sah ich <b>den großen Hund</b>."


# Random segments: words, properly nested elements, points of every kind, and random (often absurd) links.


@st.composite
def cases(draw) -> tuple[Segment, str, list[tuple[int, int, int, int]]]:
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    words = ["dog", "cat", "a", "big", "red", "x&y", "<z>", "1"]
    source_text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 8)))
    target = " ".join(rng.choice(words) for _ in range(rng.randint(0, 8)))
    spans: list[Span] = []
    for n in range(rng.randint(0, 8)):
        start = rng.randint(0, len(source_text))
        if rng.random() < 0.6:
            end = rng.randint(start, len(source_text))
            nested = all(end <= s.start or s.end <= start or (s.start <= start and end <= s.end) or
                         (start <= s.start and s.end <= end) for s in spans if s.tag.kind == "element")  # fmt: skip
            if nested:
                spans.append(Span(start, end, Tag(f'<e{n} n="{n}">', f"</e{n}>")))
        else:
            kind = rng.choice(["void", "text", "break"])
            spans.append(Span(start, start, Tag(f"<p{n}/>" if kind != "text" else f"t{n}&", kind=kind)))
    spans.sort(key=lambda span: (span.start, -span.end))
    n_links = rng.randint(0, 10)
    bound = max(len(source_text), len(target)) + 3
    alignment = [tuple(rng.randint(-3, bound) for _ in range(4)) for _ in range(n_links)]
    return Segment(source_text, spans), target, alignment


def assert_well_formed(source: Segment, placed: Segment, target: str) -> None:
    assert Counter(span.tag for span in placed.spans) == Counter(span.tag for span in source.spans)
    assert placed.text.replace(" ", "") == target.replace(" ", "")  # only spaces around text points are added
    assert all(0 <= span.start <= span.end <= len(placed.text) for span in placed.spans)
    elements = [span for span in placed.spans if span.tag.kind == "element"]
    assert not any(a.start < b.start < a.end < b.end for a in elements for b in elements)
    ET.fromstring(f"<root>{render(placed, escape)}</root>")


@settings(max_examples=300, deadline=None)
@given(cases())
def test_placed_markup_is_always_well_formed_with_every_tag_once(case):
    source, target, alignment = case
    placed = place(source, target, alignment)
    assert_well_formed(source, placed, target)
    assert place(source, target, alignment[::-1]) == placed  # the order of the links does not matter


@settings(max_examples=200, deadline=None)
@given(cases())
def test_the_baseline_is_always_well_formed_with_every_tag_once(case):
    source, target, _ = case
    placed = place_by_substring(source, target, lambda texts: [text.split()[-1] for text in texts])
    assert_well_formed(source, placed, target)
