"""Translate segments: untranslatable pieces out, sentences and over-long ones split, all in the same batches,
translations rejoined with the target language's spacing, and markup placed back along the search's alignment.

Every unit the model sees is a sentence (or, for a sentence longer than the training data's longest, a
chunk of one, cut at clause punctuation first), so nothing is decoded at lengths the model never saw and
nothing is truncated. The alignment that places markup is the cross-attention of the search that wrote the
translation (`Translator` with `align`), joined over a segment's units.

Sentences are found in the text as written (untranslatable pieces still in it, so "am 1. Mai" stays one
sentence) and never run across a tab, a line break or a `line` point (`<br>`): tabs and line breaks come
back as written between the translations, a `line` point where the translations of its lines meet.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from nmt.decode.align import CharLink
from nmt.decode.translator import Translation, Translator
from nmt.documents.chunks import split_long
from nmt.documents.placement import place
from nmt.documents.protect import PROTECTED, Range, needs_space, protect_ranges, shift
from nmt.documents.segment import Segment, Span
from nmt.documents.sentences import sentence_separator, split_sentences

_BREAKS = re.compile(r"[\t\n\r\f\v\u2028\u2029]")  # tabs and line breaks: never inside a unit


@dataclass(frozen=True)
class DocumentOptions:
    """How segments become units: sentence splitting, untranslatable kinds, the longest unit, the alignment.

    Args:
        split: split each segment into sentences (`nmt.documents.sentences`); False: one unit per line of a
            segment (still chunked when longer than `max_len`).
        splitter: `rules` (built in) or `sentencex` (the `documents` extra).
        protect: kinds of untranslatable pieces passed through verbatim (`nmt.documents.protect.PROTECTED`).
        max_len: the longest unit in source subword tokens (the training data's `max_len`); None: no chunking.
        align: (method, decoder layer) of the attention that places markup, as `nmt-align` reads it.
    """

    split: bool = True
    splitter: str = "rules"
    protect: tuple[str, ...] = PROTECTED
    max_len: int | None = None
    align: tuple[str, int] = ("attention", -1)


@dataclass(frozen=True)
class Unit:
    """Characters [start, end) of segment `segment`'s protected text, translated as one sentence."""

    segment: int
    start: int
    end: int


@dataclass
class Plan:
    """What translating some segments takes: their protected forms, the units cut from them, each unit's text,
    and whether its translation needs character links (its segment has spans to place)."""

    segments: list[Segment]
    protected: list[Segment]
    units: list[Unit]
    texts: list[str]
    linked: list[bool]


class DocumentTranslator:
    """Translates segments through a `Translator`, in its batches, counting the sentences cut into chunks.

    Args:
        translator: the model and search; its tokenizer counts units' lengths.
        options: see `DocumentOptions`.
        langs: (source, target) language codes, for sentence rules and the spacing between sentences.
    """

    def __init__(self, translator: Translator, options: DocumentOptions, langs: tuple[str, str]) -> None:
        self.translator = translator
        self.options = options
        self.langs = langs
        self.chunked = 0  # sentences longer than `max_len`, translated in chunks
        self.chunks = 0  # the chunks they were cut into
        self._linked = Translator(translator.engine, translator.tokenizer, translator.decode, options.align)
        self._linked.stats = translator.stats  # one count of sentences and tokens for both

    def translate(self, segments: Sequence[Segment]) -> list[Segment]:
        """The translation of each segment, its spans placed on it; an empty segment stays as it is."""
        plan = self.plan(segments)
        found: list[Translation | None] = [None] * len(plan.units)
        for needs_links, translator in ((False, self.translator), (True, self._linked)):
            indices = [i for i, linked in enumerate(plan.linked) if linked == needs_links]
            if not indices:
                continue
            for i, translation in zip(indices, translator.translate([plan.texts[i] for i in indices]), strict=True):
                found[i] = translation
        return self.assemble(plan, [(t.best, t.char_links[0] if t.char_links else []) for t in found if t])

    def plan(self, segments: Sequence[Segment]) -> Plan:
        """The units (sentences and chunks) to translate for these segments, untranslatable pieces taken out."""
        kinds = self.options.protect
        pairs = [protect_ranges(s, kinds) if kinds else (s, []) for s in segments]
        protected = [segment for segment, _ in pairs]
        units = [
            unit
            for i, (segment, (done, removed)) in enumerate(zip(segments, pairs, strict=True))
            for unit in self._units(i, segment, done.text, removed)
        ]
        texts = [protected[u.segment].text[u.start : u.end] for u in units]
        return Plan(list(segments), protected, units, texts, [bool(protected[u.segment].spans) for u in units])

    def assemble(self, plan: Plan, found: Sequence[tuple[str, list[CharLink]]]) -> list[Segment]:
        """The translated segments from each unit's best translation and its character links (`Translation.best`
        and `char_links[0]`; the links are needed only for the units `plan.linked` marks)."""
        by_segment: list[list[tuple[Unit, tuple[str, list[CharLink]]]]] = [[] for _ in plan.segments]
        for unit, translation in zip(plan.units, found, strict=True):
            by_segment[unit.segment].append((unit, translation))
        return [
            self._joined(segment, original, parts)
            for segment, original, parts in zip(plan.protected, plan.segments, by_segment, strict=True)
        ]

    def warn_chunked(self) -> None:
        """One warning counting the sentences longer than the training data's, translated in chunks."""
        if self.chunked:
            print(
                f"warning: {self.chunked} sentence(s) longer than the training data's {self.options.max_len} "
                f"subword tokens were translated in {self.chunks} chunks (cut at clause punctuation first).",
                file=sys.stderr,
            )

    def _sentences(self, segment: Segment) -> list[Range]:
        """The sentences of a segment's text (without `split`, its lines), none across a tab, a line break or a
        `line` point."""
        sentences = []
        for start, end in _lines(segment):
            if self.options.split:
                found = split_sentences(segment.text[start:end], self.langs[0], self.options.splitter)
                sentences += [(start + a, start + b) for a, b in found]
            else:
                sentences.append(_stripped(segment.text, start, end))
        return sentences

    def _units(self, index: int, source: Segment, text: str, removed: list[Range]) -> list[Unit]:
        """The sentences of segment `index`, found in `source` and moved onto its protected `text` (`source.text`
        without the `removed` ranges), each over-long one cut into chunks; those protection left empty dropped."""
        found = _whole_pieces(self._sentences(source), removed)
        sentences = [_stripped(text, shift(a, removed), shift(b, removed)) for a, b in found]
        sentences = [(a, b) for a, b in sentences if a < b]
        limit = self.options.max_len
        if limit is None:
            return [Unit(index, start, end) for start, end in sentences]
        lengths = [len(ids) for ids in self.translator.tokenizer.encode_src([text[a:b] for a, b in sentences])]
        units = []
        for (start, end), length in zip(sentences, lengths, strict=True):
            if length <= limit:
                units.append(Unit(index, start, end))
                continue
            chunks = split_long(text[start:end], self._length, limit)
            self.chunked, self.chunks = self.chunked + 1, self.chunks + len(chunks)
            units += [Unit(index, start + a, start + b) for a, b in chunks]
        return units

    def _length(self, text: str) -> int:
        return len(self.translator.tokenizer.encode_src([text])[0])

    def _joined(
        self, source: Segment, original: Segment, parts: list[tuple[Unit, tuple[str, list[CharLink]]]]
    ) -> Segment:
        """One segment's unit translations joined, with the spans of `source` (its protected form) placed."""
        if not parts:  # nothing to translate: whitespace, or markup alone
            return original
        target, links, gaps = self._concatenated(source, parts)
        if not source.spans:
            return Segment(target)
        return place(source, target, word_links(target, links), _pinned(source, gaps))

    def _concatenated(
        self, source: Segment, parts: list[tuple[Unit, tuple[str, list[CharLink]]]]
    ) -> tuple[str, list[CharLink], list[Gap]]:
        """The unit translations joined by their separators, their links moved onto the joined text, and the gaps
        before, between and after the units."""
        texts, links, gaps, offset, previous_end = [], [], [], 0, 0
        for unit, (text, unit_links) in parts:
            first = not texts
            separator = "" if first else self._separator(source, previous_end, unit.start)
            gaps.append(_gap(source, previous_end, unit.start, offset, None if first else separator))
            texts += [separator, text]
            links += [_moved(link, offset + len(separator), unit.start) for link in unit_links]
            offset += len(separator) + len(text)
            previous_end = unit.end
        gaps.append(_gap(source, previous_end, len(source.text), offset, None))
        return "".join(texts), links, gaps

    def _separator(self, source: Segment, start: int, end: int) -> str:
        """What goes between the translations of two units with `source.text[start:end]` between them: at a tab
        or a line break, the whitespace as written; at a `line` point, nothing if there was nothing; else the
        target language's space between sentences."""
        gap = source.text[start:end]
        if _boundary(source, start, end) is not None and (gap.strip(" ") or not gap):
            return gap
        return sentence_separator(self.langs[1])


@dataclass(frozen=True)
class Gap:
    """Whitespace around units: `source.text[start:end]`, written as `separator` from `at` in the translation
    (None at the edges, where nothing is written); `boundary`: where its first tab, line break or `line` point
    is, if any."""

    start: int
    end: int
    at: int
    separator: str | None
    boundary: int | None


def _gap(source: Segment, start: int, end: int, at: int, separator: str | None) -> Gap:
    """The gap `source.text[start:end]`, written as `separator` from `at`, with its boundary found."""
    return Gap(start, end, at, separator, _boundary(source, start, end))


def _boundary(source: Segment, start: int, end: int) -> int | None:
    """Where the first tab, line break or `line` point lies in `source.text[start:end]` (a `line` point at
    either end counts), None if there is none."""
    found = [match.start() for match in _BREAKS.finditer(source.text, start, end)]
    found += [span.start for span in source.spans if span.tag.kind == "line" and start <= span.start <= end]
    return min(found, default=None)


def _pinned(source: Segment, gaps: list[Gap]) -> dict[int, int]:
    """Translation positions of the points and elements (by index in `source.spans`) that lie in gaps (so hold
    no words): each `line` point, and any other strictly inside a gap that a tab, line break or `line` point
    cuts (see `_in_gap`)."""
    pinned = {}
    for i, span in enumerate(source.spans):
        gap = next((gap for gap in gaps if gap.start <= span.start and span.end <= gap.end), None)
        if gap is None:
            continue
        if span.tag.kind == "line" or (gap.boundary is not None and gap.start < span.start < gap.end):
            pinned[i] = _in_gap(gap, span, source.text)
    return pinned


def _in_gap(gap: Gap, span: Span, text: str) -> int:
    """Where `span`, in a cut `gap` of `text`, goes in the translation: at its own place in a gap written as it
    was; else at the end of the translation before the gap if it comes before the boundary, at the start of
    the one after if it is the boundary (a `line` point) or after it."""
    if gap.separator is None:  # before the first unit or after the last
        return gap.at
    if gap.separator == text[gap.start : gap.end]:
        return gap.at + span.start - gap.start
    after = span.tag.kind == "line" or span.start > gap.boundary
    return gap.at + len(gap.separator) if after else gap.at


def _whole_pieces(sentences: list[Range], removed: list[Range]) -> list[Range]:
    """`sentences` with those joined that a `removed` range (a protected piece) runs across ("`make. Then`")."""
    joined: list[Range] = []
    for start, end in sentences:
        if joined and any(a < joined[-1][1] and start < b for a, b in removed):
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


def _lines(segment: Segment) -> list[Range]:
    """The stretches of a segment's text between its hard boundaries: tabs, line breaks and `line` points (each
    stretch after a tab or line break starts with it)."""
    cuts = {match.start() for match in _BREAKS.finditer(segment.text)}
    cuts |= {span.start for span in segment.spans if span.tag.kind == "line"}
    bounds = [0, *sorted(cuts - {0, len(segment.text)}), len(segment.text)]
    return list(zip(bounds, bounds[1:], strict=False))


def _stripped(text: str, start: int, end: int) -> Range:
    """`text[start:end]` without whitespace at either end, as (start, end); empty where only whitespace."""
    piece = text[start:end]
    left = start + len(piece) - len(piece.lstrip())
    return left, max(left, start + len(piece.rstrip()))


def word_links(target: str, links: list[CharLink]) -> list[CharLink]:
    """Links of whole words: the pieces of one word ("▁kauf" "en") become one link, with the source piece of its
    first piece, so markup never cuts a word in two. Pieces join where letters or digits of a script written
    with spaces meet without a space between; in Chinese or Japanese each piece stays its own."""
    words: list[CharLink] = []
    for link in sorted(links):
        if words and _inside_word(target, words[-1][1], link[0]):
            t0, _, s0, s1 = words[-1]
            words[-1] = (t0, link[1], s0, s1)
        else:
            words.append(link)
    return words


def _inside_word(text: str, end: int, start: int) -> bool:
    """Whether a piece ending at `end` and the next starting at `start` are parts of one word of `text`."""
    if end != start or not 0 < start < len(text):
        return False
    return needs_space(text[start - 1]) and needs_space(text[start])  # letters or digits of a spaced script


def _moved(link: CharLink, target_offset: int, source_offset: int) -> CharLink:
    """A unit's link as a link of its whole segment."""
    t0, t1, s0, s1 = link
    return (t0 + target_offset, t1 + target_offset, s0 + source_offset, s1 + source_offset)
