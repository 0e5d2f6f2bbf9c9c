"""Scoring: agreement with sacreBLEU's own API, tokenizer choice, bootstrap, significance, reports."""

import json
import random

import pytest
import sacrebleu
from sacrebleu.metrics import CHRF

from nmt.evaluate import (
    Comparison,
    Score,
    default_tokenize,
    paired_significance,
    score,
    to_json,
    to_markdown_table,
)
from nmt.evaluate import metrics as metrics_module

WORDS = ["the", "a", "cat", "dog", "house", "garden", "walks", "sleeps", "sees", "red", "small", "old"]


def _corpus(n: int = 100, seed: int = 0) -> list[str]:
    """`n` reference sentences of 6-12 words, capitalised and with a full stop."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(6, 12))) for _ in range(n)]
    return [line.capitalize() + "." for line in lines]


def _corrupt(lines: list[str], rate: float, seed: int = 1) -> list[str]:
    """Replace each word with a random one with probability `rate`."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) if rng.random() < rate else w for w in line.split()) for line in lines]


REFS = _corpus()
HYPS = _corrupt(REFS, 0.3)


def _by_metric(scores: list[Score]) -> dict[str, Score]:
    return {s.metric: s for s in scores}


def test_scores_equal_sacrebleu_api():
    got = _by_metric(score(HYPS, [REFS]))
    assert list(got) == ["BLEU", "chrF2", "TER"]
    assert got["BLEU"].value == sacrebleu.corpus_bleu(HYPS, [REFS]).score
    assert got["chrF2"].value == sacrebleu.corpus_chrf(HYPS, [REFS]).score
    assert got["TER"].value == sacrebleu.corpus_ter(HYPS, [REFS], case_sensitive=True).score
    assert 0 < got["BLEU"].value < 100
    assert got["BLEU"].signature.startswith("nrefs:1|") and "tok:13a" in got["BLEU"].signature
    assert f"version:{sacrebleu.__version__}" in got["chrF2"].signature
    assert all(s.ci is None for s in got.values())
    assert got["BLEU"].detail.startswith("BLEU = ") and "BP = " in got["BLEU"].detail


def test_chrf_plus_plus_adds_word_bigrams():
    (got,) = score(HYPS, [REFS], metrics=["chrf++"])
    assert got.metric == "chrF2++"
    assert got.value == sacrebleu.corpus_chrf(HYPS, [REFS], word_order=2).score
    assert "nw:2" in got.signature


def test_multiple_references():
    other = _corrupt(REFS, 0.2, seed=7)
    got = _by_metric(score(HYPS, [REFS, other]))
    assert got["BLEU"].value == sacrebleu.corpus_bleu(HYPS, [REFS, other]).score
    assert got["chrF2"].value == sacrebleu.corpus_chrf(HYPS, [REFS, other]).score
    assert "nrefs:2" in got["BLEU"].signature
    # A second reference equal to the hypotheses makes every segment a perfect match.
    perfect = _by_metric(score(HYPS, [REFS, HYPS]))
    assert perfect["BLEU"].value == pytest.approx(100.0)
    assert perfect["chrF2"].value == pytest.approx(100.0)
    assert perfect["TER"].value == 0.0


@pytest.mark.parametrize(
    ("lang", "expected"), [("zh", "zh"), ("zh-CN", "zh"), ("zh_Hans", "zh"), ("de", "13a"), ("en", "13a")]
)
def test_default_tokenize_by_language(lang, expected):
    assert default_tokenize(lang) == expected


def test_japanese_without_mecab_falls_back_to_char(monkeypatch):
    monkeypatch.setattr(metrics_module, "find_spec", lambda name: None)
    with pytest.warns(UserWarning, match="sacrebleu\\[ja\\]"):
        assert default_tokenize("ja") == "char"
    monkeypatch.setattr(metrics_module, "find_spec", lambda name: object())
    assert default_tokenize("ja") == "ja-mecab"


def test_chinese_tokenizer_segments_characters():
    refs = ["我们今天去公园散步。", "这本书非常有意思。", "他在北京工作了三年。"]
    hyps = ["我们今天去公园走路。", "这本书很有意思。", "他在上海工作了三年。"]
    (zh,) = score(hyps, [refs], metrics=["bleu"], tgt_lang="zh")
    (raw,) = score(hyps, [refs], metrics=["bleu"], tokenize="13a")
    assert "tok:zh" in zh.signature and "tok:13a" in raw.signature
    assert zh.value == sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score
    # 13a sees each unsegmented sentence as one or two "words", so almost nothing matches.
    assert zh.value > raw.value


def test_explicit_tokenize_overrides_language():
    (got,) = score(HYPS, [REFS], metrics=["bleu"], tokenize="intl", tgt_lang="zh")
    assert "tok:intl" in got.signature


# Moses' tokenizer.perl -l de -no-escape output of each line, written out by hand.
MOSES_HYPS = ["Ein Mann (in Blau) sagt: „Geht's?“", "Zwei Hunde spielen im Park.", "Die Frau, die 3,5 km läuft."]
MOSES_REFS = ["Ein Mann (in Blau) fragt: „Geht's?“", "Zwei Hunde spielen auf der Wiese.", "Die Frau läuft 3,5 km."]
MOSES_TOKENIZED_HYPS = [
    "Ein Mann ( in Blau ) sagt : „ Geht ' s ? “",
    "Zwei Hunde spielen im Park .",
    "Die Frau , die 3,5 km läuft .",
]
MOSES_TOKENIZED_REFS = [
    "Ein Mann ( in Blau ) fragt : „ Geht ' s ? “",
    "Zwei Hunde spielen auf der Wiese .",
    "Die Frau läuft 3,5 km .",
]


def test_moses_bleu_is_multi_bleu_on_moses_tokenized_text():
    """`tokenize=moses`: BLEU of the Moses-tokenized text split on whitespace, as papers' multi-bleu.perl."""
    expected = sacrebleu.corpus_bleu(MOSES_TOKENIZED_HYPS, [MOSES_TOKENIZED_REFS], tokenize="none", lowercase=True)
    moses = _by_metric(score(MOSES_HYPS, [MOSES_REFS], tokenize="moses", tgt_lang="de", lowercase=True))
    plain = _by_metric(score(MOSES_HYPS, [MOSES_REFS], tokenize="13a", tgt_lang="de", lowercase=True))
    assert moses["BLEU"].value == pytest.approx(expected.score)
    assert moses["BLEU"].value != pytest.approx(plain["BLEU"].value)  # 13a keeps "„Geht's" as one token
    assert "tok:moses" in moses["BLEU"].signature and "case:lc" in moses["BLEU"].signature
    for name in ("chrF2", "TER"):  # they tokenize on their own, so they see the text as given
        assert moses[name] == plain[name]


def test_moses_paired_significance_matches_scores():
    worse = ["Ein Hund sagt etwas.", "Zwei Hunde.", "Eine Frau läuft."]
    (base, other) = (score(lines, [MOSES_REFS], metrics=["bleu"], tokenize="moses") for lines in (worse, MOSES_HYPS))
    (comparison,) = paired_significance(worse, MOSES_HYPS, [MOSES_REFS], metrics=["bleu"], tokenize="moses", samples=50)
    assert (comparison.baseline, comparison.system) == (base[0].value, other[0].value)
    assert "tok:moses" in comparison.signature


def test_moses_without_sacremoses_says_what_to_install(monkeypatch):
    monkeypatch.setattr(metrics_module, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="needs sacremoses: `pip install sacremoses`"):
        score(MOSES_HYPS, [MOSES_REFS], tokenize="moses")


def test_lowercase_changes_scores_on_mixed_case():
    shouting = [line.upper() for line in REFS]
    cased = _by_metric(score(shouting, [REFS]))
    lower = _by_metric(score(shouting, [REFS], lowercase=True))
    for name in ("BLEU", "chrF2"):
        assert lower[name].value == pytest.approx(100.0)
        assert cased[name].value < 50.0
    assert lower["TER"].value == 0.0 < cased["TER"].value
    assert lower["chrF2"].value == CHRF(lowercase=True).corpus_score(shouting, [REFS]).score
    assert all("case:lc" in s.signature for s in lower.values())
    assert all("case:mixed" in s.signature for s in cased.values())


def test_bootstrap_confidence_interval():
    plain = _by_metric(score(HYPS, [REFS]))
    boot = _by_metric(score(HYPS, [REFS], bootstrap=200))
    for name, s in boot.items():
        assert s.ci is not None and s.ci > 0
        assert s.value == plain[name].value
        assert "bs:200" in s.signature and "seed:" in s.signature


@pytest.mark.parametrize("method", ["bs", "ar"])
def test_paired_significance_detects_clearly_better_system(method):
    baseline = _corrupt(REFS, 0.6, seed=2)
    system = _corrupt(REFS, 0.1, seed=3)
    results = paired_significance(baseline, system, [REFS], method=method, samples=200)
    assert [r.metric for r in results] == ["BLEU", "chrF2", "TER"]
    for r, base, sys in zip(results, score(baseline, [REFS]), score(system, [REFS]), strict=True):
        assert isinstance(r, Comparison)
        assert (r.baseline, r.system) == (base.value, sys.value)
        assert 0.0 <= r.p_value < 0.05
        assert f"{method}:200" in r.signature
    assert results[0].system > results[0].baseline and results[2].system < results[2].baseline


def test_paired_significance_similar_systems_not_significant():
    a = _corrupt(REFS, 0.3, seed=4)
    b = [REFS[0], *a[1:]]  # one sentence of a hundred fixed: a real but tiny difference
    for r in paired_significance(a, b, [REFS], samples=200):
        assert r.system != r.baseline
        assert 0.05 < r.p_value <= 1.0
    for r in paired_significance(a, list(a), [REFS], method="ar", samples=200):
        assert r.p_value == 1.0  # identical systems: a zero difference is never significant


def test_json_schema_is_stable():
    report = to_json(score(HYPS, [REFS], bootstrap=20), paired_significance(HYPS, REFS, [REFS], samples=20))
    assert set(report) == {"schema", "scores", "comparisons"} and report["schema"] == 1
    assert all(set(s) == {"metric", "value", "signature", "ci", "detail"} for s in report["scores"])
    keys = {"metric", "baseline", "system", "p_value", "signature"}
    assert all(set(c) == keys for c in report["comparisons"])
    assert json.loads(json.dumps(report)) == report
    assert to_json(score(HYPS, [REFS], metrics=["bleu"]))["comparisons"] == []


def test_markdown_table():
    rows = [
        {"metric": "BLEU", "value": 34.567, "ci": None, "signature": "nrefs:1|tok:13a"},
        {"metric": "chrF2", "value": 60.0, "ci": 1.25, "signature": "nrefs:1"},
    ]
    lines = to_markdown_table(rows, ["metric", "value", "ci", "signature"]).splitlines()
    assert len(lines) == 4
    assert [cell.strip() for cell in lines[0].split("|")[1:-1]] == ["metric", "value", "ci", "signature"]
    assert "|   ci |" in lines[0]  # numeric columns are right-aligned
    rule = [cell.strip() for cell in lines[1].split("|")[1:-1]]
    assert [set(cell) for cell in rule] == [{"-"}, {"-", ":"}, {"-", ":"}, {"-"}]
    assert all(cell.endswith(":") for cell in rule[1:3])
    assert "34.57" in lines[2] and " - " in lines[2] and r"nrefs:1\|tok:13a" in lines[2]
    assert len({len(line) for line in lines}) == 1  # columns line up
    with pytest.raises(ValueError, match=r"`rows\[1\]` .* lacks bleu"):
        to_markdown_table([{"bleu": 1.0}, {}], ["bleu"])


def test_length_mismatch_names_counts():
    with pytest.raises(ValueError, match=r"`refs\[1\]` must have as many segments as the hypotheses \(3\), but has 2"):
        score(["a", "b", "c"], [["a", "b", "c"], ["a", "b"]])
    with pytest.raises(ValueError, match=r"\(2\), but has 3"):
        paired_significance(["a", "b"], ["a", "b"], [["a", "b", "c"]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"refs": ["a", "b"]}, "list of reference streams"),
        ({"refs": []}, "at least one reference stream"),
        ({"hyps": []}, "`hyps` must hold at least one"),
        ({"metrics": ["meteor"]}, "but has 'meteor'"),
        ({"tokenize": "penn"}, "`tokenize` must be one of"),
        ({"bootstrap": 1}, "`bootstrap` must be 0"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    args = {"hyps": ["a b", "c d"], "refs": [["a b", "c d"]]} | kwargs
    with pytest.raises(ValueError, match=message):
        score(**args)


def test_bad_method_raises():
    with pytest.raises(ValueError, match="`method` must be one of bs, ar, but is 'tt'"):
        paired_significance(["a"], ["a"], [["a"]], method="tt")
