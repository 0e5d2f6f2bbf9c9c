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

TagKind = Literal["element", "void", "line", "text", "break"]


@dataclass(frozen=True)
class Tag:
    """What a span stands for, written back verbatim by the format's writer.

    `element`: markup around text (`open` `<a href="x">`, `close` `</a>`; for .docx a run's formatting key);
    `void`: markup at a point (`<img src=...>`), `open` only; `line`: a line break (`<br>`), a point that also
    ends a sentence (text on either side is translated apart); `text`: an untranslatable piece of the source
    (a URL, a number, `{name}`), removed from the text before translation and put back verbatim; `break`: a
    boundary the writer splits the translation at (a subtitle cue's end).
    """

    open: str
    close: str = ""
    kind: TagKind = "element"


@dataclass(frozen=True)
class Span:
    """A tag over the characters `text[start:end]` of its segment; an empty span (start == end) is a point.

    `held`, for a point: how many of the non-empty elements ending where it stands hold it, counted from the
    outermost (a piece protected from the end of an element: `<b>step 3</b>`); the inner ones close before it.
    """

    start: int
    end: int
    tag: Tag
    held: int = 0


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
    it, so well-nested spans give well-formed markup; a point at an element's start is written inside it, one
    at its end outside it unless the point is `held` there."""
    out: list[str] = []
    open_: list[int] = []
    position = 0

    def text_to(at: int) -> None:
        nonlocal position
        out.append(escape(segment.text[position : max(at, position)]))
        position = max(at, position)

    def close() -> None:
        text_to(segment.spans[open_[-1]].end)
        out.append(segment.spans[open_.pop()].tag.close)

    for i, span in enumerate(segment.spans):
        keep = _kept(segment.spans, open_, i)
        while len(open_) > keep:
            close()
        text_to(span.start)
        if span.tag.kind == "element":
            out.append(span.tag.open)
            open_.append(i)
        else:
            out.append(escape(span.tag.open) if span.tag.kind == "text" else span.tag.open)
    while open_:
        close()
    text_to(len(segment.text))
    return "".join(out)


def holders(spans: list[Span]) -> dict[int, list[int]]:
    """For each point with `held` > 0 (by index in `spans`), the elements (indices, outermost first) that end
    where it stands and hold it, as `render` writes them."""
    found: dict[int, list[int]] = {}
    open_: list[int] = []
    for i, span in enumerate(spans):
        del open_[_kept(spans, open_, i) :]
        if span.held and span.start == span.end:
            found[i] = [k for k in open_ if spans[k].start < spans[k].end == span.start]
        if span.tag.kind == "element":
            open_.append(i)
    return found


def _kept(spans: list[Span], open_: list[int], i: int) -> int:
    """How many of the `open_` elements (indices into `spans`, outermost first) stay open for `spans[i]`, listed
    after them: those it lies inside, and for a point, the outermost `held` of those ending where it stands."""
    span, ending = spans[i], 0
    for depth, k in enumerate(open_):
        outer = spans[k]
        if _holds(outer, span):
            continue
        if span.start == span.end and outer.start < outer.end == span.start and ending < span.held:
            ending += 1
            continue
        return depth
    return len(open_)


def _holds(outer: Span, span: Span) -> bool:
    """Whether the open element `outer` holds `span`, listed after it: inside its range, and not a point at its
    end (unless `outer` is empty, when a point there is its content)."""
    inside = outer.start <= span.start and span.end <= outer.end
    return inside and (span.start < outer.end or outer.start == outer.end)
