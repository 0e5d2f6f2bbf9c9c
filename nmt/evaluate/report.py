"""Scores as JSON for machines and as Markdown tables for people.

JSON schema (version 1; keys are stable, values plain floats, strings or null)::

    {
      "schema": 1,
      "scores": [{"metric": "BLEU", "value": 34.2, "signature": "nrefs:1|...", "ci": 1.1 | null,
                  "detail": "BLEU = 34.20 ..."}],
      "comparisons": [{"metric": "BLEU", "baseline": 33.0, "system": 34.2, "p_value": 0.01,
                       "signature": "nrefs:1|bs:1000|seed:12345|..."}]
    }

`to_json(scores)["scores"]` also serves as rows for `to_markdown_table`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

from nmt.evaluate.metrics import Comparison, Score

SCHEMA_VERSION = 1


def to_json(scores: Sequence[Score], comparisons: Sequence[Comparison] = ()) -> dict:
    """A JSON-serialisable dict with the schema in this module's docstring.

    Args:
        scores: results of `score`.
        comparisons: results of `paired_significance`; an empty list when none.
    """
    return {
        "schema": SCHEMA_VERSION,
        "scores": [asdict(s) for s in scores],
        "comparisons": [asdict(c) for c in comparisons],
    }


def to_markdown_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str], digits: int = 2) -> str:
    """A GitHub Markdown table, padded to line up in a terminal too.

    Floats are shown with `digits` decimals, None as "-"; numeric columns are right-aligned.
    Pipes in cells (sacreBLEU signatures have them) are escaped.

    Args:
        rows: one mapping per table row; each must have every key in `columns`.
        columns: the keys to show, in order; they are also the headers.
        digits: decimals for floats.
    """
    if not columns:
        raise ValueError("`columns` must name at least one column, but is empty.")
    for i, row in enumerate(rows):
        missing = [c for c in columns if c not in row]
        if missing:
            raise ValueError(f"`rows[{i}]` must have every column, but lacks {', '.join(missing)}.")
    headers = [_escape(c) for c in columns]
    cells = [[_cell(row[c], digits) for c in columns] for row in rows]
    widths = [max(3, len(h), *(len(line[j]) for line in cells)) for j, h in enumerate(headers)]
    right = [_is_numeric([row[c] for row in rows]) for c in columns]
    rule = ["-" * (w - 1) + ":" if r else "-" * w for w, r in zip(widths, right, strict=True)]
    lines = [_line(headers, widths, right), _line(rule, widths, right)]
    lines += [_line(line, widths, right) for line in cells]
    return "\n".join(lines)


def _cell(value: object, digits: int) -> str:
    """One value as escaped text."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _escape(str(value))


def _escape(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", r"\|").replace("\n", " ")


def _is_numeric(values: list[object]) -> bool:
    """Whether a column holds numbers (and maybe blanks) only, so it reads best right-aligned."""
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)


def _line(cells: list[str], widths: list[int], right: list[bool]) -> str:
    """One table line with cells padded to their column widths."""
    padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
    return "| " + " | ".join(padded) + " |"
