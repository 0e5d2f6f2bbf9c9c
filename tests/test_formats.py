"""Documents read as segments and written back: plain text, HTML, XML, .srt, .vtt and .docx.

Every format: reading and rendering the segments unchanged gives the same document; a hand-made
"translation" is written into the structure as expected; bad input names the file and the line or part.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from xml.parsers import expat

import pytest

from nmt.documents.formats import FORMATS, format_of, read_document
from nmt.documents.formats.subtitles import WIDTH, wrap
from nmt.documents.segment import DocumentError, Segment, Span, Tag


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def upper(segments: list[Segment]) -> list[Segment]:
    """A "translation" that keeps every span where it is."""
    return [Segment(segment.text.upper(), segment.spans) for segment in segments]


def texts(document) -> list[str]:
    return [segment.text for segment in document.segments]


# ---------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    "path, given, fmt",
    [
        ("report.txt", None, "text"),
        ("corpus.en.gz", None, "text"),
        ("notes", None, "text"),
        ("page.HTML", None, "html"),
        ("page.htm", None, "html"),
        ("feed.xml", None, "xml"),
        ("page.xhtml", None, "xml"),
        ("film.srt", None, "srt"),
        ("film.vtt", None, "vtt"),
        ("report.docx", None, "docx"),
        ("report.docx", "text", "text"),
        ("page.txt", "html", "html"),
    ],
)
def test_the_format_follows_the_suffix_unless_one_is_given(path, given, fmt):
    assert format_of(path, given) == fmt


def test_an_unknown_format_and_a_missing_file_are_errors(tmp_path):
    with pytest.raises(DocumentError, match="`format` must be one of text, html"):
        format_of("a.txt", "pdf")
    with pytest.raises(DocumentError, match="missing.html does not exist"):
        read_document(tmp_path / "missing.html", "html")
    assert FORMATS == ("text", "html", "xml", "srt", "vtt", "docx")


# ------------------------------------------------------------------------------------------------- HTML

HTML = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Tom &amp; Jerry</title>
<style>p { color: red }</style><script>var s = "<p>not text</p>";</script></head>
<body>
<h1 class="title">Hello <em>world</em></h1>
<p>Read <a href="/docs?a=1&amp;b=2" class="link">the   manual</a> first.<br>
Then run <code>make test</code> again.
<ul><li>One<li>Two</ul>
<table><tr><td>Cell A<td>Cell B</tr></table>
<pre>keep   this</pre>
<div translate="no">Do not translate</div>
<p class="intro notranslate">Nor this</p>
<p>Brand: <span translate="no">ACME</span>.</p>
<!-- a comment -->
</body>
</html>
"""


def read_html(tmp_path, data: str | bytes = HTML):
    return read_document(write(tmp_path / "page.html", data), "html")


def test_html_round_trips_byte_for_byte(tmp_path):
    document = read_html(tmp_path)
    assert document.render(document.segments) == HTML.encode()


def test_html_blocks_are_segments_and_inline_tags_are_spans_with_their_attributes(tmp_path):
    document = read_html(tmp_path)
    assert texts(document) == [
        "Tom & Jerry",
        "Hello world",
        "Read the manual first. Then run  again.",
        "One",
        "Two",
        "Cell A",
        "Cell B",
        "Brand: .",
    ]
    hello, read = document.segments[1], document.segments[2]
    assert hello.spans == [Span(6, 11, Tag("<em>", "</em>"))]
    assert read.spans == [
        Span(5, 15, Tag('<a href="/docs?a=1&amp;b=2" class="link">', "</a>")),
        Span(22, 22, Tag("<br>", kind="line")),
        Span(32, 32, Tag("<code>make test</code>", kind="void")),
    ]


def test_script_style_code_pre_and_translate_no_are_not_translated(tmp_path):
    document = read_html(tmp_path)
    words = " ".join(texts(document))
    for kept in ("color", "not text", "make test", "keep", "Do not translate", "Nor this", "ACME"):
        assert kept not in words
    assert document.segments[-1].spans == [Span(7, 7, Tag('<span translate="no">ACME</span>', kind="void"))]


def test_a_translated_html_keeps_tags_attributes_and_escapes_text(tmp_path):
    document = read_html(tmp_path)
    translated = upper(document.segments)
    translated[0] = Segment("Tom & Jerry <3")
    translated[1] = Segment("Welt hallo", [Span(0, 4, Tag("<em>", "</em>"))])  # the span moved
    out = document.render(translated).decode()
    assert "<title>Tom &amp; Jerry &lt;3</title>" in out
    assert '<h1 class="title"><em>Welt</em> hallo</h1>' in out
    assert '<a href="/docs?a=1&amp;b=2" class="link">THE MANUAL</a> FIRST.<br> THEN RUN <code>make test</code>' in out
    assert "<ul><li>ONE<li>TWO</ul>" in out
    assert '<pre>keep   this</pre>\n<div translate="no">Do not translate</div>' in out
    assert '<p>BRAND: <span translate="no">ACME</span>.</p>' in out
    again = read_html(tmp_path, out)  # what was written reads back as the translation
    assert [segment.text for segment in again.segments] == [segment.text for segment in translated]


def test_html_entities_are_decoded_and_whitespace_at_the_edges_stays(tmp_path):
    document = read_html(tmp_path, "<p>\n  Caf&eacute; &lt;b&gt; &#x263A;&nbsp;ok  \n</p>\n")
    assert texts(document) == ["Café <b> ☺\xa0ok"]
    assert document.render([Segment("X & Y")]) == b"<p>\n  X &amp; Y  \n</p>\n"


def test_html_in_a_declared_8_bit_encoding_is_written_back_in_it(tmp_path):
    data = '<meta charset="iso-8859-1"><p>Grüße</p>'.encode("latin-1")
    document = read_html(tmp_path, data)
    assert texts(document) == ["Grüße"]
    assert document.render(document.segments) == data
    assert document.render([Segment("Ça va → ok")]) == '<meta charset="iso-8859-1"><p>Ça va &#8594; ok</p>'.encode(
        "latin-1"
    )


@pytest.mark.parametrize(
    "data, message",
    [
        ("<p>one\n<i>two\n<b>three</i></b></p>", "line 3: </i> closes <b> opened at line 3"),
        ("<div>one\n</span></div>", "line 2: </span> closes no open element"),
        ("<div>\n<section>one</div>", "line 2: </div> closes <section> opened at line 2"),
        ("<body>\n<div>never closed\n</body>", "line 3: </body> closes <div> opened at line 2"),
        ("<div>\n<b>bold", "line 2: <b> is never closed"),
    ],
)
def test_malformed_html_names_the_file_the_line_and_the_tags(tmp_path, data, message):
    with pytest.raises(DocumentError, match=f"file .*page.html, {message}"):
        read_html(tmp_path, data)


def test_html_that_is_not_utf8_names_the_line(tmp_path):
    with pytest.raises(DocumentError, match="page.html, line 2: invalid utf-8"):
        read_html(tmp_path, b"<p>ok</p>\n<p>caf\xe9</p>")


def test_html_optional_end_tags_are_closed_as_browsers_do(tmp_path):
    document = read_html(tmp_path, "<dl><dt>Term<dd>Definition</dl><select><option>A<option>B</select><p>Last")
    assert texts(document) == ["Term", "Definition", "A", "B", "Last"]


# -------------------------------------------------------------------------------------------------- XML

XML = """<?xml version="1.0" encoding="UTF-8"?>
<!-- catalogue -->
<doc xmlns="urn:example" xmlns:its="http://www.w3.org/2005/11/its" its:version="2.0">
  <title>Caf&#233; &amp; more</title>
  <section id="s1">
    <para>See <link href="a.html" type="x">this page</link> and <br/>that one.</para>
    <para its:translate="no">Keep me</para>
    <code>x &lt; y</code>
  </section>
  <?render fast?>
  <note><![CDATA[Raw <text>]]></note>
</doc>
"""


def read_xml(tmp_path, data: str | bytes = XML):
    return read_document(write(tmp_path / "doc.xml", data), "xml")


def test_xml_round_trips_byte_for_byte(tmp_path):
    document = read_xml(tmp_path)
    assert document.render(document.segments) == XML.encode()


def test_xml_elements_with_text_are_segments_and_their_children_spans(tmp_path):
    document = read_xml(tmp_path)
    assert texts(document) == ["Café & more", "See this page and that one.", "Raw <text>"]
    assert document.segments[1].spans == [
        Span(4, 13, Tag('<link href="a.html" type="x">', "</link>")),
        Span(18, 18, Tag("<br/>", kind="line")),
    ]


def test_a_translated_xml_is_well_formed_and_keeps_declaration_and_namespaces(tmp_path):
    document = read_xml(tmp_path)
    translated = [
        Segment("Kaffee & <mehr>"),
        Segment("Diese Seite, siehe", [Span(0, 11, Tag('<link href="a.html" type="x">', "</link>"))]),
    ]
    out = document.render([*translated, document.segments[2]]).decode()
    expat.ParserCreate().Parse(out, True)
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!-- catalogue -->\n<doc xmlns="urn:example"')
    assert "<title>Kaffee &amp; &lt;mehr&gt;</title>" in out
    assert '<para><link href="a.html" type="x">Diese Seite</link>, siehe</para>' in out
    assert '<para its:translate="no">Keep me</para>' in out and "<?render fast?>" in out


@pytest.mark.parametrize(
    "data, message",
    [
        ("<a>\n<b>text</a>", "line 2: </a> closes <b> opened at line 2"),
        ("<a>\n\n<b>&nope;</b></a>", "line 3: undefined entity"),
        ("<a>one</a>\n<a>two</a>", "line 2: junk after document element"),
    ],
)
def test_malformed_xml_names_the_file_and_the_line(tmp_path, data, message):
    with pytest.raises(DocumentError, match=f"file .*doc.xml, {message}"):
        read_xml(tmp_path, data)


def test_xml_whitespace_is_one_space_except_where_xml_space_preserves_it(tmp_path):
    document = read_xml(tmp_path, '<doc><p>One\n   two</p><p xml:space="preserve">Three\n   four</p></doc>')
    assert texts(document) == ["One two", "Three\n   four"]


def test_rendering_wants_one_translation_per_segment(tmp_path):
    document = read_xml(tmp_path)
    with pytest.raises(ValueError, match="one segment per segment read \\(3\\), but has 2"):
        document.render(document.segments[:2])


# -------------------------------------------------------------------------------------------- subtitles

SRT = """1
00:00:01,000 --> 00:00:03,000
<i>When I was young,</i> I went
to the

2
00:00:03,500 --> 00:00:05,000
market every day.

3
00:00:06,000 --> 00:00:07,000
Really?
"""
GERMAN = "Als ich jung war, ging ich jeden Tag auf den Markt."


def read_srt(tmp_path, data: str = SRT):
    pytest.importorskip("srt", reason="the documents extra is not installed")
    return read_document(write(tmp_path / "film.srt", data), "srt")


def cues(data: bytes) -> list[tuple[int, float, float, str]]:
    import srt

    return [
        (cue.index, cue.start.total_seconds(), cue.end.total_seconds(), cue.content) for cue in srt.parse(data.decode())
    ]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_srt_round_trips_byte_for_byte(tmp_path, newline):
    data = SRT.replace("\n", newline)
    document = read_srt(tmp_path, data)
    assert document.render(document.segments) == data.encode()


def test_cues_that_split_a_sentence_are_one_segment_with_a_break_point(tmp_path):
    document = read_srt(tmp_path)
    assert texts(document) == ["When I was young, I went to the market every day.", "Really?"]
    assert document.segments[0].spans == [Span(0, 17, Tag("<i>", "</i>")), Span(32, 32, Tag("", kind="break"))]


def test_a_translation_is_cut_at_its_break_back_into_the_cues_with_their_timings(tmp_path):
    document = read_srt(tmp_path)
    cut = GERMAN.index("jeden")
    translated = Segment(GERMAN, [Span(0, 17, Tag("<i>", "</i>")), Span(cut, cut, Tag("", kind="break"))])
    out = document.render([translated, Segment("Wirklich?")])
    assert cues(out) == [
        (1, 1.0, 3.0, "<i>Als ich jung war,</i> ging ich"),
        (2, 3.5, 5.0, "jeden Tag auf den Markt."),
        (3, 6.0, 7.0, "Wirklich?"),
    ]


@pytest.mark.parametrize("breaks", [[len(GERMAN)], [0], []], ids=["at-the-end", "at-the-start", "none"])
def test_no_cue_is_left_empty_when_its_source_was_not(tmp_path, breaks):
    document = read_srt(tmp_path)
    translated = Segment(GERMAN, [Span(at, at, Tag("", kind="break")) for at in breaks])
    first, second, _ = cues(document.render([translated, Segment("Wirklich?")]))
    assert first[3] and second[3]
    assert f"{first[3]} {second[3]}".replace("\n", " ") == GERMAN


def test_a_translation_without_spaces_is_cut_between_characters(tmp_path):
    document = read_srt(tmp_path)
    chinese = "我小时候每天都去市场。"
    out = document.render([Segment(chinese, [Span(4, 4, Tag("", kind="break"))]), Segment("真的吗？")])
    assert [cue[3] for cue in cues(out)] == ["我小时候", "每天都去市场。", "真的吗？"]


def test_a_long_translated_cue_is_wrapped_and_a_short_one_is_not(tmp_path):
    document = read_srt(tmp_path)
    long = "Dies ist eine sehr lange Übersetzung, die nicht auf eine einzige Zeile passt und umbrochen wird."
    out = cues(document.render([document.segments[0], Segment(long)]))
    lines = out[2][3].split("\n")
    assert len(lines) == 3 and all(0 < len(line) <= WIDTH for line in lines)
    assert " ".join(lines) == long
    assert out[0][3] == "<i>When I was young,</i> I went\nto the"  # unchanged cues keep their lines


def test_wrapping_never_makes_a_blank_line():
    assert wrap("a" * 50) == "a" * 50
    assert "\n\n" not in wrap("word " * 20 + "  two  spaces" * 5, 12)
    assert wrap("short line") == "short line"


def test_a_malformed_srt_names_the_file_and_line(tmp_path):
    with pytest.raises(DocumentError, match="film.srt, line 5: not a subtitle: '2\\\\n00:00:0x,000"):
        read_srt(tmp_path, "1\n00:00:01,000 --> 00:00:02,000\nHi.\n\n2\n00:00:0x,000 --> 00:00:03,000\nYo.\n")
    with pytest.raises(DocumentError, match="notes.srt, line 1: not a subtitle: 'Just some notes.'"):
        read_document(write(tmp_path / "notes.srt", "Just some notes.\n"), "srt")


VTT = """WEBVTT - Example

NOTE made by hand

intro
00:00:01.000 --> 00:00:02.500 align:start position:10%
<v Roger>Tom &amp; Jerry are
<i>here</i>.

00:03.000 --> 00:04.000
Hello.
"""


def read_vtt(tmp_path, data: str = VTT):
    pytest.importorskip("webvtt", reason="the documents extra is not installed")
    return read_document(write(tmp_path / "film.vtt", data), "vtt")


def test_vtt_round_trips_byte_for_byte(tmp_path):
    document = read_vtt(tmp_path)
    assert document.render(document.segments) == VTT.encode()


def test_vtt_markup_becomes_spans_entities_are_decoded_and_escaped(tmp_path):
    document = read_vtt(tmp_path)
    assert texts(document) == ["Tom & Jerry are here.", "Hello."]
    assert document.segments[0].spans == [Span(0, 0, Tag("<v Roger>", kind="void")), Span(16, 20, Tag("<i>", "</i>"))]
    out = document.render(
        [
            Segment("Tom & Jerry sind hier.", [document.segments[0].spans[0], Span(17, 21, Tag("<i>", "</i>"))]),
            Segment("Hallo."),
        ]
    )
    assert out.decode() == VTT.replace(
        "Tom &amp; Jerry are\n<i>here</i>.", "Tom &amp; Jerry sind <i>hier</i>."
    ).replace("Hello.", "Hallo.")


@pytest.mark.parametrize(
    "data, message",
    [
        ("NOT VTT\n\n00:01.000 --> 00:02.000\nHi.\n", "line 1: not WebVTT"),
        ("WEBVTT\n\n00:01.000 --> 00:02.000\nHi.\n\n00:61.000 --> 00:62.000\nBad.\n", "line 6: Invalid timestamp"),
    ],
)
def test_a_malformed_vtt_names_the_file_and_line(tmp_path, data, message):
    with pytest.raises(DocumentError, match=f"film.vtt, {message}"):
        read_vtt(tmp_path, data)


def test_subtitles_that_are_not_utf8_name_the_line(tmp_path):
    pytest.importorskip("srt", reason="the documents extra is not installed")
    with pytest.raises(DocumentError, match="film.srt, line 3: invalid utf-8"):
        read_document(write(tmp_path / "film.srt", b"1\n00:00:01,000 --> 00:00:02,000\nCaf\xe9\n"), "srt")


# ------------------------------------------------------------------------------------------------- docx


def make_docx(path: Path) -> Path:
    """A document with formatted runs, an empty paragraph, a table, a hyperlink and a header."""
    docx = pytest.importorskip("docx", reason="the documents extra is not installed")
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = docx.Document()
    paragraph = document.add_paragraph()
    paragraph.add_run("Hello ").underline = True
    paragraph.add_run("bold").bold = True
    paragraph.add_run(" and ")
    paragraph.add_run("italic").italic = True
    paragraph.add_run(".")
    document.add_paragraph("")
    document.add_table(rows=1, cols=2).cell(0, 1).text = "Cell text"
    linked = document.add_paragraph("Visit ")
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), linked.part.relate_to("https://example.com", RELATIONSHIP_TYPE.HYPERLINK, is_external=True))
    run, text = OxmlElement("w:r"), OxmlElement("w:t")
    text.text = "our site"
    run.append(text)
    link.append(run)
    linked._p.append(link)
    linked.add_run(" today.")
    document.sections[0].header.paragraphs[0].text = "Page header"
    document.save(path)
    return path


def paragraphs_xml(data: bytes) -> list[str]:
    """The XML of every paragraph of the body (tables included) and the header."""
    import docx
    from docx.oxml.ns import qn

    document = docx.Document(io.BytesIO(data))
    body = [paragraph.xml for paragraph in document.element.body.iter(qn("w:p"))]
    return body + [paragraph._p.xml for paragraph in document.sections[0].header.paragraphs]


def runs(data: bytes, index: int) -> list[tuple[str, bool | None, bool | None, bool | None]]:
    """(text, bold, italic, underline) of each run of a body paragraph."""
    import docx

    paragraph = docx.Document(io.BytesIO(data)).paragraphs[index]
    return [(run.text, run.bold, run.italic, run.underline) for run in paragraph.runs]


def test_docx_round_trips_paragraphs_runs_and_formatting(tmp_path):
    path = make_docx(tmp_path / "report.docx")
    document = read_document(path, format_of(str(path)))
    assert texts(document) == ["Hello bold and italic.", "Cell text", "Visit  today.", "Page header"]
    assert paragraphs_xml(document.render(document.segments)) == paragraphs_xml(path.read_bytes())


def test_docx_runs_follow_the_translations_spans(tmp_path):
    path = make_docx(tmp_path / "report.docx")
    document = read_document(path, "docx")
    assert [span.tag.open for span in document.segments[0].spans] == ["r0", "r1", "r2", "r3", "r4"]
    moved = Segment("KURSIV und FETT, fett.", [Span(0, 6, Tag("r3")), Span(11, 15, Tag("r1")), Span(17, 21, Tag("r1"))])
    out = document.render([moved, *upper(document.segments[1:])])
    assert runs(out, 0) == [  # text under no span is formatted as the first run, "Hello " (underlined)
        ("KURSIV", None, True, None),
        (" und ", None, None, True),
        ("FETT", True, None, None),
        (", ", None, None, True),
        ("fett", True, None, None),
        (".", None, None, True),
    ]
    import docx

    written = docx.Document(io.BytesIO(out))
    assert written.tables[0].cell(0, 1).text == "CELL TEXT" and written.tables[0].cell(0, 0).text == ""
    assert written.sections[0].header.paragraphs[0].text == "PAGE HEADER"


def test_a_docx_hyperlink_stays_untouched_at_its_point(tmp_path):
    path = make_docx(tmp_path / "report.docx")
    document = read_document(path, "docx")
    link = document.segments[2]
    assert link.spans[1] == Span(6, 6, Tag("x1", kind="void"))
    translated = Segment(
        "Besuchen Sie heute.", [Span(0, 13, Tag("r0")), Span(13, 13, link.spans[1].tag), Span(13, 19, Tag("r2"))]
    )
    out = document.render([*document.segments[:2], translated, document.segments[3]])
    import docx

    paragraph = docx.Document(io.BytesIO(out)).paragraphs[2]
    content = [(type(item).__name__, item.text) for item in paragraph.iter_inner_content()]
    assert content == [("Run", "Besuchen Sie "), ("Hyperlink", "our site"), ("Run", "heute.")]
    assert paragraph.hyperlinks[0].address == "https://example.com"
    lost = document.render(
        [*document.segments[:2], Segment("Besuchen Sie heute.", [Span(0, 19, Tag("r0"))]), document.segments[3]]
    )
    paragraph = docx.Document(io.BytesIO(lost)).paragraphs[2]
    content = [(type(item).__name__, item.text) for item in paragraph.iter_inner_content()]
    assert content == [("Run", "Besuchen Sie heute."), ("Hyperlink", "our site")]  # a point the translation lost


def test_a_file_that_is_not_a_docx_is_named(tmp_path):
    pytest.importorskip("docx", reason="the documents extra is not installed")
    with pytest.raises(DocumentError, match="fake.docx: not a .docx file"):
        read_document(write(tmp_path / "fake.docx", "just text"), "docx")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("notes.txt", "no Word document here")
    with pytest.raises(DocumentError, match="other.docx: not a .docx file"):
        read_document(write(tmp_path / "other.docx", archive.getvalue()), "docx")
