import importlib.util
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.data.corpus import read_lines
from nmt.documents.sentences import SPLITTERS, join_sentences, sentence_separator, split_sentences
from nmt.errors import MissingExtraError
from nmt.evaluate.paragraphs import Paragraph, boundary_f1, make_paragraphs, single_sentences

HAVE_SENTENCEX = importlib.util.find_spec("sentencex") is not None
needs_sentencex = pytest.mark.skipif(not HAVE_SENTENCEX, reason='needs sentencex: pip install "nmt[documents]"')


def sentences(text: str, lang: str = "en", splitter: str = "rules") -> list[str]:
    return [text[start:end] for start, end in split_sentences(text, lang, splitter)]


def test_a_plain_period_before_a_capital_ends_a_sentence():
    assert sentences("Smith came. He left.") == ["Smith came.", "He left."]


@pytest.mark.parametrize(
    ("lang", "text", "first"),
    [
        ("en", "Mr. Smith came. He left.", "Mr. Smith came."),
        ("en", "Then e.g. Paris was fine. He left.", "Then e.g. Paris was fine."),
        ("de", "Wir kauften z.B. Äpfel bzw. Birnen. Er ging.", "Wir kauften z.B. Äpfel bzw. Birnen."),
        ("de", "Herr Dr. Müller kam. Er ging.", "Herr Dr. Müller kam."),
        ("fr", "M. Dupont est arrivé. Il est parti.", "M. Dupont est arrivé."),
        ("cs", "Např. pan Novák přišel. Pak odešel.", "Např. pan Novák přišel."),
    ],
)
def test_an_abbreviation_does_not_end_a_sentence(lang, text, first):
    assert sentences(text, lang) == [first, text[len(first) + 1 :]]


def test_etc_ends_a_sentence_before_a_capital_and_a_m_is_no_acronym():
    assert sentences("Apples, pears etc. and more. Apples etc. The end.") == [
        "Apples, pears etc. and more.",
        "Apples etc.",
        "The end.",
    ]
    assert sentences("Das war usw. Dann kam er.", "de") == ["Das war usw.", "Dann kam er."]
    assert sentences("I ran at 6 p.m. Tom slept.") == ["I ran at 6 p.m.", "Tom slept."]
    assert sentences("He joined the U.S. Army in May.") == ["He joined the U.S. Army in May."]


def test_a_decimal_number_does_not_end_a_sentence():
    assert sentences("It costs 3.5 euros. Then he paid.") == ["It costs 3.5 euros.", "Then he paid."]
    assert sentences("我有3.5元。好的。", "zh") == ["我有3.5元。", "好的。"]


def test_an_abbreviation_before_a_number_ends_no_sentence_but_the_same_word_before_a_word_does():
    assert sentences("He wore No. 5 on his shirt. The answer was no. Five people left.") == [
        "He wore No. 5 on his shirt.",
        "The answer was no.",
        "Five people left.",
    ]


def test_a_german_ordinal_ends_a_sentence_only_before_a_typical_first_word():
    text = "Am 1. Mai gingen wir. Er wurde in Runde 3. Dann ging er. Im 19. Jahrhundert war es so."
    assert sentences(text, "de") == ["Am 1. Mai gingen wir.", "Er wurde in Runde 3.", "Dann ging er.", text[-29:]]
    # In English a number and a period are no ordinal: the sentence ends before any capital.
    assert sentences("He came 3. Mark came 4.") == ["He came 3.", "Mark came 4."]


def test_initials_and_acronyms_end_a_sentence_only_before_a_typical_first_word():
    assert sentences("J. R. R. Tolkien wrote it. He was English.") == ["J. R. R. Tolkien wrote it.", "He was English."]
    assert sentences("It was Plan B. The plan worked.") == ["It was Plan B.", "The plan worked."]
    assert sentences("A sign says E.S.E. Electronics. He lives in the U.S. The end.") == [
        "A sign says E.S.E. Electronics.",
        "He lives in the U.S.",
        "The end.",
    ]


def test_a_question_or_exclamation_before_a_lowercase_word_does_not_end_a_sentence():
    assert sentences('"Where?" she asked. He left!') == ['"Where?" she asked.', "He left!"]
    assert sentences('"Where?" She asked.') == ['"Where?"', "She asked."]
    assert sentences("Hi!! Yes?! OK.") == ["Hi!!", "Yes?!", "OK."]


def test_an_ellipsis_inside_a_sentence_does_not_end_it():
    assert sentences("He left... and came back. Wait… What?") == ["He left... and came back.", "Wait…", "What?"]
    assert sentences("我想……算了。好的。", "zh") == ["我想……算了。", "好的。"]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    assert sentences('He said "Go." Then he left. (It was late.) Yes.') == [
        'He said "Go."',
        "Then he left.",
        "(It was late.)",
        "Yes.",
    ]
    assert sentences("他说：“走吧。”然后他走了。", "zh") == ["他说：“走吧。”", "然后他走了。"]
    assert sentences("「はい。」そうです。", "ja") == ["「はい。」", "そうです。"]


def test_chinese_sentences_split_without_spaces_after_full_width_and_ascii_terminators():
    text = "她可能是护士。我不太肯定。你介意把你的筆借給我嗎?這幫不了你！好"
    assert sentences(text, "zh") == ["她可能是护士。", "我不太肯定。", "你介意把你的筆借給我嗎?", "這幫不了你！", "好"]
    assert sentences("example.com is a site.") == ["example.com is a site."]


def test_spans_leave_out_surrounding_whitespace_and_an_unfinished_sentence_is_kept():
    text = "  Leading spaces.\n\tAnd a newline.   No terminator here  "
    assert split_sentences(text, "en") == [(2, 17), (19, 33), (36, 54)]
    assert split_sentences("   ", "en") == [] and split_sentences("", "en") == []


def test_a_region_or_script_in_the_language_tag_is_ignored():
    assert sentences("Herr Dr. Müller kam. Er ging.", "de-AT") == sentences("Herr Dr. Müller kam. Er ging.", "de")
    assert sentences("你好。再见。", "zh_Hant") == ["你好。", "再见。"]


PIECES = [*'ab AB.!?…。！？"”)3 \n漢z.', "Mr.", "e.g.", "J.", "1.", "...", "\xa0", "\u3000"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    text=TEXT,
    lang=st.sampled_from(["en", "de", "zh"]),
    splitter=st.sampled_from(SPLITTERS if HAVE_SENTENCEX else ["rules"]),
)
def test_spans_are_ordered_stripped_and_cover_every_non_space_character(text, lang, splitter):
    spans = split_sentences(text, lang, splitter)
    assert all(text[start:end] and text[start:end] == text[start:end].strip() for start, end in spans)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:], strict=False))
    outside = set(range(len(text))) - {i for start, end in spans for i in range(start, end)}
    assert all(text[i].isspace() for i in outside)


@needs_sentencex
def test_sentencex_spans_map_back_to_the_text():
    text = "  Mr. Smith came.   He left!\nDid he? It was Plan A\xa0. Then"
    assert sentences(text, splitter="sentencex") == [
        "Mr. Smith came.",
        "He left!",
        "Did he?",
        "It was Plan A\xa0.",
        "Then",
    ]
    assert sentences("你好。再见。", "zh", "sentencex") == ["你好。", "再见。"]


def test_sentencex_without_the_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentencex", None)
    with pytest.raises(MissingExtraError, match=r"nmt\[documents\]"):
        split_sentences("Hi. Ho.", "en", "sentencex")
    assert sentences("Hi. Ho.") == ["Hi.", "Ho."]


def test_an_unknown_splitter_is_refused():
    with pytest.raises(ValueError, match=r"`splitter` must be one of rules, sentencex, but is 'x' instead\."):
        split_sentences("Hi.", "en", "x")


def test_sentences_rejoin_with_a_space_except_in_chinese_and_japanese():
    spaced = [sentence_separator(lang) for lang in ("en", "de", "th")]
    unspaced = [sentence_separator(lang) for lang in ("zh", "zh-Hant", "ja")]
    assert spaced == [" "] * 3 and unspaced == [""] * 3
    assert join_sentences([" Hallo. ", "", "Wie geht's?"], "de") == "Hallo. Wie geht's?"
    assert join_sentences(["你好。", "我很好。"], "zh") == "你好。我很好。"


def test_paragraphs_join_consecutive_sentences_with_known_spans():
    lines = [f"Sentence {i}." for i in range(40)]
    paragraphs = make_paragraphs(lines, seed=3, low=2, high=5)
    used = _flat(paragraphs)
    assert used == lines[: len(used)] and len(lines) - len(used) < 2  # only a tail shorter than `low` is left out
    assert all(2 <= len(p.sentences) <= 5 and p.text == " ".join(_sentences_of(p)) for p in paragraphs)
    assert len({len(p.sentences) for p in paragraphs}) > 1
    assert make_paragraphs(lines, seed=3, low=2, high=5) == paragraphs
    assert make_paragraphs(lines, seed=4, low=2, high=5) != paragraphs
    chinese = make_paragraphs(["你好。", "再见。"], seed=0, lang="zh")
    assert chinese == [Paragraph("你好。再见。", [(0, 3), (3, 6)])]
    with pytest.raises(ValueError, match=r"`low` must be between 1 and `high` \(2\), but is 3 instead\."):
        make_paragraphs(lines, seed=0, low=3, high=2)


def test_only_lines_holding_one_finished_sentence_serve_as_test_sentences():
    lines = [
        "A dog runs.",
        "A dog runs",
        '"Go!"',
        "她可能是护士。我不太肯定。",
        "你好吗?",
        "他说：“走吧。”",
        "E.S.E. Electronics.",
    ]
    assert single_sentences(lines) == ["A dog runs.", '"Go!"', "你好吗?", "他说：“走吧。”", "E.S.E. Electronics."]


@pytest.mark.parametrize(
    ("lang", "path", "target"),
    [
        ("en", "multi30k/test2016.en.gz", 99.5),
        ("de", "multi30k/test2016.de.gz", 99.5),
        ("zh", "tatoeba-en-zh/dev.zh.gz", 99),
    ],
)
def test_the_rules_reach_the_boundary_f1_targets_on_test_set_a(shared_data, lang, path, target):
    paragraphs = make_paragraphs(single_sentences(read_lines(shared_data / path)), seed=0, lang=lang)
    score = boundary_f1([split_sentences(p.text, lang) for p in paragraphs], paragraphs)
    assert score["boundaries"] > 800 and score["f1"] >= target


def test_boundary_f1_counts_internal_boundaries_on_a_hand_made_case():
    one = Paragraph("A b. C d. E f.", [(0, 4), (5, 9), (10, 14)])  # boundaries at 4 and 9
    two = Paragraph("G h. I j.", [(0, 4), (5, 9)])  # boundary at 4
    predicted = [[(0, 4), (5, 14)], [(0, 2), (3, 4), (5, 9)]]  # finds 4; finds 2 (wrong) and 4
    score = boundary_f1(predicted, [one, two])
    assert score["precision"] == pytest.approx(200 / 3) and score["recall"] == pytest.approx(200 / 3)
    assert score["f1"] == pytest.approx(200 / 3) and score["boundaries"] == 3
    perfect = boundary_f1([one.sentences, two.sentences], [one, two])
    assert (perfect["precision"], perfect["recall"], perfect["f1"]) == (100.0, 100.0, 100.0)
    with pytest.raises(ValueError, match="one entry per paragraph"):
        boundary_f1([one.sentences], [one, two])


def _sentences_of(paragraph: Paragraph) -> list[str]:
    return [paragraph.text[start:end] for start, end in paragraph.sentences]


def _flat(paragraphs: list[Paragraph]) -> list[str]:
    return [sentence for paragraph in paragraphs for sentence in _sentences_of(paragraph)]
