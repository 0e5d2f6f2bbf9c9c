"""What the translation service answers: lines with their hypotheses, HTML texts written back, and the attention
matrix of a line."""

from __future__ import annotations

from dataclasses import dataclass, field

Unit = tuple[list[int], list[int]]  # what the model translated for a line: source ids, the best hypothesis's ids


@dataclass
class Hypothesis:
    """One translation of a line: text, model score (length-normalized log-probability), word links when asked."""

    text: str
    score: float
    alignment: str | None = None  # Pharaoh `i-j` word links


@dataclass
class Line:
    """One input line (of HTML, one segment) and its hypotheses, best first (none when it translates to nothing),
    with the pieces the model translated for it: its sentences and chunks, or the whole line."""

    source: str
    hypotheses: list[Hypothesis] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)

    @property
    def best(self) -> str:
        return self.hypotheses[0].text if self.hypotheses else ""


@dataclass
class HtmlText:
    """One HTML text translated: written back with its markup, and its segments as lines (HTML, as written)."""

    text: str
    lines: list[Line]


@dataclass
class Attention:
    """Cross-attention of one translated line (mean over heads of one decoder layer): `weights[t][s]` is how much
    target piece t attends to source piece s; each piece the model translated ends in EOS, and a line of several
    has each one's matrix on the diagonal (its sentences never saw each other)."""

    layer: int
    source: list[str]
    target: list[str]
    weights: list[list[float]]
