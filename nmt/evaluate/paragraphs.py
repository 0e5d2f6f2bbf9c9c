"""Test set (a) for sentence splitting: paragraphs of consecutive test sentences with known boundaries, and the
precision, recall and F1 of the sentence boundaries a splitter finds in them.

A test sentence is one line of a sentence-aligned test set (Multi30k, Tatoeba). Only lines that are one
whole sentence serve: a line without a final terminator leaves no trace of its end in running text
("... a white fence A man runs."), and a Tatoeba line of two sentences ("她可能是护士。我不太肯定。") has a
boundary inside it that the line does not mark.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from nmt.documents.sentences import sentence_separator

_ENDS_SENTENCE = re.compile(r"[.!?…。！？]['\"”’»)\]」』）]*$")
_CJK_TERMINATOR_INSIDE = re.compile(r"[。！？][\"'”’」』）]*[^\"'”’」』）]")  # with text after it


@dataclass(frozen=True)
class Paragraph:
    """Sentences joined into one text; `sentences` holds their spans [start, end) in `text`."""

    text: str
    sentences: list[tuple[int, int]]

    @property
    def boundaries(self) -> set[int]:
        """The offsets where one sentence ends and another follows."""
        return _boundaries(self.sentences)


def single_sentences(lines: list[str]) -> list[str]:
    """The lines that hold exactly one sentence as far as can be told without a splitter: those ending in a
    terminator (and closing quotes) and without a CJK terminator that more text follows."""
    return [line for line in lines if _ENDS_SENTENCE.search(line) and not _CJK_TERMINATOR_INSIDE.search(line)]


def make_paragraphs(sentences: list[str], seed: int, low: int = 2, high: int = 16, lang: str = "en") -> list[Paragraph]:
    """Consecutive `sentences` grouped into paragraphs of `low` to `high` sentences (a number drawn uniformly per
    paragraph with `seed`), joined with `lang`'s sentence separator. A last group shorter than `low` is left out."""
    if not 1 <= low <= high:
        raise ValueError(f"`low` must be between 1 and `high` ({high}), but is {low} instead.")
    rng = random.Random(seed)
    separator = sentence_separator(lang)
    paragraphs = []
    position = 0
    while position + low <= len(sentences):
        group = sentences[position : position + rng.randint(low, high)]
        position += len(group)
        spans, offset = [], 0
        for sentence in group:
            spans.append((offset, offset + len(sentence)))
            offset += len(sentence) + len(separator)
        paragraphs.append(Paragraph(separator.join(group), spans))
    return paragraphs


def boundary_f1(predicted: list[list[tuple[int, int]]], paragraphs: list[Paragraph]) -> dict[str, float]:
    """Precision, recall and F1 (in percent) of the internal sentence boundaries of `predicted` (a splitter's
    sentence spans per paragraph) against the paragraphs' own, pooled over all paragraphs; `boundaries` is the
    number of true ones. With nothing to find or nothing found, the empty side counts as 100."""
    if len(predicted) != len(paragraphs):
        wanted = len(paragraphs)
        raise ValueError(f"`predicted` must have one entry per paragraph ({wanted}), but has {len(predicted)} instead.")
    found = true = hits = 0
    for spans, paragraph in zip(predicted, paragraphs, strict=True):
        guessed, gold = _boundaries(spans), paragraph.boundaries
        found, true, hits = found + len(guessed), true + len(gold), hits + len(guessed & gold)
    precision = 100.0 * hits / found if found else 100.0
    recall = 100.0 * hits / true if true else 100.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "boundaries": true}


def _boundaries(spans: list[tuple[int, int]]) -> set[int]:
    """The end of every sentence but the last: where a new sentence follows."""
    return {end for _, end in spans[:-1]}
