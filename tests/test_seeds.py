"""Results over seeds: reading `nmt-evaluate` reports, mean ± sd, the two-standard-deviation rule, the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nmt.evaluate.seeds import markdown_table, read_arm, within_two_sd


def _run(root: Path, name: str, bleu: float, chrf: float, p: float | None = None) -> Path:
    run = root / name
    run.mkdir()
    report = {
        "scores": [{"metric": "BLEU", "value": bleu}, {"metric": "chrF2", "value": chrf}],
        "comparisons": [] if p is None else [{"metric": "BLEU", "p_value": p}, {"metric": "chrF2", "p_value": 0.5}],
    }
    (run / "scores.json").write_text(json.dumps(report), encoding="utf-8")
    return run


def test_an_arm_has_the_mean_and_sample_sd_of_its_seeds(tmp_path):
    runs = [_run(tmp_path, f"a_s{i}", bleu, 50.0, 0.1 * i) for i, bleu in enumerate([28.0, 29.0, 30.0], start=1)]
    arm = read_arm("a", runs)
    assert arm.mean("BLEU") == pytest.approx(29.0)
    assert arm.sd("BLEU") == pytest.approx(1.0)  # sample sd (n - 1), not population
    assert arm.p_values["BLEU"] == pytest.approx([0.1, 0.2, 0.3])
    assert read_arm("one", [runs[0]]).sd("BLEU") == 0.0


@pytest.mark.parametrize(("arm_scores", "near"), [([29.0, 29.2], True), ([29.6, 29.8], True), ([31.0, 31.2], False)])
def test_the_two_sd_rule_uses_the_larger_spread(tmp_path, arm_scores, near):
    baseline = read_arm("b", [_run(tmp_path, f"b_s{i}", s, 50.0) for i, s in enumerate([28.5, 29.5])])  # sd 0.71
    arm = read_arm("a", [_run(tmp_path, f"a_s{i}", s, 50.0, 0.2) for i, s in enumerate(arm_scores)])  # sd 0.14
    # |diff| 0.1, 0.7 or 2.1 against 2 x 0.71; 0.7 is past 2 x 0.14, so the arm's own spread would say "far"
    assert within_two_sd(arm, baseline, "BLEU") is near


def test_the_table_shows_each_arm_against_the_first(tmp_path):
    baseline = read_arm("baseline", [_run(tmp_path, f"b_s{i}", s, 50.0) for i, s in enumerate([28.0, 28.2])])
    arm = read_arm(
        "bt", [_run(tmp_path, f"t_s{i}", s, 51.0, p) for i, (s, p) in enumerate([(29.0, 0.01), (29.4, 0.002)])]
    )
    table = markdown_table([baseline, arm], ["BLEU", "chrF2"]).splitlines()
    assert table[2].startswith("| baseline | 2 | 28.10 ± 0.14 | 50.00 ± 0.00 |")
    assert table[3] == "| bt | 2 | 29.20 ± 0.28 | 51.00 ± 0.00 | +1.10 | no | 0.010, 0.002 |"


def test_a_report_that_is_not_nmt_evaluate_json_is_named(tmp_path):
    run = tmp_path / "x_s1"
    run.mkdir()
    (run / "scores.json").write_text('{"BLEU": 28.0}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"x_s1/scores.json: not a `nmt-evaluate json=true` report"):
        read_arm("x", [run])
