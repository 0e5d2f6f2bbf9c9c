"""HTML and XML as segments: tags removed, text translated, tags put back.

The segmentation rule, the same for both: an element is a *block* or *inline*. A block's content is cut at
its block children into runs of inline content (text, inline elements, points); each run that holds text
is one segment, and everything else (block tags, whitespace between blocks, comments and points at the
edges of a run, text-less runs) stays in the skeleton, written back as read.

- HTML: the phrasing elements in `INLINE` are inline (an inline element that holds a block counts as a
  block); every other element is a block. So `<p>`, `<li>`, `<td>`, `<h1>`, `<div>`, `<title>`, `<option>`
  ... each give their own segments, and `<a href="x">`, `<b>`, `<span class="c">` become `element` spans
  holding their tags as written (attributes untouched).
- XML: an element is inline when its parent holds text of its own (mixed content), or its parent is
  inline; every other element is a block. So `<para>See <link ref="a">this</link>.</para>` is one segment.

A run of whitespace is one space in the segment's text (as a browser shows HTML), except inside an XML
element with `xml:space="preserve"`.

Points (`void` spans holding their markup verbatim): void elements (`<br>`, `<img>`, `<wbr>`, `<input>`,
`<embed>`; in XML any empty element `<x/>`), comments and processing instructions inside a run, and
content that is not translated: `<script>`, `<style>`, `<code>`, `<pre>` and any element with
`translate="no"` (any prefix, e.g. `its:translate`) or `class="notranslate"`. Such an element inside a run
is a point holding its whole markup; as a block it stays in the skeleton. Attributes are never translated.

Text is decoded (entities, character references) in `Segment.text`; the writer escapes `&`, `<` and `>`
(`html.escape(quote=False)`), so the output is well-formed whenever the input is. HTML is read leniently,
as browsers do: the end tags HTML makes optional (`</p>`, `</li>`, `</td>`, `</tr>`, `</option>` ...) may be
left out, and void elements need none; any other end tag that is missing, stray or closes the wrong element
is an error naming the file and the lines. XML must be well-formed (expat's message, with the line).
The encoding is the byte-order mark's, else the one declared (`<meta charset>` in the first 1024 bytes of
HTML, the XML declaration), else UTF-8; the output keeps it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from xml.parsers import expat

from nmt.documents.formats import Skeleton, decode
from nmt.documents.segment import DocumentError, Segment, Span, Tag


def _names(text: str) -> frozenset[str]:
    """The tag names in a space-separated list."""
    return frozenset(text.split())


INLINE = _names(
    "a abbr acronym b bdi bdo big cite code data del dfn em font i ins kbd label mark q rb rp rt rtc ruby s "
    "samp script small span strike strong style sub sup time tt u var"
)
POINTS = _names("br embed img input wbr")  # void elements inside a sentence
VOID = POINTS | _names("area base col hr keygen link meta param source track")
NOT_TRANSLATED = _names("script style code pre")
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
_SPACE = " \t\n\r\f"  # whitespace a tokenizer keeps as written, so it is the same in the source and the text
_SPACES = re.compile(f"[{_SPACE}]+")
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)["']""")


@dataclass
class _Text:
    source: str  # as written
    text: str  # decoded


@dataclass
class _Leaf:
    source: str  # a comment, doctype or processing instruction


@dataclass
class _Element:
    name: str
    open: str  # the start tag as written (an empty element's whole `<x/>`)
    line: int
    skipped: bool  # not translated
    children: list[_Text | _Leaf | _Element] = field(default_factory=list)
    close: str = ""  # the end tag as written; "" when left out or empty
    inline: bool = False
    space: str | None = None  # XML's xml:space


_Node = _Text | _Leaf | _Element


def read_html(path: Path) -> Skeleton:
    """Read an HTML document (see the module docstring for what becomes a segment).

    Raises:
        DocumentError: the bytes are not in the document's encoding, or an end tag is missing, stray or
            closes the wrong element (the message names the file and the lines).
    """
    data = path.read_bytes()
    encoding = _encoding(data, _META_CHARSET.search(data[:1024]))
    return html_skeleton(decode(data, encoding, f"file {path}"), f"file {path}", encoding)


def html_skeleton(text: str, name: str, encoding: str = "utf-8") -> Skeleton:
    """Read HTML already decoded (a whole document or a fragment, e.g. a request's text) as `read_html` reads a
    file; `name` (e.g. "file a.html", "text 1 of `q`") begins every error message, `encoding` writes it back.

    Raises:
        DocumentError: an end tag is missing, stray or closes the wrong element (naming `name` and the lines).
    """
    bom = text[:1] if text.startswith("\ufeff") else ""
    root = _html_tree(_HtmlTokens(text[len(bom) :]).tokens(), name)
    _mark_html(root)
    return _skeleton(root, bom, encoding, name)


def read_xml(path: Path) -> Skeleton:
    """Read an XML document (see the module docstring); namespaces, the declaration and the doctype stay.

    Raises:
        DocumentError: the bytes are not in the document's encoding, or it is not well-formed XML (the
            message names the file and the line).
    """
    data = path.read_bytes()
    name = f"file {path}"
    encoding = _encoding(data, _XML_ENCODING.search(data[:1024]))
    source = decode(data, encoding, name)
    root = _xml_tree(source, name)
    _mark_xml(root, parent_mixed=False)
    return _skeleton(root, "", encoding, name)


def _encoding(data: bytes, declared: re.Match[bytes] | None) -> str:
    """UTF-8 with a byte-order mark, else the declared encoding, else UTF-8."""
    if data.startswith(b"\xef\xbb\xbf") or declared is None:
        return "utf-8"
    return declared.group(1).decode("ascii").lower()


def _skeleton(root: _Element, bom: str, encoding: str, name: str) -> Skeleton:
    """The document as skeleton and segments (see `_emit`)."""
    out = Skeleton([], [bom], [], escape=_escape, encoding=encoding, errors="xmlcharrefreplace")
    try:
        _emit(root, out, collapse=True)
    except RecursionError as e:
        raise DocumentError(f"{name}: elements nested too deeply to read.") from e
    return out


def _escape(text: str) -> str:
    """Text as HTML and XML text content: `&`, `<` and `>` escaped."""
    return html.escape(text, quote=False)


# ----------------------------------------------------------------------------------------------- HTML


class _HtmlTokens(HTMLParser):
    """The tokens of an HTML text, each with the source it was read from (together, the whole text)."""

    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self.source = source
        self.line_starts = [0] + [match.end() for match in re.finditer("\n", source)]
        self.events: list[tuple[int, int, str, object]] = []  # (offset, line, kind, what)

    def tokens(self) -> list[tuple[str, str, int, object]]:
        """(kind, source, line, what): kind `start` (what: (name, attrs)), `empty`, `end` (what: name), `text`
        (what: the decoded text) or `leaf`."""
        self.feed(self.source)
        self.close()
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


def _html_tree(tokens: list[tuple[str, str, int, object]], name: str) -> _Element:
    """The element tree of HTML tokens, with left-out end tags implied; a root named "" holds it."""
    root = _Element("", "", 0, False)
    stack = [root]
    for kind, source, line, what in tokens:
        if kind == "text":
            _add_text(stack[-1], source, what)
        elif kind == "leaf":
            stack[-1].children.append(_Leaf(source))
        elif kind == "end" and what not in VOID:
            _close(stack, what, source, line, name)
        else:  # a start tag, `<x/>`, or `</br>` (read as `<br>`, as browsers do)
            tag, attrs = what if kind != "end" else (what, [])
            if kind == "start":
                _end_implied(stack, tag)
            element = _Element(tag, source, line, _not_translated(tag, attrs))
            stack[-1].children.append(element)
            if kind == "start" and tag not in VOID:
                stack.append(element)
    while len(stack) > 1 and stack[-1].name in ENDED_BY:
        stack.pop()
    if len(stack) > 1:
        raise DocumentError(f"{name}, line {stack[-1].line}: <{stack[-1].name}> is never closed.")
    return root


def _add_text(parent: _Element, source: str, text: str) -> None:
    """Append text to `parent`, joined to text just before it."""
    if parent.children and isinstance(parent.children[-1], _Text):
        last = parent.children[-1]
        last.source, last.text = last.source + source, last.text + text
    else:
        parent.children.append(_Text(source, text))


def _end_implied(stack: list[_Element], tag: str) -> None:
    """Close the open elements that a start tag `tag` ends (`<li>` an open `<li>` and a `<p>` inside it)."""
    depth = len(stack)
    for index in range(len(stack) - 1, 0, -1):
        ended_by = ENDED_BY.get(stack[index].name)
        if ended_by is None:
            break
        if tag in ended_by:
            depth = index
    del stack[depth:]


def _close(stack: list[_Element], tag: str, source: str, line: int, name: str) -> None:
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


def _not_translated(tag: str, attrs: list[tuple[str, str | None]] | dict[str, str]) -> bool:
    """Whether an element's content is left untranslated (see the module docstring)."""
    pairs = attrs.items() if isinstance(attrs, dict) else attrs
    for key, value in pairs:
        local = key.rpartition(":")[2].lower()
        if (local == "translate" and (value or "").strip().lower() == "no") or (
            local == "class" and "notranslate" in (value or "").split()
        ):
            return True
    return tag.rpartition(":")[2].lower() in NOT_TRANSLATED


def _mark_html(element: _Element) -> bool:
    """Mark every element inline or block (HTML's rule in the module docstring); whether `element` is inline."""
    children = [_mark_html(child) for child in element.children if isinstance(child, _Element)]
    element.inline = element.name in _PHRASING and (element.skipped or all(children))
    return element.inline


# ------------------------------------------------------------------------------------------------ XML


def _xml_tree(source: str, name: str) -> _Element:
    """The element tree of an XML text (expat, so every well-formedness error is found)."""
    parser = expat.ParserCreate()
    raw = source.encode("utf-8")  # expat reads a str as UTF-8 and counts offsets in its bytes
    events: list[tuple[int, str, object]] = []

    def add(kind: str):
        return lambda *what: events.append((parser.CurrentByteIndex, kind, what))

    parser.StartElementHandler = add("start")
    parser.EndElementHandler = add("end")
    parser.CharacterDataHandler = add("text")
    parser.StartCdataSectionHandler = parser.EndCdataSectionHandler = add("cdata")
    parser.CommentHandler = parser.ProcessingInstructionHandler = add("leaf")
    try:
        parser.Parse(source, True)
    except expat.ExpatError as e:
        raise DocumentError(f"{name}, line {e.lineno}: {_xml_problem(e, source)}.") from e
    return _xml_elements(events, raw)


def _xml_problem(error: expat.ExpatError, source: str) -> str:
    """Expat's message, naming the tags for a mismatched end tag."""
    problem = expat.ErrorString(error.code)
    if error.code == expat.errors.codes[expat.errors.XML_ERROR_TAG_MISMATCH]:
        line = source.split("\n")[error.lineno - 1]
        start = line.rfind("</", 0, error.offset + 1)  # expat points at the name, or at the tag's "<"
        closing = re.match(r"</\s*([^\s>]+)", line[start:]) if start >= 0 else None
        if closing:
            opened = _open_at(source, error.lineno, start)
            where = f"<{opened[0]}> opened at line {opened[1]}" if opened else "another element"
            return f"</{closing.group(1)}> closes {where}"
    return problem


def _open_at(source: str, lineno: int, offset: int) -> tuple[str, int] | None:
    """The innermost element open at a place of a (well-formed up to there) XML text, and its line."""
    lines = source.split("\n")
    prefix = "\n".join(lines[: lineno - 1] + [lines[lineno - 1][:offset]])
    opened: list[tuple[str, int]] = []
    parser = expat.ParserCreate()
    parser.StartElementHandler = lambda tag, _: opened.append((tag, parser.CurrentLineNumber))
    parser.EndElementHandler = lambda tag: opened.pop()
    try:
        parser.Parse(prefix, False)
    except expat.ExpatError:
        return None
    return opened[-1] if opened else None


def _xml_elements(events: list[tuple[int, str, object]], raw: bytes) -> _Element:
    """The element tree from expat's events and the UTF-8 bytes they point into."""
    root = _Element("", "", 0, False)
    stack = [root]
    offsets = [offset for offset, _, _ in events] + [len(raw)]
    if offsets[0]:
        root.children.append(_Leaf(raw[: offsets[0]].decode("utf-8")))
    for (offset, kind, what), end in zip(events, offsets[1:], strict=True):
        source = raw[offset:end].decode("utf-8")
        if kind == "start":
            tag, attrs = what
            element = _Element(tag, source, 0, _not_translated(tag, attrs), space=attrs.get("xml:space"))
            stack[-1].children.append(element)
            stack.append(element)
        elif kind == "end":
            stack.pop().close = source  # "" for `<x/>`, whose start holds it all
        elif kind in ("text", "cdata"):
            _add_text(stack[-1], source, what[0] if what else "")
        else:
            stack[-1].children.append(_Leaf(source))
    return root


def _mark_xml(element: _Element, parent_mixed: bool) -> None:
    """Mark every element inline or block (XML's rule in the module docstring)."""
    element.inline = parent_mixed
    mixed = parent_mixed or any(isinstance(child, _Text) and child.text.strip() for child in element.children)
    for child in element.children:
        if isinstance(child, _Element):
            _mark_xml(child, mixed)


# --------------------------------------------------------------------------------------- segmentation


def _emit(element: _Element, out: Skeleton, collapse: bool) -> None:
    """Write a block into the skeleton: its tags, and its content cut into runs at its block children."""
    if element.skipped:
        _skeleton_text(out, _source(element))
        return
    collapse = {"preserve": False, "default": True}.get(element.space, collapse)
    _skeleton_text(out, element.open)
    run: list[_Node] = []
    for child in element.children:
        if isinstance(child, _Element) and not child.inline:
            _emit_run(run, out, collapse)
            run = []
            _emit(child, out, collapse)
        else:
            run.append(child)
    _emit_run(run, out, collapse)
    _skeleton_text(out, element.close)


def _emit_run(run: list[_Node], out: Skeleton, collapse: bool) -> None:
    """Write a run of inline content: a segment when it holds text, its edges (whitespace, points) kept aside."""
    items = list(_items(run))
    if not any(kind == "text" and what.text.strip() for kind, what in items):
        _skeleton_text(out, "".join(_item_source(item) for item in items))
        return
    head, items = _trim(items, 0)
    tail, items = _trim(items, -1)
    _skeleton_text(out, head)
    out.parts.append(len(out.segments))
    out.segments.append(_segment(items, collapse))
    out.verbatim.append("".join(_item_source(item) for item in items))
    _skeleton_text(out, tail)


def _items(nodes: list[_Node]) -> Iterator[tuple[str, object]]:
    """The run flattened: ("text", _Text), ("point", source), ("open", _Element), ("close", _Element)."""
    for node in nodes:
        if isinstance(node, _Text):
            yield "text", node
        elif isinstance(node, _Leaf) or node.skipped or (not node.close and not node.children):
            yield "point", _source(node)
        else:
            yield "open", node
            yield from _items(node.children)
            yield "close", node


def _item_source(item: tuple[str, object]) -> str:
    kind, what = item
    return what if kind == "point" else what.source if kind == "text" else what.open if kind == "open" else what.close


def _trim(items: list[tuple[str, object]], edge: int) -> tuple[str, list[tuple[str, object]]]:
    """The skeleton at one edge (0: the start, -1: the end) of a run: points and whitespace before the first
    (after the last) text or tag; and the run without it."""
    items = list(items)
    kept: list[str] = []
    while items[edge][0] == "point" or (items[edge][0] == "text" and not items[edge][1].text.strip()):
        kept.append(_item_source(items.pop(edge)))
    if items[edge][0] == "text":
        node = items[edge][1]
        strip = str.lstrip if edge == 0 else str.rstrip
        source, text = strip(node.source, _SPACE), strip(node.text, _SPACE)
        cut = node.source[: len(node.source) - len(source)] if edge == 0 else node.source[len(source) :]
        kept.append(cut)
        items[edge] = ("text", _Text(source, text))
    return "".join(kept if edge == 0 else reversed(kept)), items


def _segment(items: list[tuple[str, object]], collapse: bool) -> Segment:
    """The segment of a run: its decoded text, inline elements as `element` spans, points as `void` spans."""
    text: list[str] = []
    spans: list[Span | None] = []
    opened: list[tuple[int, int]] = []  # (slot in spans, start)
    length = 0
    for kind, what in items:
        if kind == "text":
            piece = _SPACES.sub(" ", what.text) if collapse else what.text
            text.append(piece)
            length += len(piece)
        elif kind == "point":
            spans.append(Span(length, length, Tag(what, kind="void")))
        elif kind == "open":
            opened.append((len(spans), length))
            spans.append(None)
        else:
            slot, start = opened.pop()
            spans[slot] = Span(start, length, Tag(what.open, what.close))
    return Segment("".join(text), [span for span in spans if span is not None])


def _source(node: _Node) -> str:
    """A node as written."""
    if isinstance(node, _Element):
        return node.open + "".join(_source(child) for child in node.children) + node.close
    return node.source


def _skeleton_text(out: Skeleton, text: str) -> None:
    """Append verbatim text to the skeleton, joined to verbatim text just before it."""
    if text:
        if out.parts and isinstance(out.parts[-1], str):
            out.parts[-1] += text
        else:
            out.parts.append(text)
