"""Splitting a sentence too long for the model into chunks it can translate, never dropping a character.

A model translates reliably only up to the length it was trained on, so a longer sentence is cut into
chunks that each fit. The sentence is split into clauses (after `, ; : ! ? —`, a spaced `–`, and the CJK
`， ； ： 、 。 ！ ？`); a clause that alone is too long is halved at the word boundary nearest its middle (a
space, or between two Chinese or Japanese characters; inside one long word, between any two characters)
into pieces of a quarter of the limit. The clauses and pieces are then packed back, in order, into chunks
that fit, choosing among the ways to do so by, in order: the fewest cuts inside a word, the fewest chunks,
the fewest cuts inside a clause, and the smallest largest chunk (balanced).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import accumulate

# Clause punctuation, with closing quotes or brackets after it: Latin marks before a space (not "1,000" or
# "10:30"), a dash that is not a range ("1990–2000"), CJK marks anywhere.
_CLAUSE_END = re.compile(r"(?:[,;:!?](?=\s)|(?<=\s)–(?=\s)|[—―]|[，；：、。！？])[\"'”’»)\]」』）]*")
_UNSPACED_SCRIPT = r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]"  # Han, kana, their punctuation, full-width forms
_WORD_BOUNDARY = re.compile(rf"\s+|(?<={_UNSPACED_SCRIPT})(?={_UNSPACED_SCRIPT})")
GRAIN = 4  # a clause too long for one chunk is cut into pieces of at most limit / GRAIN, so chunks can balance

CLAUSE, WORD, INSIDE_WORD = 0, 1, 2  # where a piece starts: after clause punctuation, a word boundary, mid-word
Piece = tuple[int, int, int, int]  # start, end, `length`, and where it starts (CLAUSE, WORD or INSIDE_WORD)


def split_long(text: str, length: Callable[[str], int], limit: int) -> list[tuple[int, int]]:
    """Character spans of `text`, in order and without surrounding whitespace, whose `length` (e.g. the subword
    count of the model's tokenizer) is each at most `limit`; one span when the whole text fits. Only
    whitespace lies between spans, so no text is lost; a single character longer than `limit` stays whole."""
    if limit < 1:
        raise ValueError(f"`limit` must be >= 1, but is {limit} instead.")
    start, end = len(text) - len(text.lstrip()), len(text.rstrip())
    if start >= end:
        return []
    if length(text[start:end]) <= limit:
        return [(start, end)]
    clauses = _clauses(text, start, end)
    pieces = [piece for left, right in clauses for piece in _pieces(text, left, right, length, limit)]
    return [span for group in _pack(pieces, limit) for span in _checked(text, pieces[group], length, limit)]


def _clauses(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The spans of `text[start:end]` between clause punctuation, without surrounding whitespace."""
    cuts = [start, *(match.end() for match in _CLAUSE_END.finditer(text, start, end)), end]
    spans = []
    for left, right in zip(cuts, cuts[1:], strict=False):
        piece = text[left:right]
        if piece.strip():
            spans.append((left + len(piece) - len(piece.lstrip()), right - len(piece) + len(piece.rstrip())))
    return spans


def _pieces(text: str, start: int, end: int, length: Callable[[str], int], limit: int) -> list[Piece]:
    """A clause as one piece when it fits `limit`, else cut into pieces of at most `limit // GRAIN`."""
    size = length(text[start:end])
    if size <= limit:
        return [(start, end, size, CLAUSE)]
    return _halves(text, start, end, length, max(1, limit // GRAIN), size, CLAUSE)


def _halves(
    text: str, start: int, end: int, length: Callable[[str], int], grain: float, size: float, kind: int
) -> list[Piece]:
    """`text[start:end]` (no surrounding whitespace, starting at a cut of `kind`) halved at the word boundary
    nearest its middle until every piece fits `grain`. `size` is its `length`, or an estimate from its parent's
    in proportion to characters; only the final pieces are measured."""
    if size <= grain or end - start == 1:
        return [(start, end, length(text[start:end]), kind)]
    middle = (start + end) / 2
    boundaries = [match.span() for match in _WORD_BOUNDARY.finditer(text, start + 1, end)]  # not before `start`
    if boundaries:
        (left_end, right_start), cut = min(boundaries, key=lambda cut: abs(cut[0] - middle)), WORD
    else:
        left_end = right_start = round(middle)
        cut = INSIDE_WORD
    per_character = size / (end - start)
    left = _halves(text, start, left_end, length, grain, per_character * (left_end - start), kind)
    return left + _halves(text, right_start, end, length, grain, per_character * (end - right_start), cut)


def _pack(pieces: list[Piece], limit: int) -> list[slice]:
    """Consecutive groups of `pieces` whose summed lengths fit `limit` (a piece longer alone is a group of its
    own), chosen by the fewest that start inside a word, the fewest groups, the fewest that start inside a
    clause and the smallest largest sum, in this order (a shortest-path search over where groups start)."""
    sums = [0, *accumulate(size for _, _, size, _ in pieces)]
    best: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)]  # best[i]: the cost of grouping the first i pieces
    first: list[int] = [0]  # first[i]: where the last group of that grouping starts
    for end in range(1, len(pieces) + 1):
        options = []
        for start in range(end - 1, -1, -1):
            total = sums[end] - sums[start]
            if total > limit and start < end - 1:
                break
            in_words, groups, in_clauses, largest = best[start]
            kind = pieces[start][3] if start else CLAUSE
            cost = (in_words + (kind == INSIDE_WORD), groups + 1, in_clauses + (kind == WORD), max(largest, total))
            options.append((cost, start))
        cost, start = min(options)
        best.append(cost)
        first.append(start)
    groups, end = [], len(pieces)
    while end:
        groups.append(slice(first[end], end))
        end = first[end]
    return groups[::-1]


def _checked(text: str, pieces: list[Piece], length: Callable[[str], int], limit: int) -> list[tuple[int, int]]:
    """The span of a group of pieces, or, where the group's real length exceeds `limit` though the sum of its
    pieces' does not (a tokenizer is not quite additive; the spaces between them may count), the spans of its
    halves."""
    start, end = pieces[0][0], pieces[-1][1]
    if len(pieces) == 1 or length(text[start:end]) <= limit:
        return [(start, end)]
    sums = list(accumulate(size for _, _, size, _ in pieces))
    # The best kind of cut (clause, word, inside a word), and of those the most balanced.
    half = min(range(1, len(pieces)), key=lambda i: (pieces[i][3], abs(sums[i - 1] - sums[-1] / 2)))
    return _checked(text, pieces[:half], length, limit) + _checked(text, pieces[half:], length, limit)
