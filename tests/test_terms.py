"""Glossary terms match however the sentence is encoded in Unicode: NFKC, and case-folded where case is ignored."""

from __future__ import annotations

import pytest

from nmt.decode.terms import glossary_constraints, read_glossary


def _found(tmp_path, glossary: str, text: str) -> list[str]:
    path = tmp_path / "terms.tsv"
    path.write_text(glossary, encoding="utf-8")
    return glossary_constraints(text, read_glossary(path))


@pytest.mark.parametrize(
    ("glossary", "text", "found"),
    [
        ("café\tKaffee\n", "un cafe\u0301 noir", ["Kaffee"]),  # composed term, decomposed text
        ("cafe\u0301\tKaffee\n", "un café noir", ["Kaffee"]),  # decomposed term, composed text
        ("cafe\tKaffee\n", "un cafe\u0301 noir", []),  # `cafe` is not the word `café`
        ("cafe\tKaffee\n", "un cafe noir", ["Kaffee"]),
        ("STRASSE\tstreet\n", "die straße", ["street"]),  # case ignored: folded
        ("straße\tstreet\n", "DIE STRASSE", ["street"]),
        ("STRASSE\tstreet\texact\n", "die straße", []),  # exact case: not folded
        ("ﬁle\tDatei\texact\n", "a file", ["Datei"]),  # NFKC: the ligature is two letters
        ("北京\tBeijing\n", "他在北京工作了三年。", ["Beijing"]),  # Chinese has no spaces between words
        ("iPhone\tiPhone\texact\n", "我买了iPhone手机", ["iPhone"]),  # whole on its Latin side, beside Han
        ("iPhone\tiPhone\texact\n", "my niPhone", []),
    ],
)
def test_terms_match_in_normal_form(tmp_path, glossary, text, found):
    assert _found(tmp_path, glossary, text) == found


def test_a_folded_match_takes_the_span_of_the_characters_it_came_from(tmp_path):
    # "Maßstraße x" folds to "massstrasse x", two characters longer: the exact `x` lies outside the folded term
    glossary = "MASSSTRASSE\tA\nx\tB\texact\nstraße x\tC\texact\n"
    assert _found(tmp_path, glossary, "Maßstraße x") == ["A", "B"]
    assert _found(tmp_path, glossary, "die straße x") == ["C"]  # the longer term takes the span first
