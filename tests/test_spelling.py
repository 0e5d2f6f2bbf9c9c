"""Phrases to avoid next to special pieces: EOS is never blocked, and a phrase that spells no text is refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nmt.config import DecodeConfig, TokenizerConfig
from nmt.data.corpus import CorpusError
from nmt.data.tokenizer import Tokenizer, _train_model
from nmt.decode.constrained import mask_
from nmt.decode.constraints import ConstraintBatch, Constraints, ConstraintState, avoid_states
from nmt.decode.spelling import Spelling
from nmt.decode.terms import segments
from nmt.decode.translator import Translator
from nmt.errors import UserError

# The package's special ids (PAD 0, UNK 1, BOS 2, EOS 3), then a few pieces.
PIECES = ["<pad>", "<unk>", "<s>", "</s>", "▁Hund", "▁", "e", "▁(", ","]
SPECIAL = {0, 1, 2, 3}
EOS, HUND, SPACE, UNK = 3, 4, 5, 1
SPELLING = Spelling(PIECES, SPECIAL)


@pytest.mark.parametrize("ids", [[HUND, UNK], [HUND, SPACE, UNK], [HUND, 8], [7, UNK, HUND]])
def test_special_pieces_are_never_blocked(ids):
    table = SPELLING.table(tuple(ids))
    blocked = set(table.blocked.flatten().tolist())
    assert blocked - {-1}, ids  # the phrase is blocked somewhere ...
    assert not blocked & SPECIAL, ids  # ... but never by a special piece


def test_eos_ends_a_sentence_at_its_length_limit_after_part_of_an_avoided_phrase():
    batch = ConstraintBatch.of([Constraints(avoid=[[HUND, UNK]])], torch.device("cpu"), spelling=SPELLING)
    state = ConstraintState.start(batch)  # "Hund<unk>": the piece ▁Hund, then any special piece would complete it
    after_hund = avoid_states(state.avoid, batch.avoid, batch.avoid_tables, torch.tensor([[HUND]]))
    state = ConstraintState(state.found, state.met, state.progress, state.closing, after_hund)
    for at_max in (False, True):
        log_probs = mask_(torch.zeros(1, 1, len(PIECES)), 1, torch.tensor([at_max]), batch, state, EOS)
        assert log_probs[0, 0, EOS].item() == 0.0, at_max


@pytest.mark.parametrize("ids", [[SPACE, UNK], [UNK], [SPACE, 2, SPACE]])
def test_a_phrase_that_spells_no_text_is_refused(ids):
    assert not SPELLING.spells_text(ids)
    with pytest.raises(ValueError, match=rf"must spell text, but the pieces \{ids}\ spell none"):
        ConstraintBatch.of([Constraints(avoid=[ids])], torch.device("cpu"), spelling=SPELLING)
    assert SPELLING.spells_text([*ids, HUND]) and SPELLING.spells_text([8])


@pytest.fixture(scope="module")
def engineless_translator() -> Translator:
    """A translator whose tokenizer has no emoji; its engine is never reached."""
    lines = ["der Hund läuft über die Straße.", "ein Mann liest ein Buch.", "die Katze schläft im Haus."] * 20
    tokenizer = Tokenizer(_train_model(lines, TokenizerConfig(vocab_size=60)))
    return Translator(SimpleNamespace(max_src_len=64), tokenizer, DecodeConfig())


def test_the_translator_names_every_phrase_to_avoid_that_spells_no_text(engineless_translator):
    assert engineless_translator.tokenizer.encode_tgt(["😀"])[0][-1] == UNK  # the vocabulary has no emoji
    with pytest.raises(UserError) as err:
        engineless_translator.translate(["a", "b"], avoid=[["Hund"], ["Katze", "😀", "😀😀"]])
    message = str(err.value)
    assert "'😀' (line 2), '😀😀' (line 2)" in message and "Hund" not in message and "Katze" not in message


def test_a_jsonl_file_names_its_own_line_of_a_phrase_that_spells_no_text(engineless_translator):
    """`nmt-translate` reads a file in chunks: the line named is the file's, checked as the line is read."""
    lines = ['{"text": "a"}', '{"text": "b", "avoid": ["Hund"]}', '{"text": "c", "avoid": ["Katze", "😀"]}']
    found = segments(iter(lines), "terms.jsonl", True, [], engineless_translator.textless)
    assert [next(found).text, next(found).avoid] == ["a", ["Hund"]]
    with pytest.raises(CorpusError, match=r"terms.jsonl, line 3: `avoid` phrases .* but '😀' spell only"):
        next(found)
