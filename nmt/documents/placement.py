"""Markup onto a translation: the spans of a source segment moved onto the text that translates it.

`place` follows the model's own alignment, as Bergamot does (the tag-stack approach of Hanneman and Dinu
2020): every target piece inherits the elements around the source piece it attends to most, and an element
covers the range of the target pieces that inherited it. Bergamot may split an element into several copies;
here an element stays one span, always well-formed: its range runs from its first piece to its last, inside
its parent's, and where siblings would overlap, the one with more pieces takes its range first (ties: the
earlier in the source) and the other takes the gap holding most of its pieces. An element left with no piece
becomes empty at its nearest aligned source neighbour; a point goes before the first aligned source piece
after it. Tags are the source's own objects, so attributes pass untouched.

`place_by_substring` is the baseline: the substring search of argos-translate (`argostranslate.tags`, which
LibreTranslate and translate-html use for HTML). For a block whose children are text and tags holding only
text (at most 200 characters), argos translates the block, translates each tag's text alone, and looks the
latter up in the former (`str.find`, case-sensitive); if every one is found and none overlap or touch, each
tag is spliced in where its text was found. Otherwise it gives up on the block: older versions translate each
text run and each tag's text separately (another, worse translation), newer ones leave the block as it was.
A void tag (`<br>`) among the children, or nested tags, also make it give up. The baseline here keeps the
translation being compared and differs where it must or to be fair to argos: the search ignores case and
trailing sentence punctuation the source lacks ("Hund." for "dog"); nested elements are searched inside
their parent's find; an overlap moves on to the next occurrence instead of giving up; an element not found
stays, wrapped around nothing, at the position proportional to its place in the source; points go to the
proportional position too, at the nearest word start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from nmt.documents.protect import is_glued, pad_text_points
from nmt.documents.segment import CharLink, Segment, Span, holders

Range = tuple[int, int]  # (start, end) in the translation; start == end for a point


@dataclass(frozen=True, order=True)
class _Piece:
    """A link without the whitespace at either end of its two ranges: target characters, source characters."""

    start: int
    end: int
    src_start: int
    src_end: int


def place(source: Segment, target: str, links: list[CharLink], pinned: dict[int, int] | None = None) -> Segment:
    """The spans of `source` on its translation `target`, along `links` (each target piece with the source piece
    it attends to most, as character ranges). `pinned`: the target positions of some points and empty elements
    (by index in `source.spans`) known beforehand, e.g. a line break between the translations of its lines.
    Properly nested whatever the links; never raises on odd ones."""
    pinned = pinned or {}
    pieces = _pieces(source.text, target, links)
    spans, parents = source.spans, _parents(source.spans)
    at: dict[int, Range] = {}
    for parent, children in _families(spans, parents):
        region = (0, len(target)) if parent is None else at[parent]
        inside = [p for p in pieces if region[0] <= p.start and p.end <= region[1]]
        at.update(_place_siblings(spans, children, region, inside, pinned))
    for i, span in enumerate(spans):
        if span.tag.kind != "element":
            position = pinned[i] if i in pinned else _point_position(span.start, source.text, pieces, len(target))
            position = _clamp(position, _bounds(at, parents[i]))
            at[i] = (position, position)
    return _assemble(source, target, at, parents)


def place_by_substring(source: Segment, target: str, translate_piece: Callable[[list[str]], list[str]]) -> Segment:
    """The spans of `source` on its translation `target` as argos-translate places them (module docstring): each
    element's text translated alone by `translate_piece` (a batch of strings) and looked up in `target`."""
    spans, parents = source.spans, _parents(source.spans)
    inner = {
        i: source.text[span.start : span.end].strip() for i, span in enumerate(spans) if span.tag.kind == "element"
    }
    texts = list(dict.fromkeys(text for text in inner.values() if text))
    translated = dict(zip(texts, translate_piece(texts), strict=True)) if texts else {}
    at: dict[int, Range] = {}
    for parent, children in _families(spans, parents):
        region = (0, len(target)) if parent is None else at[parent]
        for k in children:
            found = _find(target, translated.get(inner[k], ""), inner[k], region, [at[j] for j in children if j in at])
            position = _clamp(_proportional(spans[k].start, source.text, target), region)
            at[k] = found or (position, position)
    for i, span in enumerate(spans):
        if span.tag.kind != "element":
            position = _clamp(_proportional(span.start, source.text, target), _bounds(at, parents[i]))
            at[i] = (position, position)
    return _assemble(source, target, at, parents)


def _pieces(source: str, target: str, links: list[CharLink]) -> list[_Piece]:
    """The links clipped to both texts and trimmed of whitespace, without those left empty on either side."""
    pieces = set()
    for target_start, target_end, source_start, source_end in links:
        start, end = _trimmed(target, target_start, target_end)
        src_start, src_end = _trimmed(source, source_start, source_end)
        if start < end and src_start < src_end:
            pieces.add(_Piece(start, end, src_start, src_end))
    return sorted(pieces)


def _trimmed(text: str, start: int, end: int) -> Range:
    """`text[start:end]` clipped to the text, without whitespace at either end."""
    start = min(max(start, 0), len(text))
    end = min(max(end, start), len(text))
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _parents(spans: list[Span]) -> list[int | None]:
    """For each span, the innermost element around it. An element is around an element within its range (the
    earlier of two equal ones is outside), and around a point strictly inside it or at its start and listed after
    it; a point at an element's end is outside it unless `held` there, as `render` writes it."""
    held_by = holders(spans)
    parents: list[int | None] = []
    for i, span in enumerate(spans):
        around = [
            k
            for k, other in enumerate(spans)
            if k != i and other.tag.kind == "element" and (_holds(other, k, span, i) or k in held_by.get(i, ()))
        ]
        parents.append(max(around, key=lambda k: (spans[k].start, -spans[k].end, k), default=None))
    return parents


def _holds(outer: Span, k: int, inner: Span, i: int) -> bool:
    """Whether element `outer` (listed at `k`) is around span `inner` (listed at `i`), as `_parents` says."""
    if inner.tag.kind == "element" and inner.end > inner.start:
        same = (outer.start, outer.end) == (inner.start, inner.end)
        return outer.start <= inner.start and inner.end <= outer.end and (not same or k < i)
    return outer.start < inner.start < outer.end or (inner.start == outer.start and k < i)


def _depths(parents: list[int | None]) -> list[int]:
    """How many elements are around each span."""
    depths = []
    for parent in parents:
        depth = 0
        while parent is not None:
            depth, parent = depth + 1, parents[parent]
        depths.append(depth)
    return depths


def _families(spans: list[Span], parents: list[int | None]) -> list[tuple[int | None, list[int]]]:
    """The elements grouped by parent (None: the top level), each parent's group after the group that holds it."""
    families: dict[int | None, list[int]] = {}
    for i, span in enumerate(spans):
        if span.tag.kind == "element":
            families.setdefault(parents[i], []).append(i)
    depths = _depths(parents)
    return sorted(families.items(), key=lambda family: -1 if family[0] is None else depths[family[0]])


def _place_siblings(
    spans: list[Span], children: list[int], region: Range, pieces: list[_Piece], pinned: dict[int, int]
) -> dict[int, Range]:
    """Disjoint ranges inside `region` for sibling elements, from the target `pieces` (those inside `region`)
    whose source piece each one covers; an element left without a piece is empty where it is `pinned`, else at
    its nearest neighbour."""
    own = {k: [p for p in pieces if p.src_start < spans[k].end and spans[k].start < p.src_end] for k in children}
    free, at = [region], {}
    for k in sorted(children, key=lambda k: (-len(own[k]), k)):
        gap, held = max(
            ((gap, [p for p in own[k] if gap[0] <= p.start and p.end <= gap[1]]) for gap in free),
            key=lambda option: len(option[1]),
        )
        if held:
            at[k] = (min(p.start for p in held), max(p.end for p in held))
            free.remove(gap)
            free = sorted([*free, (gap[0], at[k][0]), (at[k][1], gap[1])])
    taken = list(at.values())
    for k in children:
        if k not in at:
            wanted = _clamp(pinned[k], region) if k in pinned else _neighbour_position(spans[k], pieces, region)
            position = _outside(wanted, taken)
            at[k] = (position, position)
    return at


def _neighbour_position(span: Span, pieces: list[_Piece], region: Range) -> int:
    """Where an element without target pieces goes: before the translation of its nearest aligned source
    neighbour after it, or after that of the one before it if nearer; the region's end if there is none."""
    before = [p for p in pieces if p.src_end <= span.start]
    after = [p for p in pieces if p.src_start >= span.end]
    last = max((p.src_end for p in before), default=None)
    first = min((p.src_start for p in after), default=None)
    if first is not None and (last is None or first - span.end <= span.start - last):
        return min(p.start for p in after if p.src_start == first)
    if last is not None:
        return max(p.end for p in before if p.src_end == last)
    return region[1]


def _point_position(at: int, source: str, pieces: list[_Piece], length: int) -> int:
    """Where a point at position `at` of the `source` text goes: before the translation of the first aligned
    source piece not wholly before it; after that of the last one before it when there is none, or when the
    point ends a word (it touches the word before it and whitespace or the end after it) or a line (only spaces
    lie between it and a tab or line break); else at the end."""
    before = [p for p in pieces if p.src_end <= at]
    after = [p for p in pieces if p.src_end > at]
    ends_word = at > 0 and not source[at - 1].isspace() and (at == len(source) or source[at].isspace())
    ends_line = source[at:].lstrip(" ")[:1] in ("\n", "\t")  # a tab or line break ends the text it goes with
    if after and not ((ends_word or ends_line) and before):
        first = min(p.src_start for p in after)
        return min(p.start for p in after if p.src_start == first)
    if before:
        last = max(p.src_end for p in before)
        return max(p.end for p in before if p.src_end == last)
    return length


def _outside(at: int, ranges: list[Range]) -> int:
    """`at`, moved to the nearer edge of any of `ranges` that holds it strictly inside (ties: the end)."""
    for start, end in ranges:
        if start < at < end:
            return start if at - start < end - at else end
    return at


def _bounds(at: dict[int, Range], parent: int | None) -> Range | None:
    """The range of element `parent` in the translation, None for the top level."""
    return None if parent is None else at[parent]


def _clamp(at: int, bounds: Range | None) -> int:
    """`at` moved into `bounds` (inclusive), if given."""
    return at if bounds is None else min(max(at, bounds[0]), bounds[1])


def _find(target: str, translated: str, original: str, region: Range, taken: list[Range]) -> Range | None:
    """The first occurrence of `translated` (without surrounding whitespace, nor a final sentence mark that
    `original` lacks) in `target`, case-insensitive, inside `region` and overlapping none of `taken`."""
    needle = translated.strip()
    if needle and needle[-1] in ".!?。" and not original.endswith(needle[-1]):
        needle = needle[:-1].rstrip()
    if not needle:
        return None
    for match in re.compile(re.escape(needle), re.IGNORECASE).finditer(target, region[0], region[1]):
        if all(match.end() <= start or end <= match.start() for start, end in taken):
            return match.span()
    return None


def _proportional(at: int, source: str, target: str) -> int:
    """The position in `target` as far through it as `at` is through `source`, at the nearest word start (when
    `target` has spaces)."""
    position = round(at * len(target) / len(source)) if source else len(target)
    if not any(char.isspace() for char in target):
        return position
    starts = [
        i
        for i in range(len(target) + 1)
        if i in (0, len(target)) or (target[i - 1].isspace() and not target[i].isspace())
    ]
    return min(starts, key=lambda i: (abs(i - position), i))


def _assemble(source: Segment, target: str, at: dict[int, Range], parents: list[int | None]) -> Segment:
    """The target segment: each source span at its new range, in document order, and a space written around
    each `text` point where the translation needs one (not where the point was glued to words in the source)."""
    spans, depths = source.spans, _depths(parents)
    elements = sorted(
        (k for k, span in enumerate(spans) if span.tag.kind == "element"),
        key=lambda k: (at[k][0], -at[k][1], spans[k].start, depths[k], k),
    )
    keyed = []
    for i, span in enumerate(spans):
        start, end = at[i]
        if span.tag.kind == "element":
            key: tuple = (start, -end, span.start, depths[i], i, 0, span.start, i)
        else:  # just before the first element opening here that was not around it in the source
            around = _ancestors(i, parents)
            k = next((k for k in elements if at[k][0] == start and k not in around), None)
            key = (start, -start, *(4 * [float("inf")]), span.start, i)
            if k is not None:
                key = (start, -at[k][1], spans[k].start, depths[k], k, -1, span.start, i)
        keyed.append((key, i))
    order = [i for _, i in sorted(keyed)]
    glued = {n for n, i in enumerate(order) if is_glued(source.text, spans[i].start)}
    placed = [Span(*at[i], spans[i].tag, _held(i, at, parents)) for i in order]
    return pad_text_points(Segment(target, placed), glued)


def _held(i: int, at: dict[int, Range], parents: list[int | None]) -> int:
    """For a point, how many of the elements around it (in the source) end where it stands in the translation
    with text in them, so that `render` writes it inside them."""
    start, end = at[i]
    if start != end:
        return 0
    return sum(1 for k in _ancestors(i, parents) if at[k][0] < at[k][1] == start)


def _ancestors(i: int, parents: list[int | None]) -> set[int]:
    """The elements around span `i`, through its parents."""
    around, parent = set(), parents[i]
    while parent is not None:
        around.add(parent)
        parent = parents[parent]
    return around
