"""Synonym replacement keeps a batch within the token budget it was cut to: a synonym of more pieces than its
word is put in only where the row stays within the batch's width."""

from __future__ import annotations

from nmt.data.batching import collate
from nmt.data.synonyms import SynonymTable, replace_synonyms
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

CAT, OTHER = 5, 9
FELINE = (6, 7, 8)  # a synonym of three pieces for the one-piece word CAT
TABLE = SynonymTable(
    words={(CAT,): [FELINE], FELINE: [(CAT,)]},
    by_first={CAT: [(CAT,)], FELINE[0]: [FELINE]},
    joins=[False] * 10,  # every piece starts a word
)


def sources(rows: list[list[int]]) -> list[list[int]]:
    batch = collate(rows, [[OTHER]] * len(rows), PAD_ID, BOS_ID, EOS_ID, index=list(range(len(rows))))
    out = replace_synonyms(batch, TABLE, rate=1.0, seed=0, epoch=0)  # rate 1: every word found is drawn
    assert out.src.shape == batch.src.shape  # the batch keeps the width its token budget was counted on
    assert out.src_tokens == int((out.src != PAD_ID).sum())
    return [[t for t in row if t not in (PAD_ID, EOS_ID)] for row in out.src.tolist()]


def test_a_longer_synonym_is_put_in_only_where_the_row_stays_within_the_batch_width() -> None:
    # Width 5 (4 ids + EOS): the first row grows to 4 ids, the second would grow to 6 and keeps its word.
    assert sources([[CAT, OTHER], [OTHER, OTHER, OTHER, CAT]]) == [[*FELINE, OTHER], [OTHER, OTHER, OTHER, CAT]]
    # The same row in a batch two ids wider has the room.
    wide = sources([[CAT, OTHER], [OTHER, OTHER, OTHER, CAT], [OTHER] * 6])
    assert wide[1] == [OTHER, OTHER, OTHER, *FELINE]


def test_a_row_keeps_every_replacement_that_fits_and_a_shorter_synonym_always_fits() -> None:
    # Width 6 (5 ids + EOS): the first CAT grows the row to 5 ids, the second would make it 7 and stays.
    assert sources([[CAT, OTHER, CAT], [OTHER] * 5])[0] == [*FELINE, OTHER, CAT]
    assert sources([[*FELINE, OTHER]]) == [[CAT, OTHER]]  # narrower rows are padded to the batch width
