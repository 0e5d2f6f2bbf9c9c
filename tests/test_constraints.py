"""Lexically constrained search: the step functions on hand-made numbers, then the tiny model under constraints."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace

import pytest
import torch

from nmt.cli import translate
from nmt.config import ConfigError, DataConfig, DecodeConfig, TranslateConfig, check
from nmt.data.corpus import CorpusError
from nmt.data.sources import get_corpus
from nmt.decode.constraints import (
    NONE,
    TERMS_WIDTH,
    ConstraintBatch,
    Constraints,
    advance,
    allocate,
    avoid_,
    avoid_states,
    close_words_,
    force_prefix_,
    greedy_width,
    meets,
    prefix_tokens,
    progress_of,
)
from nmt.decode.spelling import BOUNDARY, Spelling
from nmt.decode.terms import glossary_constraints, parse_jsonl, read_glossary
from nmt.decode.translator import Translator
from nmt.evaluate.term_use import found_terms

pytestmark = pytest.mark.usefixtures("one_thread")
INF = float("inf")


def test_progress_follows_repeated_subwords():
    include = torch.tensor([[[5, 5, 6]]])  # [b=1, C=1, L=3]
    length = torch.tensor([[3]])
    histories = {(1, 5, 5): 2, (5, 5, 5): 2, (5, 5, 6): 3, (9, 9, 5): 1, (5, 6, 5): 1, (5, 5, 7): 0}
    for history, expected in histories.items():
        ends = torch.tensor([[history]])  # [1, N=1, L]
        assert progress_of(ends, include, length).item() == expected, history


def test_met_constraints_stay_met_and_bank_counts_subwords():
    include = torch.tensor([[[4, NONE], [7, 8]]])  # [1, C=2, L=2]
    length, once = torch.tensor([[1, 2]]), torch.tensor([[1, 1]])
    found = torch.tensor([[[1, 0]]])  # [1, N=1, C]
    found, met, progress, bank = advance(found, torch.tensor([[[3, 7]]]), include, length, once, ordered=False)
    assert met.tolist() == [[[True, False]]] and progress[0, 0, 1] == 1 and bank.item() == 2
    found, met, _, bank = advance(found, torch.tensor([[[7, 8]]]), include, length, once, ordered=False)
    assert met.tolist() == [[[True, True]]] and found.tolist() == [[[1, 1]]] and bank.item() == 3


def test_a_phrase_asked_for_twice_is_met_at_its_second_occurrence():
    batch = ConstraintBatch.of([Constraints(include=[[7, 8], [4], [7, 8]])], torch.device("cpu"))
    assert batch.include[0].tolist() == [[7, 8], [4, NONE]] and batch.include_times.tolist() == [[2, 1]]
    found = torch.zeros(1, 1, 2, dtype=torch.long)
    for history, expected in [((3, 4), [0, 1]), ((7, 8), [1, 1]), ((8, 7), [1, 1]), ((7, 8), [2, 1])]:
        found, met, _, _ = advance(
            found, torch.tensor([[history]]), batch.include, batch.include_len, batch.include_times, ordered=False
        )
        assert found.tolist() == [[expected]], history
    assert met.tolist() == [[[True, True]]]
    assert meets([7, 8, 4, 7, 8], Constraints(include=[[7, 8], [4], [7, 8]]))
    assert not meets([7, 8, 4], Constraints(include=[[7, 8], [4], [7, 8]]))


def test_ordered_constraints_wait_for_the_earlier_ones():
    include = torch.tensor([[[4], [7]]])
    length, once = torch.tensor([[1, 1]]), torch.tensor([[1, 1]])
    found = torch.zeros(1, 1, 2, dtype=torch.long)
    _, met, _, _ = advance(found, torch.tensor([[[7]]]), include, length, once, ordered=True)
    assert met.tolist() == [[[False, False]]]


# A vocabulary that spells "Hund" in four ways and "Hunde" in two, with pieces around them.
PIECES = ["<pad>", "<s>", "</s>", "▁Hund", "▁Hu", "nd", "▁Hunde", "e", "▁(", "Hund", ",", "▁a", "H", "u", "▁"]
SPELLING = Spelling(PIECES, special={0, 1, 2})


def _completes(text: str, piece: str, phrase: str) -> bool:
    """The rule on text: `piece` after `text` completes `phrase` as a word (it starts at the start or after a
    non-word character, and ends inside the piece, before a non-word character or at the piece's end)."""
    whole, n = text + piece, len(phrase)
    word = re.compile(r"\w")
    return any(
        whole[i : i + n] == phrase
        and i + n > len(text)
        and (i == 0 or not word.match(whole[i - 1]))
        and (i + n == len(whole) or not word.match(whole[i + n]))
        for i in range(len(whole) - n + 1)
    )


@pytest.mark.parametrize("pieces", [["▁Hund"], ["▁Hunde"], ["▁", "u"], ["▁Hund", ",", "▁Hund"], ["▁(", "Hund"]])
def test_avoided_phrases_are_blocked_in_every_spelling(pieces):
    ids = [PIECES.index(p) for p in pieces]
    batch = ConstraintBatch.of([Constraints(avoid=[ids])], torch.device("cpu"), spelling=SPELLING)
    phrase = "".join(pieces).removeprefix("▁")
    rng = random.Random(phrase)
    for _ in range(200):  # random outputs, each piece checked against the rule on their text
        state, text = torch.tensor([[[BOUNDARY]]]), ""
        for _ in range(rng.randrange(1, 7)):
            log_probs = avoid_(torch.zeros(1, 1, len(PIECES)), state, batch.avoid, batch.avoid_tables)
            for token in range(3, len(PIECES)):
                expected = _completes(text, PIECES[token], phrase)
                assert log_probs[0, 0, token].isinf().item() == expected, (text, PIECES[token], phrase)
            token = rng.choice([t for t in range(3, len(PIECES)) if not log_probs[0, 0, t].isinf()])
            state = avoid_states(state, batch.avoid, batch.avoid_tables, torch.tensor([[token]]))
            text += PIECES[token]


def test_avoid_needs_the_spelling_and_leaves_other_sentences_alone():
    with pytest.raises(ValueError, match="spelling"):
        ConstraintBatch.of([Constraints(avoid=[[3]])], torch.device("cpu"))
    batch = ConstraintBatch.of([None, Constraints(avoid=[[3]])], torch.device("cpu"), spelling=SPELLING)
    log_probs = avoid_(torch.zeros(2, 1, len(PIECES)), torch.full((2, 1, 1), BOUNDARY), batch.avoid, batch.avoid_tables)
    assert not log_probs[0].isinf().any() and log_probs[1, 0].isinf().nonzero().flatten().tolist() == [
        3,
        9,
    ]  # ▁Hund, Hund


def test_a_met_phrase_is_not_followed_by_a_piece_of_the_same_word():
    log_probs = close_words_(torch.zeros(1, 2, len(PIECES)), torch.tensor([[True, False]]), SPELLING.joins)
    assert [PIECES[i] for i in log_probs[0, 0].isinf().nonzero().flatten()] == ["nd", "e", "Hund", "H", "u"]
    assert not log_probs[0, 1].isinf().any()


def test_prefix_is_forced_but_the_length_limit_wins():
    prefix = torch.tensor([[4, 5], [4, NONE], [4, 5]])
    tokens = prefix_tokens(1, prefix, torch.tensor([2, 1, 2]), torch.tensor([False, False, True]))
    assert tokens.tolist() == [5, NONE, NONE]  # the second is past its prefix, the third at its length limit
    log_probs = force_prefix_(torch.zeros(3, 2, 6), tokens, torch.tensor([[-2.0, -3.0], [-4.0, -5.0], [-6.0, -7.0]]))
    assert log_probs[0].tolist() == [[-INF] * 5 + [-2.0], [-INF] * 5 + [-3.0]]
    assert (log_probs[1:] == 0).all()


def test_allocation_keeps_a_slot_for_every_bank():
    scores = torch.tensor([[-1.0, -2.0, -3.0, -9.0, -INF]])
    banks = torch.tensor([[0, 0, 0, 2, 1]])
    assert allocate(scores, banks, 2).tolist() == [[0, 3]]  # the best of bank 2, then of bank 0
    assert allocate(scores, banks, 3).tolist() == [[0, 1, 3]]  # the dead candidate comes last


def test_meets_checks_order_and_presence():
    wanted = Constraints(include=[[4, 5], [7]])
    assert meets([1, 7, 4, 5], wanted) and not meets([1, 7, 4, 5], wanted, ordered=True)
    assert not meets([4, 7], wanted) and meets([], None)


@pytest.fixture(scope="module")
def test_set():
    return get_corpus(DataConfig(), "test")


@pytest.fixture(scope="module", params=[1, 5], ids=["greedy", "beam5"])
def translator(model_path, request) -> Translator:
    return Translator.from_checkpoint(model_path, DecodeConfig(beam_size=request.param), device="cpu")


def test_a_forced_term_appears(translator, test_set):
    lines = test_set.src[:12]
    plain = translator.translate(lines)
    terms = [[random.Random(i).choice(test_set.tgt[(i + 7) % len(test_set.tgt)].split())] for i in range(12)]
    out = translator.translate(lines, constraints=terms)
    for translation, term, before in zip(out, terms, plain, strict=True):
        assert found_terms(translation.best, term) == [True], (term, translation.best, before.best)
        assert translation.met == [True] * len(translation.texts)


def test_two_terms_with_shared_subwords_appear(translator, test_set):
    line = test_set.src[3]
    words = test_set.tgt[10].split()[:2] + test_set.tgt[11].split()[:1]
    out = translator.translate([line], constraints=[words])[0]
    assert all(w in out.best for w in words), (words, out.best)
    overlapping = [words[0], f"{words[0]} {words[1]}"]
    out = translator.translate([line], constraints=[overlapping])[0]
    assert overlapping[1] in out.best and out.met[0]


def test_a_term_given_twice_appears_twice(translator, test_set):
    term = test_set.tgt[20].split()[1]
    out = translator.translate([test_set.src[5]], constraints=[[term, term]])[0]
    assert found_terms(out.best, [term, term]) == [True, True] and out.met[0], (term, out.best)


def test_a_forbidden_word_never_appears(translator, test_set):
    lines = test_set.src[:12]
    plain = translator.translate(lines)
    avoid = [[t.best.split()[0], t.best.split()[-1]] for t in plain]
    for translation, words in zip(translator.translate(lines, avoid=avoid), avoid, strict=True):
        assert not any(found_terms(translation.best, words)), (words, translation.best)


def test_a_prefix_is_kept(translator, test_set):
    lines, prefixes = test_set.src[:6], [" ".join(t.split()[-2:]) for t in test_set.tgt[10:16]]
    for translation, prefix in zip(translator.translate(lines, prefix=prefixes), prefixes, strict=True):
        assert translation.best.startswith(prefix), (prefix, translation.best)


def test_a_constraint_beyond_the_length_limit_is_reported(model_path, test_set):
    cfg = DecodeConfig(beam_size=3, n_best=2, max_len_a=0.0, max_len_b=2)
    translator = Translator.from_checkpoint(model_path, cfg, device="cpu")
    out = translator.translate([test_set.src[0]], constraints=[["Haus Hund Katze Baum Auto"]])[0]
    assert out.texts and out.met == [False] * len(out.texts)


def test_without_constraints_output_is_unchanged(translator, test_set):
    rng = random.Random(0)
    lines = rng.sample(test_set.src, 24)
    plain = translator.translate(lines)
    some = [[t.best.split()[0]] if i % 3 == 0 else [] for i, t in enumerate(plain)]  # a third get a constraint
    mixed = translator.translate(lines, constraints=some, avoid=[[]] * 24, prefix=[None] * 24)
    for i, (a, b) in enumerate(zip(plain, mixed, strict=True)):
        if not some[i]:
            assert (a.texts, a.scores) == (b.texts, b.scores)
    empty = translator.translate(lines, constraints=[[]] * 24)
    assert [(t.texts, t.scores) for t in empty] == [(t.texts, t.scores) for t in plain]


def test_a_glossary_with_ctranslate2_is_refused_before_any_line_is_translated():
    with pytest.raises(ConfigError, match=r"`glossary` terms need `backend=torch`, but backend is 'ctranslate2'"):
        check(TranslateConfig(ckpt="m", backend="ctranslate2", glossary="terms.tsv"))
    check(TranslateConfig(ckpt="m", backend="ctranslate2"))


def test_greedy_search_with_terms_searches_their_lines_with_a_few_hypotheses(model_path, test_set):
    """Greedy search gives a line with terms the best of constrained beam search of `TERMS_WIDTH` (one hypothesis
    alone would write every term first), whatever its neighbours, and the lines without terms (an empty term is
    none) plain greedy search's output."""
    lines = test_set.src[30:42]
    terms = [[test_set.tgt[30 + i].split()[-1].strip(".")] * (i % 3 == 0) + ["Hund"] * (i % 4 == 1) for i in range(12)]
    terms[2] = [""]
    greedy = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=1), device="cpu")
    mixed, plain = greedy.translate(lines, constraints=terms), greedy.translate(lines)
    termed = [i for i, t in enumerate(terms) if any(t)]
    wide = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=TERMS_WIDTH), device="cpu")
    expected = [wide.translate([lines[i]], constraints=[terms[i]])[0].texts[:1] for i in termed]
    assert termed and [mixed[i].texts for i in termed] == expected
    assert all(mixed[i].texts == plain[i].texts for i in range(12) if i not in termed)
    assert greedy_width(Constraints(include=[[]])) == greedy_width(None) == 1


def test_greedy_search_with_terms_writes_them_where_they_belong(model_path, test_set):
    """A term that greedy search writes anyway, at the end of its translation, is not pulled to the front, and
    the translation mostly stays as it was."""
    greedy = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=1), device="cpu")
    plain = greedy.translate(test_set.src[:40])
    words = [t.best.strip(".").split() for t in plain]
    picked = [i for i, w in enumerate(words) if len(w) > 3 and w[0] != w[-1]][:16]
    ruled = greedy.translate([test_set.src[i] for i in picked], constraints=[[words[i][-1]] for i in picked])
    assert len(picked) >= 8 and all(t.best.split()[0] != words[i][-1] for i, t in zip(picked, ruled, strict=True))
    same = sum(plain[i].best == t.best for i, t in zip(picked, ruled, strict=True))
    assert same >= len(picked) * 3 // 4, (same, len(picked))


def test_constrained_output_does_not_depend_on_batch_neighbours(translator, test_set):
    lines = test_set.src[20:28]
    terms = [[test_set.tgt[(i * 5) % 30].split()[-1].strip(".")] for i in range(8)]
    together = translator.translate(lines, constraints=terms)
    alone = [translator.translate([line], constraints=[term])[0] for line, term in zip(lines, terms, strict=True)]
    for a, b in zip(together, alone, strict=True):
        assert a.texts == b.texts and a.scores == pytest.approx(b.scores, abs=1e-4)


def test_n_best_hypotheses_all_meet_the_constraint(model_path, test_set):
    translator = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=5, n_best=3), device="cpu")
    term = test_set.tgt[40].split()[-1].strip(".")
    out = translator.translate([test_set.src[1]], constraints=[[term]])[0]
    assert len(out.texts) == 3 and all(term in text for text in out.texts)


def test_constraint_lists_must_match_the_lines(translator):
    with pytest.raises(ValueError, match="one entry per line"):
        translator.translate(["a", "b"], constraints=[["x"]])


def test_constraint_batch_pads_sentences_without_constraints():
    wanted = Constraints(include=[[4, 5]], avoid=[[6]], prefix=[7])
    batch = ConstraintBatch.of([None, wanted], torch.device("cpu"), spelling=SPELLING)
    assert batch.include_len.tolist() == [[0], [2]] and batch.has_include.tolist() == [False, True]
    assert batch.avoid.tolist() == [[NONE], [0]] and batch.prefix_len.tolist() == [0, 1]
    assert batch.include_times.tolist() == [[0], [1]]


def test_ensembles_and_bf16_keep_constraints(model_path, test_set):
    term = test_set.tgt[40].split()[-1].strip(".")
    pair = Translator.from_ensemble([model_path, model_path], DecodeConfig(beam_size=3), device="cpu")
    bf16 = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=3, precision="bf16"), device="cpu")
    for translator in (pair, bf16):
        assert term in translator.translate([test_set.src[1]], constraints=[[term]])[0].best


# ---- glossaries and jsonl ----


def test_glossary_matches_whole_words_longest_first(tmp_path):
    path = tmp_path / "terms.tsv"
    path.write_text("dog\tHund\nred dog\tRotfuchs\nCat\tKatze\texact\n\n")
    terms = read_glossary(path)
    assert glossary_constraints("The RED  dog sees a dog.", terms) == ["Rotfuchs", "Hund"]
    assert glossary_constraints("a cat and dogs", terms) == []
    assert glossary_constraints("a Cat", terms) == ["Katze"]


def test_bad_glossary_lines_are_named(tmp_path):
    path = tmp_path / "terms.tsv"
    path.write_text("dog\tHund\nonly one column\ncat\t\nfox\tFuchs\tloud\n")
    with pytest.raises(CorpusError) as err:
        read_glossary(path)
    assert [f"{path}, line {n}:" in str(err.value) for n in (2, 3, 4)] == [True] * 3


@pytest.mark.parametrize(
    ("line", "problem"),
    [("{", "not JSON"), ('{"txt": "a"}', "string"), ('{"text": "a", "avoid": "x"}', "list of strings")],
)
def test_bad_jsonl_lines_are_refused(line, problem):
    with pytest.raises(ValueError, match=problem):
        parse_jsonl(line)


def test_translate_cli_reads_jsonl_and_glossary(model_path, tmp_path, test_set):
    term = test_set.tgt[40].split()[-1].strip(".")
    rows = [{"text": test_set.src[1], "constraints": [term]}, {"text": test_set.src[2], "prefix": "Ein"}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.txt"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TranslateConfig(ckpt=str(model_path), input=str(src), output=str(out), input_format="jsonl")
    translate.run(replace(cfg, num_threads=1, progress=False))
    first, second = out.read_text().splitlines()
    assert term in first and second.startswith("Ein")
    (tmp_path / "terms.tsv").write_text(f"{test_set.src[1].split()[0]}\t{term}\n")
    src.write_text(test_set.src[1] + "\n")
    translate.run(replace(cfg, input_format="text", glossary=str(tmp_path / "terms.tsv"), num_threads=1))
    assert term in out.read_text()


def test_translate_cli_names_a_bad_jsonl_line(model_path, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a dog."}\n{"text": 3}\n')
    cfg = TranslateConfig(ckpt=str(model_path), input=str(src), output=str(tmp_path / "o"), input_format="jsonl")
    with pytest.raises(CorpusError, match=rf"file {src}, line 2"):
        translate.run(replace(cfg, num_threads=1, progress=False))
