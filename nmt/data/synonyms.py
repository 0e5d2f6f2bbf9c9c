"""Source-side near-synonym replacement: training sources with words swapped for interchangeable ones, drawn
afresh every epoch; the target is left alone, so the pair stays a correct translation.

A synonym file holds one set of interchangeable words per line (whitespace-separated, single words; `#` starts
a comment), e.g. as `scripts/build_synonyms.py` writes them from WordNet's synsets. Words are matched on the
source's subwords: a word is its own encoding (`▁dog`), found where a word starts and ends (the next piece does
not go on the word: `▁dog ,` matches, `▁dog s` does not), lower case only. A word in several sets may become any
other member of them. A replacement is allowed only when it occurs at least `min_count` times in the training
sources, so rare or odd senses do not enter. No part-of-speech tagger is used: a set's words share a part of
speech in WordNet, but the sentence's word is not tagged in context.

Each occurrence is replaced with probability `rate`; every draw is a pure function of (seed, epoch, pair,
position) (`nmt.augment.uniform`), so a resumed run draws exactly what the uninterrupted one did.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt.config import AugmentConfig
from nmt.data.augment import uniform
from nmt.data.batching import Batch
from nmt.data.corpus import CorpusError, iter_lines
from nmt.data.tokenizer import EOS_ID, PAD_ID, Tokenizer

_FIND, _PICK = 64, 65  # streams of `uniform`: whether to replace, which synonym


def read_synonym_sets(path: str | Path) -> list[list[str]]:
    """The sets of a synonym file (see the module docstring), each with at least two distinct words.

    Raises:
        CorpusError: the file cannot be read, or a line holds a single word (named with file and line).
    """
    sets = []
    for number, line in enumerate(iter_lines(path), start=1):
        words = list(dict.fromkeys(line.split("#", 1)[0].split()))
        if len(words) == 1:
            raise CorpusError(
                f"file {path}, line {number}: a synonym set needs two words or more, but has {words[0]!r}."
            )
        if words:
            sets.append(words)
    return sets


@dataclass(frozen=True)
class SynonymTable:
    """Synonym sets as source ids: each word's pieces, the words each may become, and which pieces go on a word.

    Attributes:
        words: each usable word's pieces -> the pieces of the words it may become (at least one).
        by_first: a first piece -> the usable words starting with it, longest first.
        joins: per source id, whether the piece goes on the word before it (no "▁", starts with a letter or digit).
    """

    words: dict[tuple[int, ...], list[tuple[int, ...]]]
    by_first: dict[int, list[tuple[int, ...]]]
    joins: list[bool]

    @classmethod
    def build(
        cls, sets: Sequence[Sequence[str]], tokenizer: Tokenizer, sources: Iterable[Sequence[int]], min_count: int
    ) -> SynonymTable:
        """The table of `sets` for `tokenizer`'s source side; a replacement needs `min_count` occurrences in the
        training `sources` (id lists)."""
        pieces = tokenizer.src_pieces()
        joins = [not p.startswith("▁") and p[:1].isalnum() for p in pieces]
        encoded = {w: tuple(ids) for w, ids in zip(*_encoded(sets, tokenizer), strict=True)}
        first: dict[int, list[tuple[int, ...]]] = {}
        for ids in set(encoded.values()):
            first.setdefault(ids[0], []).append(ids)
        for options in first.values():
            options.sort(key=len, reverse=True)
        counts = Counter(found for row in sources for _, found in _matches(list(row), first, joins))
        words: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
        for group in sets:
            members = [encoded[w] for w in group if w.islower() and encoded[w]]
            for word in members:
                others = [m for m in members if m != word and counts[m] >= min_count]
                words.setdefault(word, [])
                words[word] += [m for m in others if m not in words[word]]
        words = {w: o for w, o in words.items() if o}
        by_first = {t: [w for w in options if w in words] for t, options in first.items()}
        return cls(words, {t: o for t, o in by_first.items() if o}, joins)


def synonym_table(
    augment: AugmentConfig, tokenizer: Tokenizer, sources: Iterable[Sequence[int]]
) -> SynonymTable | None:
    """The table of `augment.synonyms` (None when unset) for the training `sources`."""
    if augment.synonyms is None:
        return None
    sets = read_synonym_sets(augment.synonyms)
    return SynonymTable.build(sets, tokenizer, sources, augment.synonym_min_count)


def replace_synonyms(batch: Batch, table: SynonymTable, rate: float, seed: int, epoch: int) -> Batch:
    """`batch` with its sources' words replaced as the module docstring says (the targets untouched).

    The batch keeps its shape: it was cut to the token budget on the lengths before replacement, so a replacement
    that would make its row longer than the batch is wide (`src.size(1) - 1` ids before the EOS) is not made.
    """
    if batch.index is None:
        raise ValueError("synonyms are drawn per pair: the batch needs `index`.")
    rows = [[t for t in row if t not in (PAD_ID, EOS_ID)] for row in batch.src.tolist()]
    width = batch.src.size(1)
    positions = torch.arange(width).view(1, -1)
    pairs = batch.index.view(-1, 1).long()
    replace = (uniform(seed, epoch, pairs, positions, _FIND) < rate).tolist()
    pick = uniform(seed, epoch, pairs, positions, _PICK).tolist()
    new_rows = [
        _replaced(row, replace_at, picks, table, width - 1)
        for row, replace_at, picks in zip(rows, replace, pick, strict=True)
    ]
    if new_rows == rows:
        return batch
    src = torch.full_like(batch.src, PAD_ID)  # [B, S] as before
    for i, row in enumerate(new_rows):
        src[i, : len(row) + 1] = torch.tensor(row + [EOS_ID])
    return dataclasses.replace(batch, src=src, src_tokens=sum(len(r) + 1 for r in new_rows))


def _replaced(row: list[int], replace_at: list[bool], picks: list[float], table: SynonymTable, limit: int) -> list[int]:
    """`row` with the drawn words replaced (`replace_at`, `picks`: per position), except any replacement that
    would make it longer than `limit` ids."""
    out, last, length = [], 0, len(row)
    for start, word in _matches(row, table.by_first, table.joins):
        if not replace_at[start]:
            continue
        options = table.words[word]
        synonym = options[int(picks[start] * len(options))]
        if length + len(synonym) - len(word) > limit:
            continue
        out += row[last:start] + list(synonym)
        last, length = start + len(word), length + len(synonym) - len(word)
    return out + row[last:]


def _encoded(sets: Sequence[Sequence[str]], tokenizer: Tokenizer) -> tuple[list[str], list[list[int]]]:
    words = sorted({w for group in sets for w in group})
    return words, tokenizer.encode_src(words)


def _matches(row: list[int], by_first: dict[int, list[tuple[int, ...]]], joins: list[bool]):
    """(position, word) of every table word in `row`, left to right, not overlapping, whole words only."""
    i = 0
    while i < len(row):
        for word in by_first.get(row[i], ()):
            end = i + len(word)
            if tuple(row[i:end]) == word and (end == len(row) or not joins[row[end]]):
                yield i, word
                i = end
                break
        else:
            i += 1
