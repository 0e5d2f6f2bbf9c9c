"""Text to constraints: glossaries (`source<TAB>target[<TAB>case]` files) and jsonl input lines.

A glossary term matches a sentence on whole words (case-insensitively unless its third column says
`exact`), longest terms first, and a source span is used by one term only; every match adds its target
term as a positive constraint. Terms and sentences are compared in NFKC, as the SentencePiece models
normalise them, and case-folded where case is ignored (`straße` matches `STRASSE`), so `café` matches
`cafe` + U+0301 and `cafe` does not. Both formats refuse bad lines naming the file and line, all at once.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nmt.data.corpus import CorpusError, iter_lines
from nmt.data.words import whole_words
from nmt.decode.translator import Translation, Translator

CASES = ("ignore", "exact")  # the glossary's third column; ignore is the default


@dataclass(frozen=True)
class Term:
    """A glossary entry: `pattern` finds `source` in the NFKC form of a sentence, case-folded if `folded`."""

    source: str
    target: str
    pattern: re.Pattern[str]
    folded: bool


def _nfkc(text: str) -> str:
    """`text` in NFKC, the default normalisation of the SentencePiece models (`nmt.data.tokenizer`)."""
    return unicodedata.normalize("NFKC", text)


def _folded(text: str) -> tuple[str, list[int]]:
    """`text` case-folded, and for each of its characters the index in `text` of the one it comes from
    (folding may lengthen a character: `ß` becomes `ss`)."""
    parts = [char.casefold() for char in text]  # casefold() knows no context: folding by character is the same
    origin = [i for i, part in enumerate(parts) for _ in part]
    return "".join(parts), origin


def _term(source: str, target: str, case: str) -> Term:
    """A term whose source words match whole words of a sentence, any whitespace between them (`nmt.data.words`: in
    Chinese or Japanese, inside running text)."""
    folded = case == "ignore"
    normal = _nfkc(source)
    return Term(source, target, re.compile(whole_words(_folded(normal)[0] if folded else normal)), folded)


def _glossary_line(line: str) -> tuple[Term | None, str | None]:
    """One glossary line as a term (None for a blank line), or what is wrong with it."""
    if not line.strip():
        return None, None
    columns = line.split("\t")
    if len(columns) not in (2, 3):
        return None, f"expected `source<TAB>target[<TAB>case]`, but found {len(columns)} column(s)"
    source, target, case = columns[0].strip(), columns[1].strip(), (columns[2:] or ["ignore"])[0].strip()
    if not source or not target:
        return None, "the source and target terms must not be empty"
    if case not in CASES:
        return None, f"the case column must be one of {', '.join(CASES)}, but is {case!r}"
    return _term(source, target, case), None


def read_glossary(path: str | Path) -> list[Term]:
    """The terms of a glossary file, longest source first.

    Raises:
        CorpusError: naming every bad line (file and line number).
    """
    terms, problems = [], []
    for number, line in enumerate(iter_lines(path), start=1):
        term, problem = _glossary_line(line)
        if problem:
            problems.append(f"glossary {path}, line {number}: {problem}")
        elif term is not None:
            terms.append(term)
    if problems:
        raise CorpusError("\n".join(problems))
    return sorted(terms, key=lambda t: len(t.source), reverse=True)


def glossary_constraints(text: str, terms: list[Term]) -> list[str]:
    """Target terms of the glossary terms found in `text`, longest first, each source span used once."""
    normal = _nfkc(text)
    folded, origin = _folded(normal)
    taken: list[tuple[int, int]] = []  # spans in `normal`, whichever form a term matched
    found: list[str] = []
    for term in terms:
        for match in term.pattern.finditer(folded if term.folded else normal):
            start, end = match.span()
            if term.folded:  # back to `normal`: the characters the first and the last matched one come from
                start, end = origin[start], origin[end - 1] + 1
            if all(end <= a or start >= b for a, b in taken):
                taken.append((start, end))
                if term.target not in found:
                    found.append(term.target)
    return found


@dataclass
class Segment:
    """One input line with its constraints (target text)."""

    text: str
    constraints: list[str] = field(default_factory=list)
    avoid: list[str] = field(default_factory=list)
    prefix: str | None = None


def _strings(record: dict, key: str) -> list[str]:
    value = record.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"`{key}` must be a list of strings, but is {value!r}")
    return value


def parse_jsonl(line: str) -> Segment:
    """`{"text": ..., "constraints": [...], "avoid": [...], "prefix": ...}` as a `Segment`.

    Raises:
        ValueError: what is wrong with the line.
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON: {err}") from err
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise ValueError('expected an object with a string "text"')
    unknown = set(record) - {"text", "constraints", "avoid", "prefix"}
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}")
    prefix = record.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise ValueError(f"`prefix` must be a string, but is {prefix!r}")
    return Segment(record["text"], _strings(record, "constraints"), _strings(record, "avoid"), prefix)


def segments(
    lines: Iterable[str],
    name: str,
    jsonl: bool,
    terms: list[Term],
    textless: Callable[[list[str]], list[str]] | None = None,
) -> Iterator[Segment]:
    """Each line as a `Segment` (parsed as jsonl when asked), with its glossary terms added as constraints.

    Raises:
        CorpusError: a bad jsonl line, or phrases to avoid that `textless` names (`Translator.textless`: they
            spell no text in the target vocabulary), naming `name` (the file or <stdin>) and the line.
    """
    for number, line in enumerate(lines, start=1):
        try:
            segment = parse_jsonl(line) if jsonl else Segment(line)
        except ValueError as err:
            raise CorpusError(f"{name}, line {number}: {err}.") from None
        if textless is not None and segment.avoid and (bad := textless(segment.avoid)):
            raise CorpusError(
                f"{name}, line {number}: `avoid` phrases must spell text in the target vocabulary, but "
                f"{', '.join(map(repr, bad))} spell only characters it lacks."
            )
        extra = [t for t in glossary_constraints(segment.text, terms) if t not in segment.constraints]
        segment.constraints += extra
        yield segment


def translate_segments(translator: Translator, chunk: list[Segment]) -> list[Translation]:
    """Translate one chunk of segments under their constraints."""
    return translator.translate(
        [s.text for s in chunk],
        constraints=[s.constraints for s in chunk],
        avoid=[s.avoid for s in chunk],
        prefix=[s.prefix for s in chunk],
    )
