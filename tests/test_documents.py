"""Documents through the model: sentences in a line, over-long sentences, untranslatable pieces, markup, formats.

Uses the session's tiny model (built-in English->German corpus). What is checked is what a document adds to
line translation: each unit is translated as it would be alone (in the same batches), the pieces come back,
the markup is placed and well-formed, and every format keeps its structure; quality is the model's own.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from nmt.cli import translate
from nmt.config import ConfigError, DecodeConfig, TranslateConfig
from nmt.data.builtin import builtin_corpus
from nmt.decode.translator import Translator
from nmt.documents.pipeline import DocumentOptions, DocumentTranslator, word_links
from nmt.documents.segment import DocumentError, Segment, Span, Tag, render

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def translator(model_path) -> Translator:
    return Translator.from_checkpoint(model_path, DecodeConfig(beam_size=3), device="cpu")


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """Built-in test sentences, capitalised so that the rule splitter sees sentence starts."""
    return [s[0].upper() + s[1:] for s in builtin_corpus("test", 12, seed=5).src]


def _documents(translator: Translator, **options) -> DocumentTranslator:
    return DocumentTranslator(translator, DocumentOptions(**options), ("en", "de"))


@pytest.mark.parametrize(("target", "separator"), [("de", " "), ("zh", "")])
def test_a_line_of_sentences_gives_each_sentences_own_translation_joined(translator, sentences, target, separator):
    lines = [" ".join(sentences[:3]), sentences[3], " ".join(sentences[4:6])]
    documents = DocumentTranslator(translator, DocumentOptions(), ("en", target))
    alone = [t.best for t in translator.translate(sentences[:6])]
    got = [s.text for s in documents.translate([Segment(line) for line in lines])]
    assert got == [separator.join(alone[:3]), alone[3], separator.join(alone[4:6])]


def test_without_splitting_a_line_is_one_sentence(translator, sentences):
    line = " ".join(sentences[:3])
    got = _documents(translator, split=False).translate([Segment(line)])
    assert got[0].text == translator.translate([line])[0].best


def test_an_over_long_sentence_is_translated_in_chunks_each_within_the_limit(translator, sentences, capsys):
    long = ", ".join(s.rstrip(".") for s in sentences[:4]) + "."
    limit = max(len(ids) for ids in translator.tokenizer.encode_src(sentences[:4])) + 2
    seen: list[str] = []
    documents = _documents(translator, max_len=limit)
    real = documents.translator.translate
    documents.translator.translate = lambda lines, **kw: seen.extend(lines) or real(lines, **kw)
    out = documents.translate([Segment(long), Segment(sentences[5])])
    assert documents.chunked == 1 and documents.chunks == len(seen) - 1 >= 2
    assert all(len(ids) <= limit for ids in translator.tokenizer.encode_src(seen))
    assert "".join(seen[:-1]).replace(" ", "") == long.replace(" ", "")  # every character, nothing truncated
    assert out[0].text == " ".join(t.best for t in translator.translate(seen[:-1]))
    documents.warn_chunked()
    assert f"1 sentence(s) longer than the training data's {limit} subword tokens" in capsys.readouterr().err


@pytest.mark.parametrize(
    "piece", ["https://example.org/a-12?x=1", "ann.lee@example.org", "{user_name}", "%(count)d", "`x = 1`", "1,250"]
)
def test_an_untranslatable_piece_comes_back_verbatim_once(translator, sentences, piece):
    words = sentences[0].split()
    line = " ".join([*words[:3], piece, *words[3:]])
    out = _documents(translator).translate([Segment(line)])[0]
    written = render(out)
    assert written.count(piece) == 1
    assert written.replace(piece, " ").split() == translator.translate([" ".join(words)])[0].best.split()


def test_protection_off_gives_the_piece_to_the_model(translator, sentences):
    line = f"{sentences[0]} {{user_name}}"
    out = _documents(translator, protect=()).translate([Segment(line)])[0]
    assert out.text == translator.translate([line])[0].best and not out.spans


def test_markup_is_placed_without_changing_the_translation(translator, sentences):
    words = sentences[1].split()
    bold = Tag("<b>", "</b>")
    link = Tag('<a href="/x?a=1&amp;b=2" class="k">', "</a>")
    text = " ".join(words)
    start_b = len(words[0]) + 1
    end_b = start_b + len(words[1])
    start_a = len(" ".join(words[:3])) + 1
    segment = Segment(text, [Span(start_b, end_b, bold), Span(start_a, len(text) - 1, link)])
    out = _documents(translator).translate([segment])[0]
    assert out.text == translator.translate([text])[0].best  # tags never reach the model
    assert [span.tag for span in out.spans if span.tag.kind == "element"] == [bold, link]
    written = render(out)
    assert '<a href="/x?a=1&amp;b=2" class="k">' in written
    _check_well_formed(written)


def test_word_links_join_the_pieces_of_a_word_but_not_chinese_characters():
    german = "Die Kinder kaufen."
    links = [(0, 3, 0, 3), (3, 7, 4, 8), (7, 10, 9, 12), (10, 14, 13, 16), (14, 17, 17, 20), (17, 18, 20, 21)]
    assert word_links(german, links) == [(0, 3, 0, 3), (3, 10, 4, 8), (10, 17, 13, 16), (17, 18, 20, 21)]
    chinese = "孩子们买苹果。"
    assert word_links(chinese, [(0, 2, 0, 1), (2, 3, 1, 2), (3, 4, 2, 3)]) == [(0, 2, 0, 1), (2, 3, 1, 2), (3, 4, 2, 3)]


def _check_well_formed(html: str) -> None:
    """Every opened element is closed in order (void elements aside)."""
    stack: list[str] = []

    class Checker(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in {"br", "img", "meta", "hr", "input", "wbr"}:
                stack.append(tag)

        def handle_endtag(self, tag):
            assert stack and stack.pop() == tag, f"</{tag}> out of order in {html!r}"

    Checker().feed(html)
    assert not stack, f"unclosed {stack} in {html!r}"


def _config(model_path: Path, tmp_path: Path, name: str, **kw) -> TranslateConfig:
    cfg = TranslateConfig(ckpt=str(model_path), input=str(tmp_path / name), output=str(tmp_path / f"out-{name}"))
    cfg.device, cfg.num_threads, cfg.decode.beam_size = "cpu", 1, 3
    for key, value in kw.items():
        setattr(cfg, key, value)
    return cfg


def test_nmt_translate_keeps_every_line_of_a_text_with_paragraphs(model_path, tmp_path, translator, sentences):
    lines = [" ".join(sentences[:3]), "", sentences[3], "   ", " ".join(sentences[4:8])]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    translate.run(_config(model_path, tmp_path, "in.txt"))
    out = (tmp_path / "out-in.txt").read_text(encoding="utf-8").split("\n")
    alone = [t.best for t in translator.translate(sentences[:8])]
    assert out == [" ".join(alone[:3]), "", alone[3], "", " ".join(alone[4:8]), ""]


def test_nmt_translate_writes_html_back_well_formed_with_attributes_and_scripts_kept(model_path, tmp_path, sentences):
    words = sentences[0].split()
    page = (
        '<!DOCTYPE html>\n<html><head><title>A page</title><script>var s = "<p>x</p>";</script></head><body>\n'
        f'<p class="lead">{" ".join(words[:2])} <b>{words[2]}</b> {" ".join(words[3:])}</p>\n'
        f'<ul><li>{sentences[1]}</li><li translate="no">{sentences[2]}</li></ul>\n'
        f'<p>{sentences[3]}<br>See <a href="https://example.org/?q=1&amp;r=2">{sentences[4]}</a></p>\n'
        "<pre>code stays</pre></body></html>\n"
    )
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    translate.run(_config(model_path, tmp_path, "page.html"))
    out = (tmp_path / "out-page.html").read_text(encoding="utf-8")
    _check_well_formed(out)
    for kept in [
        'var s = "<p>x</p>";',
        f'<li translate="no">{sentences[2]}</li>',
        "<pre>code stays</pre>",
        '<a href="https://example.org/?q=1&amp;r=2">',
        '<p class="lead">',
        "<b>",
        "<br>",
        "<!DOCTYPE html>",
    ]:
        assert kept in out
    assert sentences[1] not in out and sentences[0] not in out  # translated
    assert len(re.findall("<p[ >]", out)) == 3 and out.count("<li") == 2  # two paragraphs, and the script's


def test_nmt_translate_keeps_subtitle_cues_and_timings(model_path, tmp_path, sentences):
    pytest.importorskip("srt", reason="the documents extra (srt) is not installed")
    first, second = sentences[0].rstrip("."), sentences[1]
    srt = (
        f"1\n00:00:01,000 --> 00:00:02,500\n{first}\n\n"  # no sentence end: merged with the next cue
        f"2\n00:00:02,600 --> 00:00:04,000\nand more. {second}\n\n"
        f"3\n00:00:05,000 --> 00:00:06,000\n{sentences[2]}\n"
    )
    (tmp_path / "film.srt").write_text(srt, encoding="utf-8")
    translate.run(_config(model_path, tmp_path, "film.srt"))
    out = (tmp_path / "out-film.srt").read_text(encoding="utf-8")
    blocks = [block.splitlines() for block in out.strip().split("\n\n")]
    assert [b[:2] for b in blocks] == [
        ["1", "00:00:01,000 --> 00:00:02,500"],
        ["2", "00:00:02,600 --> 00:00:04,000"],
        ["3", "00:00:05,000 --> 00:00:06,000"],
    ]
    assert all(len(b) > 2 and b[2].strip() for b in blocks)  # no cue left empty


def test_nmt_translate_keeps_bold_runs_of_a_word_file(model_path, tmp_path, sentences):
    docx = pytest.importorskip("docx", reason="the documents extra (python-docx) is not installed")
    words = sentences[0].split()
    document = docx.Document()
    paragraph = document.add_paragraph(" ".join(words[:2]) + " ")
    paragraph.add_run(words[2]).bold = True
    paragraph.add_run(" " + " ".join(words[3:]))
    document.add_paragraph(sentences[1])
    document.save(tmp_path / "report.docx")
    translate.run(_config(model_path, tmp_path, "report.docx"))
    out = docx.Document(tmp_path / "out-report.docx")
    texts = [p.text for p in out.paragraphs]
    assert len(texts) == 2 and texts[0] != " ".join(words) and texts[1] != sentences[1]
    assert any(run.bold and run.text.strip() for run in out.paragraphs[0].runs)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("bad.html", "<p>one <b><i>two</b> three</p>\n", r"bad.html, line 1: </b> closes <i>"),
        ("bad.docx", "not a zip file", r"bad.docx: not a .docx file"),
        ("bad.xml", "<a>\n<b>x</a>\n", r"bad.xml, line 2"),
    ],
)
def test_a_bad_document_is_named_with_its_line_and_leaves_no_output(model_path, tmp_path, name, content, problem):
    (tmp_path / name).write_text(content, encoding="utf-8")
    if name.endswith(".docx"):
        pytest.importorskip("docx", reason="the documents extra (python-docx) is not installed")
    with pytest.raises(DocumentError, match=problem):
        translate.run(_config(model_path, tmp_path, name))
    assert not (tmp_path / f"out-{name}").exists()


def test_format_overrides_the_suffix_and_line_modes_refuse_documents(model_path, tmp_path, sentences):
    (tmp_path / "page.txt").write_text(f"<p>{sentences[0]} <b>x</b></p>\n", encoding="utf-8")
    (tmp_path / "page.html").write_text("<p>x</p>\n", encoding="utf-8")
    translate.run(_config(model_path, tmp_path, "page.txt", format="html"))
    assert "<b>" in (tmp_path / "out-page.txt").read_text(encoding="utf-8")
    translate.run(_config(model_path, tmp_path, "page.txt"))  # as text: the tags are words to the model
    assert "<b>" not in (tmp_path / "out-page.txt").read_text(encoding="utf-8")
    from nmt.config import check

    with pytest.raises(ConfigError, match="alignments translate"):
        check(_config(model_path, tmp_path, "page.txt", format="html", alignments=True))
    with pytest.raises(ConfigError, match=r"alignments translate\(s\) lines of text, but .*page.html is html"):
        translate.run(_config(model_path, tmp_path, "page.html", alignments=True))
    with pytest.raises(ConfigError, match="need `backend=torch`"):
        check(_config(model_path, tmp_path, "page.txt", format="html", backend="ctranslate2"))
    with pytest.raises(ConfigError, match="page.html is html: .* use backend=torch"):
        translate.run(_config(model_path, tmp_path, "page.html", backend="ctranslate2"))


def test_piece_spans_count_characters_not_utf8_bytes(translator):
    line = "Grüße aus Köln, schöne Übung!"
    _, spans = translator.tokenizer.encode_src_spans([line])[0]
    assert spans[-1][1] == len(line) and "".join(line[a:b] for a, b in spans) == line
    text, target_spans = translator.tokenizer.decode_tgt_spans(translator.tokenizer.encode_tgt([line])[0])
    assert target_spans[-1][1] == len(text) and "".join(text[a:b] for a, b in target_spans) == text
