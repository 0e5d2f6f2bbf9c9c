"""The document pipeline's units and joins, without a model: each unit is "translated" by a pure function that
upper-cases its words (and, to test placement, may reverse them), linking each word to its source word.

Covers line breaks (`<br>`, tabs and line breaks in a .docx run) as hard sentence boundaries kept between the
translations, protected pieces at the end of an element, and sentence splitting that sees protected numbers.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from nmt.documents.formats import read_document
from nmt.documents.formats.html_tree import html_skeleton
from nmt.documents.pipeline import DocumentOptions, DocumentTranslator
from nmt.documents.segment import CharLink, Segment, Span, Tag, render

Translate = Callable[[str], tuple[str, list[CharLink]]]
B = Tag("<b>", "</b>")


def upper(text: str) -> tuple[str, list[CharLink]]:
    """`text` upper-cased, each word linked to itself."""
    return text.upper(), [(m.start(), m.end(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def reversed_words(text: str) -> tuple[str, list[CharLink]]:
    """The words of `text` upper-cased in reverse order, each linked to its source word."""
    words = list(re.finditer(r"\S+", text))[::-1]
    target, links = "", []
    for match in words:
        target += " " if target else ""
        links.append((len(target), len(target) + len(match.group()), match.start(), match.end()))
        target += match.group().upper()
    return target, links


def documents(lang: str = "en", **options) -> DocumentTranslator:
    """A `DocumentTranslator` whose model is never called (the tests translate its plan themselves)."""
    translator = SimpleNamespace(engine=SimpleNamespace(max_src_len=512), tokenizer=None, decode=None, stats=None)
    return DocumentTranslator(translator, DocumentOptions(**options), (lang, "en"))


def translate(segments: list[Segment], unit: Translate = upper, lang: str = "en", **options) -> list[Segment]:
    """The segments through `plan` and `assemble`, each unit translated by `unit`."""
    pipeline = documents(lang, **options)
    plan = pipeline.plan(segments)
    return pipeline.assemble(plan, [unit(text) for text in plan.texts])


def units(segment: Segment, lang: str = "en", **options) -> list[str]:
    """The texts the model would see for `segment`."""
    return documents(lang, **options).plan([segment]).texts


def html(fragment: str, unit: Translate = upper, **options) -> str:
    """An HTML fragment translated and written back."""
    skeleton = html_skeleton(fragment, "text")
    return skeleton.render(translate(skeleton.segments, unit, **options)).decode()


# ------------------------------------------------------------------------------------------- line breaks


@pytest.mark.parametrize(
    ("fragment", "joined", "lines"),
    [
        ("<p>Dr.<br>Smith</p>", ["Dr. Smith"], ["Dr.", "Smith"]),  # an abbreviation: one sentence without it
        ("<p>Street 1<br>Berlin</p>", ["Street 1 Berlin"], ["Street 1", "Berlin"]),
        ("<p>Hello <b>you<br>there</b> now</p>", ["Hello you there now"], ["Hello you", "there now"]),
    ],
)
def test_a_line_break_ends_a_sentence_whatever_the_rules_say(fragment, joined, lines):
    without = html_skeleton(fragment.replace("<br>", " "), "text").segments[0]
    assert units(without, protect=()) == joined
    assert units(html_skeleton(fragment, "text").segments[0], protect=()) == lines


@pytest.mark.parametrize("split", [True, False])
def test_a_line_break_stays_between_the_translations_of_its_lines(split):
    assert html("<p>Street 1<br>Berlin</p>", split=split) == "<p>STREET 1<br> BERLIN</p>"
    assert html("<p>Street 1<br>Berlin</p>", protect=(), split=split) == "<p>STREET 1<br> BERLIN</p>"


def test_a_line_break_goes_where_its_lines_meet_however_the_words_are_reordered():
    fragment = "<p>Go to the station<br>Turn left</p>"
    assert html(fragment, reversed_words) == "<p>STATION THE TO GO<br> LEFT TURN</p>"
    assert html(fragment.replace("<br>", "<img>"), reversed_words) != "<p>STATION THE TO GO<img> LEFT TURN</p>"


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>Call me https://x.org <br> now</p>", "<p>ME CALL https://x.org <br>NOW</p>"),
        ("<p>Call me <br> https://x.org now</p>", "<p>ME CALL <br>https://x.org NOW</p>"),
        ("<p>Call me <a>3 </a> <br> now</p>", "<p>ME CALL <a>3</a> <br>NOW</p>"),
        ("<p>Call me <br> <a>3 </a> now</p>", "<p>ME CALL <br><a>3</a> NOW</p>"),
    ],
)
def test_pieces_beside_a_line_break_stay_on_their_side_of_it(fragment, expected):
    assert html(fragment, reversed_words) == expected


def test_tabs_and_line_breaks_in_a_segment_come_back_between_the_translations():
    text = "Name:\tAnna Lee\nStreet 1\n\nBerlin. Germany"
    segment = Segment(text, [Span(0, len(text), Tag("r1"))])
    assert units(segment, protect=()) == ["Name:", "Anna Lee", "Street 1", "Berlin.", "Germany"]
    [out] = translate([segment], protect=())
    assert out == Segment("NAME:\tANNA LEE\nSTREET 1\n\nBERLIN. GERMANY", [Span(0, len(text), Tag("r1"))])
    [plain] = translate([Segment(text)])  # the number protected
    assert render(plain) == "NAME:\tANNA LEE\nSTREET 1\n\nBERLIN. GERMANY"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Total: 5\nNext line", "<b>TOTAL: 5\nLINE NEXT</b>"),
        ("Total:\n5 next line", "<b>TOTAL:\n5 LINE NEXT</b>"),
        ("Total: 5 \t next line", "<b>TOTAL: 5 \t LINE NEXT</b>"),
    ],
)
def test_a_protected_piece_stays_on_its_side_of_a_line_break(text, expected):
    [out] = translate([Segment(text, [Span(0, len(text), B)])], reversed_words)
    assert render(out) == expected


# ---------------------------------------------------------------------------- pieces at an element's end


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>Read <strong>step 3</strong> first.</p>", "<p>READ <strong>STEP 3</strong> FIRST.</p>"),
        ("<p>Read <strong>step</strong> 3 first.</p>", "<p>READ <strong>STEP</strong> 3 FIRST.</p>"),
        ('<p><a href="u">see https://x.org</a> now</p>', '<p><a href="u">SEE https://x.org</a> NOW</p>'),
        ('<p><a href="u">see</a> https://x.org now</p>', '<p><a href="u">SEE</a> https://x.org NOW</p>'),
        ('<p>Go <a href="u"><b>there</b> 3</a> now</p>', '<p>GO <a href="u"><b>THERE</b> 3</a> NOW</p>'),
    ],
)
def test_a_protected_piece_stays_on_its_side_of_an_element_end(fragment, expected):
    assert html(fragment) == expected


def test_a_protected_piece_ending_an_element_stays_inside_it_when_words_move():
    out = html("<p>Read <strong>step 3</strong> first.</p>", reversed_words)
    assert out == "<p>FIRST. <strong>STEP 3</strong> READ</p>"


# --------------------------------------------------------------------------------- sentences and numbers


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Wir treffen uns am 1. Mai in Berlin.", 1),  # an ordinal: "Mai" does not start a sentence
        ("Wir treffen uns am 1. Der Zug fährt um 9 ab.", 2),  # "Der" does
        ("Es kostet 5 Euro. Das ist viel.", 2),
    ],
)
def test_sentences_are_found_with_the_protected_numbers_still_in_the_text(text, sentences):
    assert len(units(Segment(text), "de", protect=())) == sentences
    assert len(units(Segment(text), "de")) == sentences


def test_a_protected_piece_is_never_cut_by_a_sentence_end_inside_it():
    assert units(Segment("Run `make. Then` now"), protect=()) == ["Run `make.", "Then` now"]
    assert units(Segment("Run `make. Then` now")) == ["Run now"]


# ------------------------------------------------------------------------------------------------ .docx


def make_docx(path: Path) -> Path:
    """A .docx whose paragraph holds a bold run ending in a number, a plain run, and a run with a tab and a line
    break."""
    docx = pytest.importorskip("docx", reason="the documents extra is not installed")
    document = docx.Document()
    paragraph = document.add_paragraph()
    paragraph.add_run("Read step 3").bold = True
    paragraph.add_run(" first.")
    lines = document.add_paragraph().add_run("Name:\tAnna")
    lines.add_break()
    lines.add_text("Street one")
    document.save(path)
    return path


def test_docx_tabs_line_breaks_and_pieces_keep_their_runs(tmp_path):
    import docx

    document = read_document(make_docx(tmp_path / "in.docx"), "docx")
    written = docx.Document(io.BytesIO(document.render(translate(document.segments))))
    assert written.paragraphs[0].text == "READ STEP 3 FIRST."
    assert (written.paragraphs[0].runs[0].text, written.paragraphs[0].runs[0].bold) == ("READ STEP 3", True)
    assert written.paragraphs[1].text == "NAME:\tANNA\nSTREET ONE"
