"""A segment: one unit of a document to translate, as plain text with its inline markup kept aside.

Readers of every format (`nmt.documents.formats`) turn a document into segments; the translation pipeline
translates each segment's `text` (split into sentences, and over-long sentences into chunks), places the
spans on the translation along the model's own alignment (`nmt.documents.placement`), and the format's
writer renders the translated segments back into the document's structure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from nmt.errors import UserError

TagKind = Literal["element", "void", "text", "break"]


@dataclass(frozen=True)
class Tag:
    """What a span stands for, written back verbatim by the format's writer.

    `element`: markup around text (`open` `<a href="x">`, `close` `</a>`; for .docx a run's formatting key);
    `void`: markup at a point (`<br/>`, `<img src=...>`), `open` only; `text`: an untranslatable piece of the
    source (a URL, a number, `{name}`), removed from the text before translation and put back verbatim;
    `break`: a boundary the writer splits the translation at (a subtitle cue's end).
    """

    open: str
    close: str = ""
    kind: TagKind = "element"


@dataclass(frozen=True)
class Span:
    """A tag over the characters `text[start:end]` of its segment; an empty span (start == end) is a point."""

    start: int
    end: int
    tag: Tag


@dataclass
class Segment:
    """Plain text (markup removed, entities decoded) and the spans over it, properly nested, in document order."""

    text: str
    spans: list[Span] = field(default_factory=list)


# One link of an alignment over characters: (target start, target end, source start, source end), a target
# piece of a translation and the source piece it attends to most.
CharLink = tuple[int, int, int, int]


class DocumentError(UserError, ValueError):
    """A document that cannot be read or written as its format says (the message names the file and the place)."""


def render(segment: Segment, escape: Callable[[str], str] = str) -> str:
    """The segment's text with its spans written in, in their list order (document order): `escape` applies to
    the text and to `text` points, never to markup. An element stays open while the spans after it lie inside
    it, so well-nested spans give well-formed markup, and a point at an element's start is written inside it."""
    out: list[str] = []
    open_: list[Span] = []
    position = 0

    def text_to(at: int) -> None:
        nonlocal position
        out.append(escape(segment.text[position : max(at, position)]))
        position = max(at, position)

    for span in segment.spans:
        while open_ and not _holds(open_[-1], span):
            text_to(open_[-1].end)
            out.append(open_.pop().tag.close)
        text_to(span.start)
        if span.tag.kind == "element":
            out.append(span.tag.open)
            open_.append(span)
        else:
            out.append(escape(span.tag.open) if span.tag.kind == "text" else span.tag.open)
    while open_:
        text_to(open_[-1].end)
        out.append(open_.pop().tag.close)
    text_to(len(segment.text))
    return "".join(out)


def _holds(outer: Span, span: Span) -> bool:
    """Whether the open element `outer` holds `span`, listed after it: inside its range, and not a point at its
    end (unless `outer` is empty, when a point there is its content)."""
    inside = outer.start <= span.start and span.end <= outer.end
    return inside and (span.start < outer.end or outer.start == outer.end)
