"""HTML read into the element tree of `nmt.documents.formats.markup`, leniently, as browsers read it.

The end tags HTML makes optional (`</p>`, `</li>`, `</td>`, `</tr>`, `</option>` ...) may be left out, and void
elements need none; any other end tag that is missing, stray or closes the wrong element is an error naming
the file and the lines. The phrasing elements in `INLINE` are inline (one holding a block counts as a
block); every other element is a block.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from nmt.documents.formats import Skeleton, decode
from nmt.documents.formats.markup import Element, Leaf, add_text, encoding_of, not_translated, skeleton_of
from nmt.documents.segment import DocumentError


def _names(text: str) -> frozenset[str]:
    """The tag names in a space-separated list."""
    return frozenset(text.split())


INLINE = _names(
    "a abbr acronym b bdi bdo big cite code data del dfn em font i ins kbd label mark q rb rp rt rtc ruby s "
    "samp script small span strike strong style sub sup time tt u var"
)
POINTS = _names("br embed img input wbr")  # void elements inside a sentence
VOID = POINTS | _names("area base col hr keygen link meta param source track")
_PHRASING = INLINE | POINTS

# Start tags that end an open element whose end tag HTML makes optional (the HTML standard, "Optional
# tags", simplified): `<li>` ends an open `<li>`, a block ends an open `<p>`.
_ENDS_P = _names(
    "address article aside blockquote center dd details dialog dir div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hgroup hr li main menu nav ol p pre section summary table ul"
)
_CELL_ENDERS = _names("td th tr tbody thead tfoot")
_RUBY = _names("rb rp rt rtc")
ENDED_BY = {
    "p": _ENDS_P,
    "li": frozenset({"li"}),
    "dt": frozenset({"dt", "dd"}),
    "dd": frozenset({"dt", "dd"}),
    "td": _CELL_ENDERS,
    "th": _CELL_ENDERS,
    "tr": frozenset({"tr", "tbody", "thead", "tfoot"}),
    "thead": frozenset({"tbody", "tfoot"}),
    "tbody": frozenset({"tbody", "tfoot"}),
    "tfoot": frozenset(),
    "colgroup": frozenset({"colgroup", "thead", "tbody", "tfoot", "tr"}),
    "option": frozenset({"option", "optgroup"}),
    "optgroup": frozenset({"optgroup"}),
    "rb": _RUBY,
    "rp": _RUBY,
    "rt": _RUBY,
    "rtc": frozenset({"rb", "rtc"}),
    "head": frozenset({"body"}),
    "body": frozenset(),
    "html": frozenset(),
}
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def read_html(path: Path) -> Skeleton:
    """Read an HTML document (see the module docstring for what becomes a segment).

    Raises:
        DocumentError: the bytes are not in the document's encoding, or an end tag is missing, stray or
            closes the wrong element (the message names the file and the lines).
    """
    data = path.read_bytes()
    encoding = encoding_of(data, _META_CHARSET.search(data[:1024]))
    return html_skeleton(decode(data, encoding, f"file {path}"), f"file {path}", encoding)


def html_skeleton(text: str, name: str, encoding: str = "utf-8") -> Skeleton:
    """Read HTML already decoded (a whole document or a fragment, e.g. a request's text) as `read_html` reads a
    file; `name` (e.g. "file a.html", "text 1 of `q`") begins every error message, `encoding` writes it back.

    Raises:
        DocumentError: an end tag is missing, stray or closes the wrong element, markup cannot be read, or
            elements are nested too deeply (naming `name` and the lines).
    """
    bom = text[:1] if text.startswith("\ufeff") else ""
    root = _html_tree(_HtmlTokens(text[len(bom) :]).tokens(name), name)
    return skeleton_of(root, _mark_html, bom, encoding, name)


class _HtmlTokens(HTMLParser):
    """The tokens of an HTML text, each with the source it was read from (together, the whole text)."""

    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self.source = source
        self.line_starts = [0] + [match.end() for match in re.finditer("\n", source)]
        self.events: list[tuple[int, int, str, object]] = []  # (offset, line, kind, what)

    def tokens(self, name: str) -> list[tuple[str, str, int, object]]:
        """(kind, source, line, what): kind `start` (what: (name, attrs)), `empty`, `end` (what: name), `text`
        (what: the decoded text) or `leaf`.

        Raises:
            DocumentError: markup that Python's parser rejects (`<![foo[ ]]>`), naming `name` and the line.
        """
        try:
            self.feed(self.source)
            self.close()
        except AssertionError as e:  # html.parser asserts on some markup it cannot read (Python 3.11)
            raise DocumentError(f"{name}, line {self.getpos()[0]}: markup that cannot be read ({e}).") from e
        offsets = [event[0] for event in self.events] + [len(self.source)]
        tokens = [("leaf", self.source[: offsets[0]], 1, None)] if offsets[0] else []
        for (offset, line, kind, what), end in zip(self.events, offsets[1:], strict=True):
            tokens.append((kind, self.source[offset:end], line, what))
        return tokens

    def _add(self, kind: str, what: object = None) -> None:
        line, column = self.getpos()
        self.events.append((self.line_starts[line - 1] + column, line, kind, what))

    def handle_starttag(self, tag, attrs):
        self._add("start", (tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self._add("empty", (tag, attrs))

    def handle_endtag(self, tag):
        self._add("end", tag)

    def handle_data(self, data):
        self._add("text", data)

    def handle_comment(self, data):
        self._add("leaf")

    handle_decl = handle_pi = unknown_decl = handle_comment


def _html_tree(tokens: list[tuple[str, str, int, object]], name: str) -> Element:
    """The element tree of HTML tokens, with left-out end tags implied; a root named "" holds it."""
    root = Element("", "", 0, False)
    stack = [root]
    for kind, source, line, what in tokens:
        if kind == "text":
            add_text(stack[-1], source, what)
        elif kind == "leaf":
            stack[-1].children.append(Leaf(source))
        elif kind == "end" and what not in VOID:
            _close(stack, what, source, line, name)
        else:  # a start tag, `<x/>`, or `</br>` (read as `<br>`, as browsers do)
            tag, attrs = what if kind != "end" else (what, [])
            if kind == "start":
                _end_implied(stack, tag)
            element = Element(tag, source, line, not_translated(tag, attrs))
            stack[-1].children.append(element)
            if kind == "start" and tag not in VOID:
                stack.append(element)
    while len(stack) > 1 and stack[-1].name in ENDED_BY:
        stack.pop()
    if len(stack) > 1:
        raise DocumentError(f"{name}, line {stack[-1].line}: <{stack[-1].name}> is never closed.")
    return root


def _end_implied(stack: list[Element], tag: str) -> None:
    """Close the open elements that a start tag `tag` ends (`<li>` an open `<li>` and a `<p>` inside it)."""
    depth = len(stack)
    for index in range(len(stack) - 1, 0, -1):
        ended_by = ENDED_BY.get(stack[index].name)
        if ended_by is None:
            break
        if tag in ended_by:
            depth = index
    del stack[depth:]


def _close(stack: list[Element], tag: str, source: str, line: int, name: str) -> None:
    """Close the open element `tag` (and open elements whose end tags may be left out, inside it)."""
    index = len(stack) - 1
    while index > 0 and stack[index].name != tag and stack[index].name in ENDED_BY:
        index -= 1
    if index > 0 and stack[index].name == tag:
        stack[index].close = source
        del stack[index:]
    elif not any(element.name == tag for element in stack[1:]):
        raise DocumentError(f"{name}, line {line}: </{tag}> closes no open element (no <{tag}> is open).")
    else:
        open_ = stack[index]
        raise DocumentError(f"{name}, line {line}: </{tag}> closes <{open_.name}> opened at line {open_.line}.")


def _mark_html(element: Element) -> bool:
    """Mark every element inline or block (HTML's rule in the module docstring); whether `element` is inline."""
    children = [_mark_html(child) for child in element.children if isinstance(child, Element)]
    element.inline = element.name in _PHRASING and (element.skipped or all(children))
    return element.inline
