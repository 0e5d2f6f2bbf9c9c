"""Published terminology test sets: the WMT21 terminology task's English-French dev set and Dinu et al.'s IATE pairs.

WMT21 (Alam et al. 2021): WMT "fake SGML", one `<seg id="N"> ... </seg>` per line, terms marked inline on both
sides as `<term id=".." type=".." src=".." tgt="a|b"> span </term>`; the text is tokenized (spaces around
punctuation, French elisions split). Dinu et al. (2019): tab-separated lines of a row index, a 1-based line
number in newstest2017 and up to four `English term, German term` pairs (the sentences are not distributed).
Both readers name the file and line of anything they cannot read.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from nmt.data.corpus import CorpusError, read_lines
from nmt.errors import MissingExtraError

SEGMENT = re.compile(r'<seg id="(\d+)">(.*)</seg>')
TERM = re.compile(r'<term id="(\d+)" type="([^"]+)" src="([^"]*)" tgt="([^"]*)">(.*?)</term>')


@dataclass(frozen=True)
class AnnotatedTerm:
    """One term annotation of a WMT21 segment.

    Attributes:
        id: the glossary entry.
        kind: `src_original_and_tgt_lemma` and the like: whether each side's span is the glossary form.
        source: the English span in the sentence.
        forms: the accepted French forms: the glossary's (first: its main form), then the reference's span
            when the glossary's forms do not contain it (as the task's `evaluate_term_wmt.py` accepts it).
    """

    id: str
    kind: str
    source: str
    forms: list[str]


@dataclass(frozen=True)
class TermSegment:
    """One WMT21 segment: tokenized source and reference without their tags, and its term annotations."""

    id: str
    source: str
    reference: str
    terms: list[AnnotatedTerm]


def read_sgm(path: str | Path) -> list[tuple[str, str, list[re.Match[str]]]]:
    """Each `<seg>` line's id, its text without term tags (entities decoded, spaces collapsed) and its tags."""
    segments = []
    for line in read_lines(path):
        match = SEGMENT.search(line)
        if match is not None:
            text = html.unescape(TERM.sub(lambda m: m.group(5), match.group(2)))
            segments.append((match.group(1), " ".join(text.split()), list(TERM.finditer(match.group(2)))))
    return segments


def read_wmt21(source: str | Path, reference: str | Path) -> list[TermSegment]:
    """The segments of the WMT21 set's English (`source`) and French (`reference`) files, paired.

    Raises:
        CorpusError: the files disagree on a segment's id or on its term ids, naming the segment.
    """
    src, ref = read_sgm(source), read_sgm(reference)
    if len(src) != len(ref):
        raise CorpusError(f"{source} has {len(src)} segments but {reference} has {len(ref)}.")
    out = []
    for (src_id, src_text, src_terms), (ref_id, ref_text, ref_terms) in zip(src, ref, strict=True):
        if src_id != ref_id or sorted(t.group(1) for t in src_terms) != sorted(t.group(1) for t in ref_terms):
            raise CorpusError(f"{source} and {reference} disagree on segment {src_id} (or {ref_id}): ids or terms.")
        spans = {}  # term id -> its English spans, in order (a sentence may order its terms otherwise)
        for term in src_terms:
            spans.setdefault(term.group(1), []).append(" ".join(term.group(5).split()))
        terms = [_annotation(r, spans[r.group(1)].pop(0)) for r in ref_terms]
        out.append(TermSegment(src_id, src_text, ref_text, terms))
    return out


def _annotation(ref: re.Match[str], source: str) -> AnnotatedTerm:
    glossary, span = html.unescape(ref.group(4)), " ".join(html.unescape(ref.group(5)).split())
    forms = glossary.split("|") + ([span] if span not in glossary else [])  # the task's substring test
    return AnnotatedTerm(ref.group(1), ref.group(2), source, forms)


def detokenize(lines: list[str], lang: str) -> list[str]:
    """Moses-tokenized lines (the WMT21 set's) as plain text, for a model trained on untokenized text."""
    if find_spec("sacremoses") is None:
        raise MissingExtraError('detokenizing the WMT21 set needs sacremoses: pip install "nmt-toolkit[moses]".')
    from sacremoses import MosesDetokenizer

    detokenizer = MosesDetokenizer(lang=lang)
    return [detokenizer.detokenize(line.split()) for line in lines]


@dataclass(frozen=True)
class TermLine:
    """One line of a Dinu et al. (2019) file: the newstest2017 line (1-based) and its term pairs."""

    line: int
    pairs: list[tuple[str, str]]


def read_dinu(path: str | Path) -> list[TermLine]:
    """The lines of a Dinu et al. (2019) terminology file (`iate.414.terminology.tsv` and the like).

    Raises:
        CorpusError: naming every line without a line number and 1-4 whole term pairs.
    """
    lines, problems = [], []
    for number, line in enumerate(read_lines(path), start=1):  # read stripped: the padding tabs are gone
        cols = [c.strip() for c in line.split("\t")]
        pairs = list(zip(cols[2::2], cols[3::2], strict=False))
        whole = all(en and de for en, de in pairs)
        if len(cols) % 2 or not 4 <= len(cols) <= 10 or not cols[1].isdigit() or not whole:
            problems.append(f"{path}, line {number}: expected an index, a line number and 1-4 term pairs")
            continue
        lines.append(TermLine(int(cols[1]), pairs))
    if problems:
        raise CorpusError("\n".join(problems))
    return lines


def dinu_glossary(lines: list[TermLine]) -> list[tuple[str, str]]:
    """The term pairs of `lines` as a glossary: one target per source term (its first, ignoring case), in order."""
    seen: dict[str, tuple[str, str]] = {}
    for line in lines:
        for en, de in line.pairs:
            seen.setdefault(en.lower(), (en, de))
    return list(seen.values())


@dataclass(frozen=True)
class TermTestSet:
    """Plain-text lines to translate under term constraints.

    Attributes:
        src, ref: source and reference lines.
        include: per line, the terms to decode under (each once, its main form).
        accepted: per line, one entry per term annotation: its accepted forms (for `term_use`).
    """

    src: list[str]
    ref: list[str]
    include: list[list[str]]
    accepted: list[list[list[str]]]


def wmt21_test_set(segments: list[TermSegment], src_lang: str = "en", tgt_lang: str = "fr") -> TermTestSet:
    """The WMT21 segments detokenized (sentences and term forms alike), for a model of untokenized text.

    A term annotated twice in a sentence is two constraints (the search writes it twice) and two annotations
    to score, as the task scores them.
    """
    forms = sorted({f for s in segments for t in s.terms for f in t.forms})
    plain = dict(zip(forms, detokenize(forms, tgt_lang), strict=True))
    accepted = [[[plain[f] for f in t.forms] for t in s.terms] for s in segments]
    return TermTestSet(
        src=detokenize([s.source for s in segments], src_lang),
        ref=detokenize([s.reference for s in segments], tgt_lang),
        include=[[terms[0] for terms in line] for line in accepted],
        accepted=accepted,
    )
