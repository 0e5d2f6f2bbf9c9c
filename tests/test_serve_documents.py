"""The server translates request lines as `nmt-translate` does (the document pipeline): several sentences in a line,
over-long sentences in chunks, untranslatable pieces verbatim, and HTML (LibreTranslate's `format=html`), each equal
to the offline `DocumentTranslator` with the same settings while other requests share the batches. Uses the
session's tiny model.
"""

from __future__ import annotations

import html
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from html.parser import HTMLParser

import pytest

pytest.importorskip("starlette", reason="nmt-serve needs the `serve` extra: pip install 'nmt-toolkit[serve]'")
pytest.importorskip("httpx", reason="the API tests call the app with httpx (the `dev` extra)")

from serve_helpers import DECODE, Server, assert_error  # noqa: E402

from nmt.config import ConfigError, ServeConfig, check  # noqa: E402
from nmt.data.builtin import builtin_corpus  # noqa: E402
from nmt.decode.translator import Translator  # noqa: E402
from nmt.documents.formats.html_tree import html_skeleton  # noqa: E402
from nmt.documents.pipeline import DocumentOptions, DocumentTranslator  # noqa: E402
from nmt.documents.segment import Segment, render  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """Built-in test sentences, capitalised so that the rule splitter sees sentence starts."""
    return [s[0].upper() + s[1:] for s in builtin_corpus("test", 12, seed=5).src]


@pytest.fixture(scope="module")
def translator(model_path) -> Translator:
    return Translator.from_checkpoint(model_path, DECODE, device="cpu")


@pytest.fixture(scope="module")
def limit(translator, sentences) -> int:
    """A `max_len` that each test sentence fits and four of them in one do not."""
    return max(len(ids) for ids in translator.tokenizer.encode_src(sentences)) + 2


@pytest.fixture(scope="module")
def server(model_path, limit):
    server = Server(model_path, max_len=limit, max_chars=2000, max_lines=12)
    yield server
    server.close()


@pytest.fixture(scope="module")
def documents(translator, limit) -> DocumentTranslator:
    """The offline pipeline with the server's settings."""
    return DocumentTranslator(translator, DocumentOptions(max_len=limit), translator.langs)


@pytest.fixture(scope="module")
def offline(documents):
    """What `nmt-translate` (split=sentences) writes for each line."""
    return lambda lines: [render(s).replace("\n", " ") for s in documents.translate([Segment(x) for x in lines])]


class _Counted:
    """A continuous search that records how many sentences run at each of its steps."""

    def __init__(self, search, sizes: list[int]) -> None:
        self.search, self.sizes = search, sizes
        self.add = search.add

    @property
    def sentences(self) -> int:
        return self.search.sentences

    @property
    def width(self) -> int:
        return self.search.width

    def step(self):
        self.sizes.append(self.search.sentences)
        return self.search.step()


@contextmanager
def _recorded(server: Server):
    """The batch sizes of the plain search (sentences per batch, or per step of the continuous search) and of the
    attending search while inside."""
    batcher, sizes = server.state.service.batcher, {"plain": [], "attending": []}
    plain, attending, continuous = batcher.translate, batcher.translate_attending, batcher.continuous
    assert continuous is not None  # the server's default
    batcher.translate = lambda srcs, cfg: sizes["plain"].append(len(srcs)) or plain(srcs, cfg)
    batcher.translate_attending = lambda srcs, cfg: sizes["attending"].append(len(srcs)) or attending(srcs, cfg)
    batcher.continuous = lambda cfg: _Counted(continuous(cfg), sizes["plain"])
    try:
        yield sizes
    finally:
        batcher.translate, batcher.translate_attending, batcher.continuous = plain, attending, continuous


def _together(server: Server, calls: list[tuple[str, str, dict]], queued: int) -> list:
    """The requests, sent at once while the worker is held until `queued` sentences wait: they share batches."""
    release, batcher = server.hold(), server.state.service.batcher

    def release_when_queued():
        until = time.monotonic() + 10
        while batcher.queued_sentences < queued and time.monotonic() < until:
            time.sleep(0.005)
        release.set()

    waiter = threading.Thread(target=release_when_queued)
    waiter.start()
    try:
        return server.many(calls)
    finally:
        release.set()
        waiter.join(15)


def _lt(q, **params) -> tuple[str, str, dict]:
    return "POST", "/translate", {"json": {"q": q, "source": "en", "target": "de", **params}}


def _native(**body) -> tuple[str, str, dict]:
    return "POST", "/api/translate", {"json": body}


def test_a_line_of_sentences_equals_nmt_translate_while_other_requests_share_its_batches(
    server, offline, translator, sentences
):
    lines = [" ".join(sentences[:3]), sentences[3], " ".join(sentences[4:6])]
    others = [" ".join(sentences[6:8]), sentences[8], f"{sentences[9]} {sentences[10]}\n{sentences[11]}"]
    calls = [_lt("\n".join(lines)), _native(texts=others[:2]), _lt(others[2])]
    with _recorded(server) as sizes:
        answers = _together(server, calls, queued=12)
    assert [a.status_code for a in answers] == [200] * 3, answers[0].text
    assert answers[0].json()["translatedText"] == "\n".join(offline(lines))
    assert [t["text"] for t in answers[1].json()["translations"]] == offline(others[:2])
    assert answers[2].json()["translatedText"] == "\n".join(offline(others[2].split("\n")))
    alone = [t.best for t in translator.translate(sentences[:3])]
    assert offline(lines[:1]) == [" ".join(alone)]  # each sentence translated on its own, then joined
    assert max(sizes["plain"]) > 6 and not sizes["attending"]  # requests mixed; no attention without spans


def test_an_over_long_line_is_answered_in_chunks_instead_of_refused(server, offline, translator, sentences, limit):
    long = ", ".join(s.rstrip(".") for s in sentences[:4]) + "."
    assert len(translator.tokenizer.encode_src([long])[0]) > limit
    assert server.get("/api/info").json()["limits"]["max_sentence_tokens"] == limit
    response = server.post("/api/translate", json={"text": long, "attention": {}})
    assert response.status_code == 200, response.text
    assert response.json()["translations"][0]["text"] == offline([long])[0]
    attention = response.json()["attention"]  # each chunk's own matrix on the diagonal, each ending in EOS
    source, target, weights = attention["source"], attention["target"], attention["weights"]
    assert source.count("</s>") == target.count("</s>") >= 2 and source[-1] == target[-1] == "</s>"
    src_block = [source[:s].count("</s>") for s in range(len(source))]  # the chunk of each piece
    tgt_block = [target[:t].count("</s>") for t in range(len(target))]
    for t, row in enumerate(weights):
        assert sum(row) == pytest.approx(1.0, abs=1e-2)
        assert all(w == 0 for s, w in enumerate(row) if src_block[s] != tgt_block[t])


@pytest.mark.parametrize("piece", ["https://example.org/a-12?x=1", "1,250", "{user_name}"])
def test_an_untranslatable_piece_comes_back_verbatim_placed_by_the_search_attention(server, offline, sentences, piece):
    words = sentences[0].split()
    line = " ".join([*words[:3], piece, *words[3:]])
    with _recorded(server) as sizes:
        text = server.post("/translate", json={"q": line, "source": "en", "target": "de"}).json()["translatedText"]
    assert text == offline([line])[0] and text.count(piece) == 1
    assert sizes["attending"] == [] and set(sizes["plain"]) == {1}  # its sentence in the continuous search


def test_without_splitting_or_cutting_a_line_is_one_sentence_and_too_long_a_line_is_refused(
    model_path, translator, sentences
):
    server = Server(model_path, split="none", max_len=0)
    try:
        assert server.get("/api/info").json()["limits"]["max_sentence_tokens"] is None
        line = " ".join(sentences[:2])
        answer = server.post("/api/translate", json={"text": line}).json()
        assert answer["translations"][0]["text"] == translator.translate([line])[0].best
        long = " ".join([sentences[0]] * 200)
        refused = server.post("/api/translate", json={"texts": [f"ok\n{long}"]})
        assert_error(refused, 400, "line 2 of `texts` has a sentence of", "does not cut sentences (max_len=0)")
    finally:
        server.close()


def test_n_best_and_alignments_translate_a_line_whole_as_nmt_translate_does(server, model_path, sentences):
    line = " ".join(sentences[:2])
    whole = Translator.from_checkpoint(model_path, replace(DECODE, n_best=2), device="cpu").translate([line])[0]
    hyps = server.post("/api/translate", json={"text": line, "n_best": 2}).json()["translations"][0]["lines"][0]
    assert [h["text"] for h in hyps["hypotheses"]] == whole.texts
    aligned = server.post("/api/translate", json={"text": line, "alignments": True}).json()["translations"][0]
    assert aligned["text"] == whole.best and aligned["lines"][0]["hypotheses"][0]["alignment"]


# ---- HTML ----


def _page(sentences: list[str]) -> str:
    words = sentences[0].split()
    return (
        f'<p class="intro" data-x="a&amp;b">{" ".join(words[:2])} <b>{words[2]}</b> {" ".join(words[3:])} '
        f'{sentences[1]}</p>\n<ul><li><a href="/x?a=1&amp;b=2" title="keep me">{sentences[2]}</a></li>'
        f"<li>{sentences[3]}<br>\n{sentences[4]}</li></ul>"
    )


def _start_tags(text: str) -> list[str]:
    return re.findall(r"<[a-z][^>]*>", text)


def _check_well_formed(text: str) -> None:
    """Every opened element is closed in order (void elements aside)."""
    stack: list[str] = []

    class Checker(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag != "br":
                stack.append(tag)

        def handle_endtag(self, tag):
            assert stack and stack.pop() == tag, f"</{tag}> out of order in {text!r}"

    Checker().feed(text)
    assert not stack, f"unclosed {stack} in {text!r}"


def test_html_comes_back_well_formed_with_its_tags_and_attributes_and_its_text_translated(
    server, documents, translator, sentences
):
    page = _page(sentences)
    skeleton = html_skeleton(page, "page")
    expected = skeleton.render(documents.translate(skeleton.segments)).decode("utf-8")
    answers = server.many([_lt(page, format="html"), _native(text=page, format="html"), _lt(page)])
    assert answers[0].json() == {"translatedText": expected}
    _check_well_formed(expected)
    assert _start_tags(expected) == _start_tags(page)  # every tag, attributes as written, in order
    native = answers[1].json()["translations"][0]
    assert native["text"] == expected and len(native["lines"]) == 3  # the paragraph and the two items
    plain = html.unescape(re.sub(r"<[^>]+>", "", native["lines"][0]["hypotheses"][0]["text"]))
    assert plain == " ".join(t.best for t in translator.translate(sentences[:2]))  # tags never reach the model
    assert answers[2].json()["translatedText"] != expected  # format=text translates the tags as words


@pytest.mark.parametrize(
    ("page", "fragments"),
    [
        ("<p>One line.</p>\n<p>Two <b>words</i>.</p>", ["line 2", "</i> closes no open element"]),
        ("<p>One <b>line.</p>", ["line 1", "</p> closes <b> opened at line 1"]),
        ("<div>\n<div>Never closed.</div>", ["line 1", "<div> is never closed"]),
    ],
)
def test_malformed_html_is_a_400_naming_the_line(server, page, fragments):
    lt, native = server.many([_lt(page, format="html"), _native(texts=["<p>Fine.</p>", page], format="html")])
    assert_error(lt, 400, "Invalid request: the HTML of `q`, ", *fragments)
    assert_error(native, 400, "the HTML of text 1 of `texts`, ", *fragments)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (_lt("<p>" + "a " * 1000 + "</p>", format="html"), "`q` has 2007 characters, more than"),
        (_lt("<p>a</p>\n" * 12, format="html"), "`q` has 13 lines, more than"),
        (_lt("a", format="xml"), "xml format is not supported"),
        (_native(text="<p>a</p>", format="html", n_best=2), "`n_best` > 1 and `alignments` are given for text only"),
        (_native(text="<p>a</p>", format="html", alignments=True), "are given for text only, not html"),
        (_native(text="a", format=5), "`format` must be text or html, but is a number"),
        (_native(text="<p>a</p><p>b</p>", format="html", attention={"line": 2}), "`attention.line` must be in [0, 1]"),
    ],
)
def test_the_limits_apply_to_html_and_its_options_are_checked(server, call, fragment):
    assert_error(server.many([call])[0], 400, fragment)


def test_alternatives_with_html_are_empty_lists_as_in_libretranslate(server):
    one, many = server.many(
        [_lt("<p>a dog.</p>", format="html", alternatives=2), _lt(["<p>a</p>", "b"], format="html", alternatives=1)]
    )
    assert one.status_code == 200 and one.json()["alternatives"] == []
    assert many.status_code == 200 and many.json()["alternatives"] == [[], []]
    assert len(many.json()["translatedText"]) == 2


def test_serve_sentence_options_are_checked():
    with pytest.raises(ConfigError) as err:
        check(ServeConfig(ckpt="m.pt", split="words", splitter="nltk", protect=["url", "phone"], max_len=-1))
    for fragment in (
        "`split` must be one of sentences, none",
        "`splitter` must be one of rules, sentencex",
        "`protect` must list kinds among url, email, number, placeholder, code, but has 'phone'",
        "`max_len` must be >= 0 (0: never cut)",
    ):
        assert fragment in str(err.value)
