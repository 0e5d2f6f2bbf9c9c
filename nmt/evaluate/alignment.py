"""Word alignments as sets of links, their Pharaoh text format, and alignment error rate (Och and Ney 2003).

A link (i, j) joins source word i and target word j, 0-indexed. Gold alignments mark each link sure
(`i-j`) or possible (`ipj`); the possible set P includes the sure set S. For predicted links A, summed
over the corpus:

    precision = |A ∩ P| / |A|      recall = |A ∩ S| / |S|      AER = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt.data.corpus import CorpusError, iter_lines
from nmt.decode.align import Link

_LINK = re.compile(r"(\d+)([-p])(\d+)")


@dataclass(frozen=True)
class GoldAlignment:
    """The gold links of one sentence pair: `possible` holds the sure links too."""

    sure: frozenset[Link]
    possible: frozenset[Link]


@dataclass(frozen=True)
class AlignmentScores:
    """Corpus-level precision, recall and AER of predicted links against gold ones (fractions, not %)."""

    precision: float
    recall: float
    aer: float
    sentences: int


def parse_links(text: str, one_indexed: bool = False, where: str = "links") -> GoldAlignment:
    """Links of one line, `i-j` (sure) or `ipj` (possible), space-separated, as 0-indexed sets.

    Raises:
        CorpusError: a token that is not a link, or position 0 in 1-indexed text; `where` names the place.
    """
    sure: set[Link] = set()
    possible: set[Link] = set()
    for token in text.split():
        match = _LINK.fullmatch(token)
        if match is None:
            raise CorpusError(f"{where}: {token!r} is not a link (expected i-j or ipj).")
        i, j = int(match.group(1)) - one_indexed, int(match.group(3)) - one_indexed
        if i < 0 or j < 0:
            raise CorpusError(f"{where}: {token!r} has position 0, but the links are 1-indexed.")
        possible.add((i, j))
        if match.group(2) == "-":
            sure.add((i, j))
    return GoldAlignment(frozenset(sure), frozenset(possible))


def read_alignments(path: str | Path, one_indexed: bool = False) -> list[GoldAlignment]:
    """Every line of a links file (Pharaoh format; `p` marks possible links), naming file and line on errors."""
    return [
        parse_links(line, one_indexed, f"{path}, line {number}")
        for number, line in enumerate(iter_lines(path), start=1)
    ]


def check_gold_fits(
    gold: Sequence[GoldAlignment], pairs: Sequence[tuple[str, str]], path: str | Path, one_indexed: bool
) -> None:
    """Refuse gold links past their pair's words (whitespace-separated), naming the file and line: a links file
    read with the wrong indexing would otherwise shift every link and score a wrong AER without a word."""
    for number, (reference, (src, tgt)) in enumerate(zip(gold, pairs, strict=True), start=1):
        words = (len(src.split()), len(tgt.split()))
        past = sorted(link for link in reference.possible if link[0] >= words[0] or link[1] >= words[1])
        if past:
            i, j = past[0]
            hint = "" if one_indexed else " (are the links 1-indexed? set gold_one_indexed=true)"
            raise CorpusError(
                f"{path}, line {number}: link {i + one_indexed}-{j + one_indexed} is past the pair's {words[0]} "
                f"source and {words[1]} target words{hint}."
            )


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """`source ||| target` lines (fast_align's format), naming file and line on a line without the separator."""
    pairs = []
    for number, line in enumerate(iter_lines(path), start=1):
        parts = line.split(" ||| ") if " ||| " in line else line.split("|||")
        if len(parts) != 2:
            raise CorpusError(
                f"{path}, line {number}: expected `source ||| target`, found {len(parts) - 1} separators."
            )
        pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


def alignment_error_rate(predicted: Sequence[Iterable[Link]], gold: Sequence[GoldAlignment]) -> AlignmentScores:
    """Precision, recall and AER of `predicted` links per sentence against `gold`, summed over the corpus.

    Raises:
        ValueError: the two lists differ in length, or there are no predicted or no sure links at all.
    """
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted alignments for {len(gold)} gold ones; they must pair up.")
    hits_sure = hits_possible = n_predicted = n_sure = 0
    for links, reference in zip(predicted, gold, strict=True):
        links = set(links)
        hits_sure += len(links & reference.sure)
        hits_possible += len(links & reference.possible)
        n_predicted += len(links)
        n_sure += len(reference.sure)
    if not n_predicted or not n_sure:
        raise ValueError(f"AER needs predicted and sure links, but there are {n_predicted} and {n_sure}.")
    return AlignmentScores(
        precision=hits_possible / n_predicted,
        recall=hits_sure / n_sure,
        aer=1.0 - (hits_sure + hits_possible) / (n_predicted + n_sure),
        sentences=len(gold),
    )
