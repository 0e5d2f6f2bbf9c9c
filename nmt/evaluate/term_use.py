"""Term use: the share of positive constraints an output carries, and of negative ones it keeps out.

A term is found where its words occur as whole words of the output: not preceded or followed by a letter
or digit (`Hund` is not found in `Hunde` or `Hundehütte`; `Hund.` has it), any run of spaces between its
words. Each occurrence serves one constraint: a term asked for twice must occur twice, and occurrences are
taken in the order the constraints come. A constraint may accept several forms (`["diabète", "diabètes"]`):
one of them must occur. This is the exact match of the WMT21 terminology task (Alam et al. 2021, "On the
Evaluation of Machine Translation for Terminology Consistency"), on untokenized text; Dinu et al. (2019)
call the share the term use rate. Every count is taken twice: with the term's case (exact) and ignoring it.
A third count, `word_start`, also takes a term whose last word goes on (`Hund` in `Hunde`): what a
subword-level constraint guarantees, since its pieces may be followed by more pieces of the same word. In scripts
written without spaces (Chinese, Japanese), their letters bound no word: `北京` is found in `他在北京工作`, and
`iPhone` in `iPhone手机`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

from nmt.data.words import whole_words

TermForms = str | Sequence[str]  # one form, or the accepted forms of one constraint


@dataclass(frozen=True)
class TermUse:
    """Counts over a set of outputs.

    Attributes:
        terms: positive constraints (one per term asked for, per line).
        exact: positive constraints found with their case.
        any_case: positive constraints found ignoring case.
        word_start: positive constraints found with their case where the last word may go on.
        avoided: negative constraints (phrases that must not appear).
        kept_out: negative constraints absent from the output (with their case).
        lines: lines with at least one constraint of either kind.
    """

    terms: int
    exact: int
    any_case: int
    word_start: int
    avoided: int
    kept_out: int
    lines: int

    def share(self, count: int, total: int) -> float | None:
        """`count` as a percentage of `total`, or None when there is nothing to count."""
        return 100 * count / total if total else None

    def as_dict(self) -> dict:
        """The counts and their shares in percent (None where nothing was asked), for JSON."""
        return {
            **asdict(self),
            "exact_pct": self.share(self.exact, self.terms),
            "any_case_pct": self.share(self.any_case, self.terms),
            "word_start_pct": self.share(self.word_start, self.terms),
            "kept_out_pct": self.share(self.kept_out, self.avoided),
        }

    def rows(self) -> list[dict]:
        """One Markdown row per measure (`measure`, `value` in percent, `count`)."""
        measures = [
            ("term use, exact", self.exact, self.terms),
            ("term use, any case", self.any_case, self.terms),
            ("term use, word may go on", self.word_start, self.terms),
            ("avoided terms kept out", self.kept_out, self.avoided),
        ]
        return [
            {"measure": name, "value": self.share(count, total), "count": f"{count}/{total}"}
            for name, count, total in measures
            if total
        ]


@lru_cache(maxsize=4096)
def _pattern(form: str, ignore_case: bool, whole: bool = True) -> re.Pattern[str]:
    """The whole-word pattern of a term's words (`nmt.data.words.whole_words`; `whole` False: the last word may go
    on)."""
    return re.compile(whole_words(form, whole), re.IGNORECASE if ignore_case else 0)


def _forms(term: TermForms) -> list[str]:
    return [term] if isinstance(term, str) else list(term)


def found_terms(output: str, terms: Sequence[TermForms], ignore_case: bool = False, whole: bool = True) -> list[bool]:
    """For each term in order, whether it occurs in `output` at a place no earlier term took (`whole` False:
    its last word may go on)."""
    taken: set[int] = set()
    found = []
    for term in terms:
        start = next(
            (
                m.start()
                for form in _forms(term)
                if form.strip()
                for m in _pattern(form, ignore_case, whole).finditer(output)
                if m.start() not in taken
            ),
            None,
        )
        if start is not None:
            taken.add(start)
        found.append(start is not None)
    return found


def term_use(
    outputs: Sequence[str],
    include: Sequence[Sequence[TermForms]] | None = None,
    avoid: Sequence[Sequence[str]] | None = None,
) -> TermUse:
    """Term use of `outputs` (one per line) under each line's positive (`include`) and negative constraints.

    Raises:
        ValueError: `include` or `avoid` does not have one entry per output.
    """
    include = include if include is not None else [[] for _ in outputs]
    avoid = avoid if avoid is not None else [[] for _ in outputs]
    if not len(outputs) == len(include) == len(avoid):
        raise ValueError(
            f"term use needs one constraint list per output ({len(outputs)}), "
            f"but has {len(include)} positive and {len(avoid)} negative ones."
        )
    include = [[t for t in terms if any(f.strip() for f in _forms(t))] for terms in include]  # blank: no term
    avoid = [[p for p in phrases if p.strip()] for phrases in avoid]
    exact = any_case = word_start = kept_out = 0
    for output, terms, avoided in zip(outputs, include, avoid, strict=True):
        exact += sum(found_terms(output, terms))
        any_case += sum(found_terms(output, terms, ignore_case=True))
        word_start += sum(found_terms(output, terms, whole=False))
        kept_out += sum(not _pattern(phrase, False).search(output) for phrase in avoided)
    return TermUse(
        terms=sum(len(t) for t in include),
        exact=exact,
        any_case=any_case,
        word_start=word_start,
        avoided=sum(len(a) for a in avoid),
        kept_out=kept_out,
        lines=sum(1 for t, a in zip(include, avoid, strict=True) if t or a),
    )
