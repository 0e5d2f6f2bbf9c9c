"""Untranslatable pieces taken out of a segment's text as `text` points, and put back verbatim."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.documents.protect import PROTECTED, pad_text_points, protect
from nmt.documents.segment import Segment, Span, Tag, render

B = Tag("<b>", "</b>")
LINK = Tag('<a href="https://x.org">', "</a>")
BREAK = Tag("<br/>", kind="void")

EXAMPLES = [  # (kind, text, the piece it protects, the text left for the model)
    ("url", "see https://x.org/a now", "https://x.org/a", "see now"),
    ("url", "see www.example.com/page?q=a now", "www.example.com/page?q=a", "see now"),
    ("email", "write to ann.lee+news@mail.example.org today", "ann.lee+news@mail.example.org", "write to today"),
    ("number", "I have 3 cats", "3", "I have cats"),
    ("number", "it weighs 3.5 tons", "3.5", "it weighs tons"),
    ("number", "about 1,000 people", "1,000", "about people"),
    ("number", "a 10% rise", "10%", "a rise"),
    ("number", "on 2024-05-01 we met", "2024-05-01", "on we met"),
    ("number", "call +49 30 1234 now", "+49 30 1234", "call now"),
    ("number", "it was -4 degrees", "-4", "it was degrees"),
    ("placeholder", "Hello {name} again", "{name}", "Hello again"),
    ("placeholder", "Hello {{ user.name }} again", "{{ user.name }}", "Hello again"),
    ("placeholder", "Hello %s again", "%s", "Hello again"),
    ("placeholder", "You have %d messages", "%d", "You have messages"),
    ("placeholder", "Hello %(name)s again", "%(name)s", "Hello again"),
    ("placeholder", "Set $HOME first", "$HOME", "Set first"),
    ("placeholder", "Set ${dir} first", "${dir}", "Set first"),
    ("code", "Run `ls -l` first", "`ls -l`", "Run first"),
]


@pytest.mark.parametrize(("kind", "text", "piece", "left"), EXAMPLES)
def test_each_kind_of_piece_becomes_a_verbatim_text_point(kind, text, piece, left):
    protected = protect(Segment(text), [kind])
    assert protected.text == left
    assert protected.spans == [Span(text.index(piece), text.index(piece), Tag(piece, kind="text"))]
    assert protect(Segment(text), [other for other in PROTECTED if other != kind]).text == text  # turned off


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ("see https://x.org/a.", "https://x.org/a"),
        ("(see https://x.org/a), then", "https://x.org/a"),
        ("see https://en.wikipedia.org/wiki/Foo_(bar).", "https://en.wikipedia.org/wiki/Foo_(bar)"),
        ("Is it https://x.org/a?", "https://x.org/a"),
        ("mail ann@x.org.", "ann@x.org"),
        ("It costs 3.", "3"),
        ("It rose 10%, then fell.", "10%"),
    ],
)
def test_trailing_sentence_punctuation_stays_in_the_text(text, piece):
    protected = protect(Segment(text))
    assert [span.tag.open for span in protected.spans] == [piece]
    assert protected.text == text.replace(piece + " ", "").replace(piece, "")


def test_a_number_inside_a_url_belongs_to_the_url():
    text = "open https://x.org/page?id=42 now"
    assert [span.tag.open for span in protect(Segment(text)).spans] == ["https://x.org/page?id=42"]
    assert [span.tag.open for span in protect(Segment(text), ["number"]).spans] == ["42"]


def test_digits_inside_words_are_left_to_the_model():
    text = "COVID-19 on the 3rd, 5kg, v2 and H2O"
    assert protect(Segment(text)) == Segment(text)


@pytest.mark.parametrize(
    ("text", "left"),
    [
        ("x {a} y", "x y"),  # the space after it goes: the point stays with "y"
        ("see {x} (details)", "see (details)"),  # the space before it goes: the point stays with "see"
        ("{a} hello", "hello"),
        ("hello {a}", "hello"),
        ("a  {x}  b", "a    b"),  # the text had double spaces already
        ("( {x} )", "(  )"),  # no word on either side to take the point
    ],
)
def test_the_model_sees_one_space_where_a_piece_stood_between_two(text, left):
    assert protect(Segment(text)).text == left


def test_pieces_separated_only_by_spaces_become_one_point():
    assert protect(Segment("see {a} {b} here")) == Segment("see here", [Span(4, 4, Tag("{a} {b}", kind="text"))])


def test_unknown_kinds_raise_naming_them():
    with pytest.raises(ValueError, match="'dates', 'emoji'"):
        protect(Segment("x"), ["url", "emoji", "dates"])


def test_the_spans_after_a_piece_move_with_the_text():
    protected = protect(Segment("Call 030 1234 or write to us.", [Span(17, 22, B), Span(22, 22, BREAK)]))
    assert protected == Segment(
        "Call or write to us.", [Span(5, 5, Tag("030 1234", kind="text")), Span(8, 13, B), Span(13, 13, BREAK)]
    )


def test_an_element_around_a_piece_shrinks_and_one_made_of_it_becomes_empty():
    around = protect(Segment("Pay 10% now", [Span(0, 11, B)]))
    assert around == Segment("Pay now", [Span(0, 7, B), Span(4, 4, Tag("10%", kind="text"))])
    link = protect(Segment("see https://x.org today", [Span(4, 17, LINK)]))
    assert link == Segment("see today", [Span(4, 4, LINK), Span(4, 4, Tag("https://x.org", kind="text"))])


def test_a_piece_that_an_element_edge_or_a_point_cuts_is_left_to_the_model():
    crossing = Segment("see https://x.org/path now", [Span(18, 22, B)])
    assert protect(crossing) == crossing
    interrupted = Segment("see https://x.org/path now", [Span(18, 18, BREAK)])
    assert protect(interrupted) == interrupted


def round_trip(segment: Segment) -> str:
    """The protected segment written out with its points at their own positions, spaced as its text needs."""
    return render(pad_text_points(protect(segment)))


@pytest.mark.parametrize(
    "text",
    [
        "x {a} y",
        "{a} hello",
        "hello {a}",
        "{a}",
        "see {x} (details)",
        "x, {a} y",
        "a{x}b",
        "a  {x}  b",
        "hello. {a}",
        "( {x} )",
        "line\n{a} next",
        "Hello {name}, you have 3 messages since 2024-05-01 (see https://x.org/inbox).",
    ],
)
def test_putting_the_points_back_gives_the_original_text(text):
    assert round_trip(Segment(text)) == text


def test_putting_the_points_back_keeps_the_markup_around_them():
    source = Segment("Write to ann@x.org or call 030 1234 today.", [Span(0, 5, B), Span(22, 41, LINK)])
    assert round_trip(source) == render(source)


TOKENS = ["the", "cat", "Sat", "https://x.org/a?b=1", "ann@x.org", "3", "1,000", "10%", "2024-05-01", "+49 30 1234",
          "{name}", "{{ x }}", "%s", "%(n)d", "$HOME", "${x}", "`ls -l`", "-", "&"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(TOKENS), st.sampled_from(["", "", ",", ".", ")", ":"]), st.sampled_from(["", "("])),
        max_size=10,
    ),
    st.sampled_from([" ", "  ", "\n"]),
)
def test_putting_the_points_back_gives_any_spaced_text_back(tokens, space):
    text = space.join(opening + token + closing for token, closing, opening in tokens)
    assert round_trip(Segment(text)) == text


def test_a_piece_ending_an_element_is_held_inside_it_and_one_after_it_is_not():
    inside = protect(Segment("Read step 3 first.", [Span(5, 11, B)]))
    assert inside == Segment("Read step first.", [Span(5, 9, B), Span(9, 9, Tag("3", kind="text"), held=1)])
    after = protect(Segment("Read step 3 first.", [Span(5, 9, B)]))
    assert after == Segment("Read step first.", [Span(5, 9, B), Span(10, 10, Tag("3", kind="text"))])


def test_a_piece_beside_a_point_keeps_the_space_on_the_points_side():
    assert protect(Segment("Street 1 Berlin")) == Segment("Street Berlin", [Span(7, 7, Tag("1", kind="text"))])
    beside = protect(Segment("Street 1 Berlin", [Span(8, 8, BREAK)]))
    assert beside == Segment("Street Berlin", [Span(6, 6, Tag("1", kind="text")), Span(6, 6, BREAK)])


A = Tag("<a>", "</a>")


@pytest.mark.parametrize(
    ("held", "written"), [(0, "<a><b>ab</b></a>x"), (1, "<a><b>ab</b>x</a>"), (2, "<a><b>abx</b></a>")]
)
def test_a_point_at_the_end_of_elements_is_written_inside_those_that_hold_it(held, written):
    segment = Segment("ab", [Span(0, 2, A), Span(0, 2, B), Span(2, 2, Tag("x", kind="text"), held)])
    assert render(segment) == written


@pytest.mark.parametrize(
    "segment",
    [
        Segment("Read step 3 first.", [Span(5, 11, B)]),
        Segment("Read step 3 first.", [Span(5, 9, B)]),
        Segment("Read step 3", [Span(5, 11, B)]),
        Segment("see 3", [Span(0, 5, A), Span(0, 3, B)]),
        Segment("see https://x.org", [Span(0, 17, LINK)]),
        Segment("Street 1 Berlin", [Span(8, 8, BREAK)]),
        Segment("Street 1 Berlin", [Span(9, 9, BREAK)]),
        Segment("Street 1 Berlin", [Span(7, 7, BREAK)]),
    ],
)
def test_putting_the_points_back_keeps_each_piece_on_its_side_of_span_edges(segment):
    assert round_trip(segment) == render(segment)
