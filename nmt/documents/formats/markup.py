"""HTML and XML as segments: tags removed, text translated, tags put back (the trees are read by `html_tree`
and `xml_tree`; this module cuts a tree into skeleton and segments).

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

Points (`void` spans holding their markup verbatim): void elements (`<img>`, `<wbr>`, `<input>`, `<embed>`;
in XML any empty element `<x/>`), elements holding no text (`<a id="top"></a>`, `<a href="/"><img></a>`),
comments and processing instructions inside a run, and content that is not translated: `<script>`,
`<style>`, `<code>`, `<pre>` and any element with `translate="no"` (any prefix, e.g. `its:translate`) or
`class="notranslate"`. Such an element inside a run is a point holding its whole markup; as a block it stays
in the skeleton. Attributes are never translated. A line break (`<br>`, any prefix) is a `line` point: the
pipeline translates the text on either side apart, and where neither side has whitespace (and whitespace is
collapsed) a space follows it in the text, so "Street 1<br>Berlin" reads "Street 1 Berlin".

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
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from nmt.documents.formats import Skeleton
from nmt.documents.segment import DocumentError, Segment, Span, Tag

NOT_TRANSLATED = frozenset({"script", "style", "code", "pre"})
LINE_BREAKS = frozenset({"br"})  # elements (local names, any case) that end a line: `line` points
SPACE = " \t\n\r\f"  # whitespace a tokenizer keeps as written, so it is the same in the source and the text
_SPACES = re.compile(f"[{SPACE}]+")


@dataclass
class Text:
    source: str  # as written
    text: str  # decoded


@dataclass
class Leaf:
    source: str  # a comment, doctype or processing instruction


@dataclass
class Element:
    name: str
    open: str  # the start tag as written (an empty element's whole `<x/>`)
    line: int
    skipped: bool  # not translated
    children: list[Text | Leaf | Element] = field(default_factory=list)
    close: str = ""  # the end tag as written; "" when left out or empty
    inline: bool = False
    space: str | None = None  # XML's xml:space


Node = Text | Leaf | Element


def encoding_of(data: bytes, declared: re.Match[bytes] | None) -> str:
    """UTF-8 with a byte-order mark, else the declared encoding, else UTF-8."""
    if data.startswith(b"\xef\xbb\xbf") or declared is None:
        return "utf-8"
    return declared.group(1).decode("ascii").lower()


def skeleton_of(root: Element, mark: Callable[[Element], object], bom: str, encoding: str, name: str) -> Skeleton:
    """The document as skeleton and segments (see `_emit`), once `mark` has marked every element inline or block.

    Raises:
        DocumentError: elements are nested too deeply to walk (naming `name`).
    """
    out = Skeleton([], [bom], [], escape=_escape, encoding=encoding, errors="xmlcharrefreplace")
    try:
        mark(root)
        _emit(root, out, collapse=True)
    except RecursionError as e:
        limit = sys.getrecursionlimit()
        raise DocumentError(
            f"{name}: elements are nested too deeply to read (more levels than Python's recursion limit, {limit}, "
            "allows)."
        ) from e
    return out


def _escape(text: str) -> str:
    """Text as HTML and XML text content: `&`, `<` and `>` escaped."""
    return html.escape(text, quote=False)


def not_translated(tag: str, attrs: list[tuple[str, str | None]] | dict[str, str]) -> bool:
    """Whether an element's content is left untranslated (see the module docstring)."""
    pairs = attrs.items() if isinstance(attrs, dict) else attrs
    for key, value in pairs:
        local = key.rpartition(":")[2].lower()
        if (local == "translate" and (value or "").strip().lower() == "no") or (
            local == "class" and "notranslate" in (value or "").split()
        ):
            return True
    return tag.rpartition(":")[2].lower() in NOT_TRANSLATED


def add_text(parent: Element, source: str, text: str) -> None:
    """Append text to `parent`, joined to text just before it."""
    if parent.children and isinstance(parent.children[-1], Text):
        last = parent.children[-1]
        last.source, last.text = last.source + source, last.text + text
    else:
        parent.children.append(Text(source, text))


def _emit(element: Element, out: Skeleton, collapse: bool) -> None:
    """Write a block into the skeleton: its tags, and its content cut into runs at its block children."""
    if element.skipped:
        _skeleton_text(out, _source(element))
        return
    collapse = {"preserve": False, "default": True}.get(element.space, collapse)
    _skeleton_text(out, element.open)
    run: list[Node] = []
    for child in element.children:
        if isinstance(child, Element) and not child.inline:
            _emit_run(run, out, collapse)
            run = []
            _emit(child, out, collapse)
        else:
            run.append(child)
    _emit_run(run, out, collapse)
    _skeleton_text(out, element.close)


def _emit_run(run: list[Node], out: Skeleton, collapse: bool) -> None:
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


def _items(nodes: list[Node]) -> Iterator[tuple[str, object]]:
    """The run flattened: ("text", Text), ("line", source) for a line break (or an element holding no text but
    one: `<span><br></span>`), ("point", source) for any other point (an element holding no text is one, whole),
    ("open", Element), ("close", Element)."""
    for node in nodes:
        if isinstance(node, Text):
            yield "text", node
        elif isinstance(node, Element) and (_is_line_break(node) or not _has_text(node) and _holds_line_break(node)):
            yield "line", _source(node)
        elif isinstance(node, Leaf) or node.skipped or not _has_text(node):
            yield "point", _source(node)
        else:
            yield "open", node
            yield from _items(node.children)
            yield "close", node


def _is_line_break(element: Element) -> bool:
    return element.name.rpartition(":")[2].lower() in LINE_BREAKS


def _holds_line_break(element: Element) -> bool:
    """Whether a line break lies inside `element`, outside elements left untranslated."""
    return not element.skipped and any(
        isinstance(child, Element) and not child.skipped and (_is_line_break(child) or _holds_line_break(child))
        for child in element.children
    )


def _has_text(element: Element) -> bool:
    """Whether any text (whitespace too) lies inside `element`, outside elements left untranslated."""
    return any(
        bool(child.text)
        if isinstance(child, Text)
        else isinstance(child, Element) and not child.skipped and _has_text(child)
        for child in element.children
    )


def _item_source(item: tuple[str, object]) -> str:
    """An item of a run (see `_items`) as written."""
    kind, what = item
    if kind in ("point", "line"):
        return what
    if kind == "text":
        return what.source
    return what.open if kind == "open" else what.close


def _trim(items: list[tuple[str, object]], edge: int) -> tuple[str, list[tuple[str, object]]]:
    """The skeleton at one edge (0: the start, -1: the end) of a run: points and whitespace before the first
    (after the last) text or tag; and the run without it."""
    items = list(items)
    kept: list[str] = []
    while items[edge][0] in ("point", "line") or (items[edge][0] == "text" and not items[edge][1].text.strip()):
        kept.append(_item_source(items.pop(edge)))
    if items[edge][0] == "text":
        node = items[edge][1]
        strip = str.lstrip if edge == 0 else str.rstrip
        source, text = strip(node.source, SPACE), strip(node.text, SPACE)
        cut = node.source[: len(node.source) - len(source)] if edge == 0 else node.source[len(source) :]
        kept.append(cut)
        items[edge] = ("text", Text(source, text))
    return "".join(kept if edge == 0 else reversed(kept)), items


def _segment(items: list[tuple[str, object]], collapse: bool) -> Segment:
    """The segment of a run: its decoded text, inline elements as `element` spans, points as `void` spans and
    line breaks as `line` spans. Where whitespace is collapsed, a space follows a line break that has none on
    either side, so the words it separates stay apart ("Street 1<br>Berlin": "Street 1 Berlin")."""
    text: list[str] = []
    spans: list[Span | None] = []
    opened: list[tuple[int, int]] = []  # (slot in spans, start)
    length = 0
    for index, (kind, what) in enumerate(items):
        if kind == "text":
            piece = _SPACES.sub(" ", what.text) if collapse else what.text
            text.append(piece)
            length += len(piece)
        elif kind == "line":
            spans.append(Span(length, length, Tag(what, kind="line")))
            if collapse and _glued_line("".join(text), items[index + 1 :]):
                text.append(" ")
                length += 1
        elif kind == "point":
            spans.append(Span(length, length, Tag(what, kind="void")))
        elif kind == "open":
            opened.append((len(spans), length))
            spans.append(None)
        else:
            slot, start = opened.pop()
            spans[slot] = Span(start, length, Tag(what.open, what.close))
    return Segment("".join(text), [span for span in spans if span is not None])


def _glued_line(before: str, after: list[tuple[str, object]]) -> bool:
    """Whether a line break has text on both sides and whitespace on neither (`before`: the segment's text up
    to it; `after`: the items after it)."""
    following = next((what.text for kind, what in after if kind == "text" and what.text), "")
    return bool(before and following) and not before[-1].isspace() and not following[0].isspace()


def _source(node: Node) -> str:
    """A node as written."""
    if isinstance(node, Element):
        return node.open + "".join(_source(child) for child in node.children) + node.close
    return node.source


def _skeleton_text(out: Skeleton, text: str) -> None:
    """Append verbatim text to the skeleton, joined to verbatim text just before it."""
    if text:
        if out.parts and isinstance(out.parts[-1], str):
            out.parts[-1] += text
        else:
            out.parts.append(text)
