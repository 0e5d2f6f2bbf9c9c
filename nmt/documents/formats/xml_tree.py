"""XML read into the element tree of `nmt.documents.formats.markup` with expat, so every well-formedness error
is found (expat's message, with the line). An element is inline when its parent holds text of its own (mixed
content) or is inline; every other element is a block.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.parsers import expat

from nmt.documents.formats import Skeleton, decode
from nmt.documents.formats.markup import Element, Leaf, Text, add_text, encoding_of, not_translated, skeleton_of
from nmt.documents.segment import DocumentError

_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)["']""")


def read_xml(path: Path) -> Skeleton:
    """Read an XML document (see the module docstring); namespaces, the declaration and the doctype stay.

    Raises:
        DocumentError: the bytes are not in the document's encoding, it is not well-formed XML (the message
            names the file and the line), or its elements are nested too deeply.
    """
    data = path.read_bytes()
    name = f"file {path}"
    encoding = encoding_of(data, _XML_ENCODING.search(data[:1024]))
    source = decode(data, encoding, name)
    root = _xml_tree(source, name)
    return skeleton_of(root, lambda element: _mark_xml(element, parent_mixed=False), "", encoding, name)


def _xml_tree(source: str, name: str) -> Element:
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


def _xml_elements(events: list[tuple[int, str, object]], raw: bytes) -> Element:
    """The element tree from expat's events and the UTF-8 bytes they point into."""
    root = Element("", "", 0, False)
    stack = [root]
    offsets = [offset for offset, _, _ in events] + [len(raw)]
    if offsets[0]:
        root.children.append(Leaf(raw[: offsets[0]].decode("utf-8")))
    for (offset, kind, what), end in zip(events, offsets[1:], strict=True):
        source = raw[offset:end].decode("utf-8")
        if kind == "start":
            tag, attrs = what
            element = Element(tag, source, 0, not_translated(tag, attrs), space=attrs.get("xml:space"))
            stack[-1].children.append(element)
            stack.append(element)
        elif kind == "end":
            stack.pop().close = source  # "" for `<x/>`, whose start holds it all
        elif kind in ("text", "cdata"):
            add_text(stack[-1], source, what[0] if what else "")
        else:
            stack[-1].children.append(Leaf(source))
    return root


def _mark_xml(element: Element, parent_mixed: bool) -> None:
    """Mark every element inline or block (XML's rule in the module docstring)."""
    element.inline = parent_mixed
    mixed = parent_mixed or any(isinstance(child, Text) and child.text.strip() for child in element.children)
    for child in element.children:
        if isinstance(child, Element):
            _mark_xml(child, mixed)
