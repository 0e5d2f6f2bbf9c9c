"""Untranslatable pieces: URLs, e-mail addresses, numbers, placeholders and inline code kept away from the model.

`protect` removes each such piece from a segment's text and records it as a `text` point (`Span(p, p,
Tag(piece, kind="text"))`), so the model translates only the words around it and the piece comes back
verbatim wherever `nmt.documents.placement` puts the point. Of the two single spaces around a removed piece
one goes too, on the side of a word, so the point stays with that word ("x {a} y" -> "x y", point before
"y"). `pad_text_points` writes a space between a point and a word where the text needs one; on the protected
text itself it gives the original back, except beside a piece written against a word on one side only
("Zoom {n}x" comes back as "Zoom {n} x").

A match is left to the model where a span edge (an element's start or end, a point) lies strictly inside it,
so no markup is lost; a run of pieces with only spaces between them (and no span edge) is one point.
A piece that ends an element holding more text leaves its point `held` at the element's end, so it stays
inside ("<b>step 3</b>"); a space that a point or such an edge separates from a piece always stays.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import replace

from nmt.data.words import UNSPACED
from nmt.documents.segment import Segment, Span, Tag, holders

Range = tuple[int, int]  # (start, end) in a segment's text

PROTECTED = ("url", "email", "number", "placeholder", "code")
_PRIORITY = ("code", "url", "email", "placeholder", "number")  # an earlier kind wins an overlap (a number in a URL)
_PATTERNS = {
    "code": re.compile(r"``[^`\n]+?``|`[^`\n]+`"),
    # The end is trimmed by `_url_end`: sentence punctuation and unbalanced closing brackets are not the URL's.
    "url": re.compile(r"\b(?:(?:https?|ftp)://|www\.|mailto:)[^\s<>\"]+", re.IGNORECASE),
    "email": re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    # {{x}}, ${x}, {name}, $VAR, printf's %s %d %5.2f %(name)s (not the "%" of "10%", nor "% of").
    "placeholder": re.compile(
        r"\{\{[^{}\n]*\}\}|\$\{[^{}\s]*\}|\{[^{}\s]*\}|\$[A-Za-z_]\w*"
        r"|(?<![\d%])%(?:\(\w+\))?[-+#0]*\d*(?:\.\d+)?[sdifFeEgGxXoc](?![A-Za-z])"
    ),
    # 3, -3.5, 1,000, 10%, 2024-05-01, 10:30, +49 30 1234; not the digits of a word ("COVID-19", "3rd", "5kg").
    "number": re.compile(r"(?<![\w.,:/+-])(?:\+\d+(?:[ \u00a0-]\d+)*|[+-]?\d+(?:[.,:/-]\d+)*%?)(?![.,:/-]?\w)"),
}


def protect(segment: Segment, kinds: Collection[str] = PROTECTED) -> Segment:
    """`segment` with every piece of the given kinds (see `PROTECTED`) taken out of its text and kept as a `text`
    point where it was; the other spans keep their place in the shorter text. Raises ValueError on unknown kinds."""
    return protect_ranges(segment, kinds)[0]


def protect_ranges(segment: Segment, kinds: Collection[str] = PROTECTED) -> tuple[Segment, list[Range]]:
    """`protect(segment, kinds)`, and the ranges of `segment.text` cut out of it (sorted, disjoint; `shift`
    maps an offset of `segment.text` to the protected text). A point that a piece leaves at the end of an
    element holding it is `held` there, so it stays inside ("<b>step 3</b>"). Raises ValueError on unknown
    kinds."""
    unknown = sorted(set(kinds) - set(PROTECTED))
    if unknown:
        names = ", ".join(repr(kind) for kind in unknown)
        raise ValueError(f"`kinds` must be among {', '.join(PROTECTED)}, but has {names} instead.")
    text = segment.text
    edges = sorted({edge for span in segment.spans for edge in (span.start, span.end)})
    pieces = _runs(text, [m for m in _matches(text, kinds) if not _cuts(m, edges)], edges)
    removed = _removals(text, pieces, [_kept_sides(segment.spans, piece) for piece in pieces])
    # Document order: the spans as they were, each new point after those that start where its piece did.
    keyed = [((span.start, 0, i), _moved(span, removed)) for i, span in enumerate(segment.spans)]
    for i, (start, end) in enumerate(pieces):
        at = shift(start, removed)
        held = _held(segment.spans, (start, end), removed)
        keyed.append(((start, 1, i), Span(at, at, Tag(text[start:end], kind="text"), held)))
    spans = [span for _, span in sorted(keyed, key=lambda item: item[0])]
    return Segment(_cut(text, removed), spans), removed


def _held(spans: list[Span], piece: Range, removed: list[Range]) -> int:
    """How many of the elements holding `piece` end where its point lands once the `removed` ranges are cut
    out, and still hold text there."""
    at = shift(piece[0], removed)
    return sum(
        1
        for span in spans
        if span.tag.kind == "element"
        and span.start <= piece[0]
        and piece[1] <= span.end
        and shift(span.start, removed) < shift(span.end, removed) == at
    )


def pad_text_points(segment: Segment, glued: Collection[int] | None = None) -> Segment:
    """`segment` with a space written between each `text` point and a neighbouring letter or digit of a script
    written with spaces, where no whitespace separates them. `glued`: indices (in `segment.spans`) of points to
    leave as they are; by default those with no whitespace on either side in `segment.text`."""
    text, spans = segment.text, segment.spans
    if glued is None:
        glued = {i for i, span in enumerate(spans) if span.tag.kind == "text" and is_glued(text, span.start)}
    last: dict[int, int] = {}  # position -> list index of the last text point there to pad
    for i, span in enumerate(spans):
        if span.tag.kind == "text" and i not in glued:
            last[span.start] = i
    spaces = []  # (position, rank): the spans there listed after `rank` go after the space
    for at, index in sorted(last.items()):
        if at > 0 and (needs_space(text[at - 1]) or text[at - 1] in _ENDS_CLAUSE):
            spaces.append((at, -1.0))
        if at < len(text) and needs_space(text[at]):
            spaces.append((at, index + 0.5))
    if not spaces:
        return Segment(text, list(spans))
    parts, previous = [], 0
    for at, _ in spaces:
        parts += [text[previous:at], " "]
        previous = at
    parts.append(text[previous:])
    holding = {k for held_by in holders(spans).values() for k in held_by}  # they move with the point they hold
    moved = [
        replace(
            span,
            start=_padded(span.start, i, False, spaces),
            end=_padded(span.end, i, span.tag.kind == "element" and span.end > span.start and i not in holding, spaces),
        )
        for i, span in enumerate(spans)
    ]
    return Segment("".join(parts), moved)


def is_glued(text: str, at: int) -> bool:
    """Whether a point at position `at` of `text` is written against words: no whitespace on either side."""
    return 0 < at < len(text) and not text[at - 1].isspace() and not text[at].isspace()


def _matches(text: str, kinds: Collection[str]) -> list[Range]:
    """Character ranges of the pieces to protect, in order; where two overlap, the kind earlier in `_PRIORITY`."""
    taken: list[Range] = []
    for kind in _PRIORITY:
        if kind not in kinds:
            continue
        for match in _PATTERNS[kind].finditer(text):
            start, end = match.span()
            if kind == "url":
                end = _url_end(text, start, end)
            if start < end and all(end <= s or e <= start for s, e in taken):
                taken.append((start, end))
    return sorted(taken)


def _url_end(text: str, start: int, end: int) -> int:
    """The end of the URL at `text[start:end]` without trailing sentence punctuation or unbalanced brackets."""
    while end > start:
        last = text[end - 1]
        pair = {")": "(", "]": "[", "}": "{"}.get(last)
        if last in ".,;:!?'\"*" or (pair and text.count(pair, start, end) < text.count(last, start, end)):
            end -= 1
        else:
            return end
    return end


def _cuts(match: Range, edges: list[int]) -> bool:
    """Whether a span edge lies strictly inside `match` (taking it out would cut an element or move a point)."""
    return any(match[0] < edge < match[1] for edge in edges)


def _runs(text: str, matches: list[Range], edges: list[int]) -> list[Range]:
    """`matches` with each run separated only by spaces, and by no span edge, joined into one."""
    runs: list[Range] = []
    for start, end in matches:
        if runs:
            gap = (runs[-1][1], start)
            if not text[gap[0] : gap[1]].strip(" \u00a0") and not any(gap[0] <= edge <= gap[1] for edge in edges):
                runs[-1] = (runs[-1][0], end)
                continue
        runs.append((start, end))
    return runs


def _kept_sides(spans: list[Span], piece: Range) -> tuple[bool, bool]:
    """Whether the space before (after) `piece` must stay, so that its point goes with the words on its side of a
    span edge: a point lies at either end of that space (`<br>`), or an element holding more text than the
    piece starts (ends) with it ("<b>step 3</b> first": the point goes with "step")."""
    start, end = piece
    points = {span.start for span in spans if span.start == span.end and span.tag.kind != "element"}
    elements = [span for span in spans if span.tag.kind == "element"]
    before = bool(points & {start - 1, start}) or any(s.start == start and s.end > end for s in elements)
    after = bool(points & {end, end + 1}) or any(s.end == end and s.start < start for s in elements)
    return before, after


def _removals(text: str, pieces: list[Range], kept: list[tuple[bool, bool]]) -> list[Range]:
    """The ranges to cut out: each piece and, where it stood between two single spaces (or a space and the text's
    end), the one on the side of a word, so the model sees one space and `pad_text_points` can restore both:
    the space after it when a word follows (the point then goes with that word), else the one before it; never
    a space that `kept` (for each piece, see `_kept_sides`) says stays."""
    removed: list[Range] = []
    last = ""  # the last two characters kept before the previous cut's end
    for (start, end), (keep_before, keep_after) in zip(pieces, kept, strict=True):
        previous_end = removed[-1][1] if removed else 0
        left = (last + text[previous_end:start])[-2:].rjust(2, "\0")  # "\0": before the text's start
        right = text[end : end + 2].ljust(2, "\0")  # "\0": past its end
        if right[0] == " " and needs_space(right[1]) and _lone_space(left[::-1]) and not keep_after:
            end += 1
        elif (
            left[1] == " " and needs_space(left[0]) and _lone_space(right) and start > previous_end and not keep_before
        ):
            start -= 1
        last = (last + text[previous_end:start])[-2:]
        removed.append((start, end))
    return removed


def _lone_space(chars: str) -> bool:
    """Whether `chars` (the two characters on one side of a piece, nearest first) start with a single space, or
    with the text's edge."""
    return chars[0] == "\0" or (chars[0] == " " and not chars[1].isspace())


def _cut(text: str, removed: list[Range]) -> str:
    """`text` without the `removed` ranges (sorted, disjoint)."""
    ends = [0] + [end for _, end in removed]
    starts = [start for start, _ in removed] + [len(text)]
    return "".join(text[end:start] for end, start in zip(ends, starts, strict=True))


def _moved(span: Span, removed: list[Range]) -> Span:
    """`span` over the text with the `removed` ranges cut out."""
    return replace(span, start=shift(span.start, removed), end=shift(span.end, removed))


def shift(offset: int, removed: list[Range]) -> int:
    """Where `offset` of the text lands once the `removed` ranges (sorted, disjoint) are cut out."""
    cut = 0
    for start, end in removed:
        if offset >= end:
            cut += end - start
        elif offset > start:
            return offset - cut - (offset - start)
        else:
            break
    return offset - cut


_ENDS_CLAUSE = ".,;:!?)]}»”"  # a point after these in a spaced script gets a space ("Äpfel. https://...")


def needs_space(char: str) -> bool:
    """Whether a piece put next to `char` needs a space: a letter or digit of a script written with spaces."""
    return char.isalnum() and not UNSPACED.match(char)


def _padded(offset: int, index: int, closes: bool, spaces: list[tuple[int, float]]) -> int:
    """`offset` of span `index` once the `spaces` are written: it moves past those before it, and past those at
    its own position unless it closes a non-empty element there or is listed before the space's rank."""
    return offset + sum(1 for at, rank in spaces if at < offset or (at == offset and not closes and index > rank))
