"""Constraints for a test set: `nmt-translate`'s jsonl lines aligned with its source lines, or a glossary's terms.

A constraints file for `nmt-evaluate` is the jsonl input `nmt-translate input_format=jsonl` reads (so one file
serves both), one line per line of the test set, each `text` the test set's source line. Glossary terms are
added to every line's positive constraints as `nmt-translate glossary=` adds them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from nmt.data.corpus import CorpusError, iter_lines
from nmt.decode.terms import Segment, Term, glossary_constraints, segments


def read_segments(path: str | Path, sources: Sequence[str] | None = None) -> list[Segment]:
    """The jsonl lines of `path` as segments; with `sources`, checked line by line against them.

    Raises:
        CorpusError: a bad line, a line whose `text` is not the source line, or another line count, naming
            the file (and the line).
    """
    found = list(segments(iter_lines(path), f"file {path}", jsonl=True, terms=[]))
    if sources is None:
        return found
    for number, (segment, source) in enumerate(zip(found, sources, strict=False), start=1):
        if segment.text.strip() != source.strip():
            raise CorpusError(
                f"file {path}, line {number}: its text must be line {number} of the test set's source, "
                f"{source.strip()!r}, but is {segment.text.strip()!r}."
            )
    if len(found) != len(sources):
        raise CorpusError(f"file {path} has {len(found):,} lines, but the test set has {len(sources):,}.")
    return found


def add_glossary(found: list[Segment], terms: list[Term]) -> list[Segment]:
    """Each segment with the target terms of the glossary terms in its text added to its constraints."""
    for segment in found:
        segment.constraints += [t for t in glossary_constraints(segment.text, terms) if t not in segment.constraints]
    return found


def segments_for(sources: Sequence[str], constraints: str | Path | None, terms: list[Term]) -> list[Segment]:
    """The segments to translate `sources` under: a constraints file's lines (checked against `sources`) or
    plain lines, plus the glossary `terms`."""
    found = read_segments(constraints, sources) if constraints is not None else [Segment(s) for s in sources]
    return add_glossary(found, terms)


def write_segments(path: str | Path, found: Sequence[Segment]) -> None:
    """Write segments as `nmt-translate` jsonl lines (empty lists and a missing prefix left out)."""
    with Path(path).open("w", encoding="utf-8") as out:
        for s in found:
            record = {"text": s.text, "constraints": s.constraints, "avoid": s.avoid, "prefix": s.prefix}
            out.write(json.dumps({k: v for k, v in record.items() if v}, ensure_ascii=False) + "\n")


def write_glossary(path: str | Path, pairs: Sequence[tuple[str, str]], exact_case: bool = False) -> None:
    """Write `source<TAB>target` glossary lines; with `exact_case`, terms with a capital match only with their
    case (`exact`: `Nice` the city, not `nice`), the others in any case."""
    with Path(path).open("w", encoding="utf-8") as out:
        for source, target in pairs:
            case = "\texact" if exact_case and source != source.lower() else ""
            out.write(f"{source}\t{target}{case}\n")
