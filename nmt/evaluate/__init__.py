"""Scoring translations: sacreBLEU metrics with signatures, significance tests, reports."""

from nmt.evaluate.metrics import (
    METHODS,
    METRICS,
    Comparison,
    Score,
    default_tokenize,
    paired_significance,
    score,
)
from nmt.evaluate.report import to_json, to_markdown_table

__all__ = [
    "METHODS",
    "METRICS",
    "Comparison",
    "Score",
    "default_tokenize",
    "paired_significance",
    "score",
    "to_json",
    "to_markdown_table",
]
