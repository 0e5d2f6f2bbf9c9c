"""HTML and XML read into segments: line breaks, elements without text, and markup that cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from nmt.documents.formats import read_document
from nmt.documents.formats.html_tree import html_skeleton
from nmt.documents.segment import DocumentError, Segment, Span, Tag
from nmt.serve.errors import RequestError
from nmt.serve.inputs import html_texts


def segments(html: str) -> list[Segment]:
    return html_skeleton(html, "text 1").segments


def read_xml(tmp_path: Path, text: str):
    path = tmp_path / "doc.xml"
    path.write_text(text, encoding="utf-8")
    return read_document(path, "xml")


@pytest.mark.parametrize(
    ("html", "text", "at"),
    [
        ("<p>Street 1<br>Berlin</p>", "Street 1 Berlin", 8),  # no whitespace: a space after it
        ("<p>Street 1<br> Berlin</p>", "Street 1 Berlin", 8),
        ("<p>Street 1 <br>Berlin</p>", "Street 1 Berlin", 9),
        ("<p>Street 1<br><b>Berlin</b></p>", "Street 1 Berlin", 8),
        ("<p>Street 1<span><br></span>Berlin</p>", "Street 1 Berlin", 8),  # as editors write it: kept whole
    ],
)
def test_a_line_break_is_a_line_point_that_keeps_the_words_apart(html, text, at):
    [segment] = segments(html)
    assert segment.text == text
    source = "<span><br></span>" if "<span>" in html else "<br>"
    assert [span for span in segment.spans if span.tag.kind != "element"] == [Span(at, at, Tag(source, kind="line"))]
    skeleton = html_skeleton(html, "text 1")
    assert skeleton.render(skeleton.segments) == html.encode()  # read as written


def test_an_xml_line_break_is_spaced_unless_whitespace_is_preserved(tmp_path):
    document = read_xml(tmp_path, '<doc><p>one<br/>two</p><p xml:space="preserve">three<br/>four</p></doc>')
    assert [segment.text for segment in document.segments] == ["one two", "threefour"]
    assert [segment.spans for segment in document.segments] == [
        [Span(3, 3, Tag("<br/>", kind="line"))],
        [Span(5, 5, Tag("<br/>", kind="line"))],
    ]


def test_an_element_holding_no_text_is_one_point_with_its_content():
    [middle] = segments('<p>Back <a id="x"></a><img src="i.png">to <a href="/"><img src="up.png"></a>top</p>')
    assert middle == Segment(
        "Back to top",
        [
            Span(5, 5, Tag('<a id="x"></a>', kind="void")),
            Span(5, 5, Tag('<img src="i.png">', kind="void")),
            Span(8, 8, Tag('<a href="/"><img src="up.png"></a>', kind="void")),
        ],
    )
    [linked] = segments('<p>Back <a id="x">here</a><img src="i.png"> to top</p>')  # with text: an element
    assert linked.spans[0] == Span(5, 9, Tag('<a id="x">', "</a>"))


def test_an_empty_element_before_a_point_keeps_it_outside_after_translation():
    skeleton = html_skeleton('<p><a href="#top"></a><img src="i.png"> Back to top</p>', "text 1")
    assert skeleton.segments == [Segment("Back to top")]
    rendered = skeleton.render([Segment("Nach oben")]).decode()
    assert rendered == '<p><a href="#top"></a><img src="i.png"> Nach oben</p>'


def test_deep_nesting_is_a_document_error_naming_the_text_and_shallow_nesting_is_read(tmp_path):
    assert segments("<div>" * 50 + "x" + "</div>" * 50) == [Segment("x")]
    with pytest.raises(DocumentError, match="text 1: elements are nested too deeply"):
        segments("<div>" * 600 + "x" + "</div>" * 600)
    with pytest.raises(DocumentError, match="doc.xml: elements are nested too deeply"):
        read_xml(tmp_path, "<d>" * 1200 + "x" + "</d>" * 1200)
    with pytest.raises(RequestError, match="nested too deeply") as caught:
        html_texts(["<div>" * 600 + "x" + "</div>" * 600], "q")
    assert caught.value.status == 400


@pytest.mark.parametrize(("html", "line"), [("<p>a <![foo[ x ]]> b</p>", 1), ("<p>a</p>\n\n<p><![x[ y ]]></p>", 3)])
def test_markup_pythons_parser_rejects_is_a_document_error_naming_the_line(html, line):
    with pytest.raises(DocumentError, match=f"text 1, line {line}: markup that cannot be read"):
        segments(html)
