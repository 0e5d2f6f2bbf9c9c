"""Translate segments: untranslatable pieces out, sentences and over-long ones split, all in the same batches,
translations rejoined with the target language's spacing, and markup placed back along the search's alignment.

Every unit the model sees is a sentence (or, for a sentence longer than the training data's longest, a
chunk of one, cut at clause punctuation first), so nothing is decoded at lengths the model never saw and
nothing is truncated. The alignment that places markup is the cross-attention of the search that wrote the
translation (`Translator` with `align`), joined over a segment's units.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from nmt.decode.align import CharLink
from nmt.decode.translator import Translation, Translator
from nmt.documents.chunks import split_long
from nmt.documents.placement import place
from nmt.documents.protect import PROTECTED, needs_space, protect
from nmt.documents.segment import Segment
from nmt.documents.sentences import sentence_separator, split_sentences


@dataclass(frozen=True)
class DocumentOptions:
    """How segments become units: sentence splitting, untranslatable kinds, the longest unit, the alignment.

    Args:
        split: split each segment into sentences (`nmt.documents.sentences`); False: one unit per segment
            (still chunked when longer than `max_len`).
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
        protected = [protect(s, self.options.protect) if self.options.protect else s for s in segments]
        units = [unit for i, segment in enumerate(protected) for unit in self._units(i, segment.text)]
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

    def _units(self, index: int, text: str) -> list[Unit]:
        """The sentences of one segment's text, each over-long one cut into chunks."""
        if not text.strip():
            return []
        if self.options.split:
            sentences = split_sentences(text, self.langs[0], self.options.splitter)
        else:
            start = len(text) - len(text.lstrip())
            sentences = [(start, len(text.rstrip()))]
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
        separator = sentence_separator(self.langs[1])
        texts, links, offset = [], [], 0
        for unit, (text, unit_links) in parts:
            for link in unit_links:
                links.append(_moved(link, offset, unit.start))
            texts.append(text)
            offset += len(text) + len(separator)
        target = separator.join(texts)
        if not source.spans:
            return Segment(target)
        return place(source, target, word_links(target, links))


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
