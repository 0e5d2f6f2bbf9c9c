"""Constraint rules against each other: a prefix wins over the other masks, and the search's `met` agrees
with `meets` (the flag recomputed on finished output), on hand-made numbers."""

from __future__ import annotations

import random

import pytest
import torch

from nmt.decode.constrained import candidates, mask_, select
from nmt.decode.constraints import (
    ConstraintBatch,
    Constraints,
    ConstraintState,
    advance,
    all_met,
    meets,
    tail,
    wanted_tokens,
)
from nmt.decode.spelling import Spelling

PIECES = ["<pad>", "<unk>", "<s>", "</s>", "▁Hund", "e", "futter", "▁der", "."]
EOS, HUND, E, FUTTER, DER = 3, 4, 5, 6, 7
SPELLING = Spelling(PIECES, {0, 1, 2, 3})
CPU = torch.device("cpu")


def _decode(constraints: Constraints, steps: int) -> list[list[float]]:
    """Greedy steps of the constrained search over a flat model (every piece at log-prob -1): each step's
    masked log-probs of the one hypothesis, as the search's own functions compute them."""
    batch = ConstraintBatch.of([constraints], CPU, spelling=SPELLING)
    state, history, seen = ConstraintState.start(batch), torch.zeros(1, 1, 0, dtype=torch.long), []
    for step in range(steps):
        log_probs = mask_(torch.full((1, 1, len(PIECES)), -1.0), step, torch.tensor([False]), batch, state, EOS)
        seen.append(log_probs[0, 0].tolist())
        wanted = wanted_tokens(state.progress, state.met, batch.include, batch.include_len)
        found = candidates(log_probs, torch.zeros(1, 1), 1, EOS, wanted)
        (_, tokens, _), state, _ = select(found, history, batch, state, 1, EOS)
        history = torch.cat([history, tokens.unsqueeze(2)], dim=2)  # [1, 1, step + 1]
    return seen


@pytest.mark.parametrize(
    "constraints",
    [
        Constraints(include=[[HUND]], prefix=[HUND, E, FUTTER]),  # the prefix writes the term inside a longer word
        Constraints(avoid=[[HUND]], prefix=[DER, HUND]),  # the prefix holds a word to avoid
        Constraints(include=[[DER]], avoid=[[HUND, E]], prefix=[HUND, E, FUTTER]),
    ],
)
def test_a_prefix_is_written_whatever_the_other_rules_say(constraints):
    for step, log_probs in enumerate(_decode(constraints, len(constraints.prefix))):
        assert log_probs == [-1.0 if i == constraints.prefix[step] else -float("inf") for i in range(len(PIECES))]


def test_after_the_prefix_the_other_rules_apply_again():
    *_, after = _decode(Constraints(include=[[HUND]], avoid=[[DER]], prefix=[HUND]), 2)
    blocked = {PIECES[i] for i, value in enumerate(after) if value == -float("inf")}
    assert blocked == {"e", "futter", "▁der"}  # the met term ends its word; the avoided word stays out


def _search_met(ids: list[int], include: list[list[int]], ordered: bool) -> bool:
    """Whether the search's state, advanced over `ids` one token at a time, has every phrase met."""
    batch = ConstraintBatch.of([Constraints(include=include)], CPU, ordered=ordered)
    found = torch.zeros(1, 1, batch.include.size(1), dtype=torch.long)
    met = found >= batch.include_times.unsqueeze(1)
    for t in range(len(ids)):
        ends = tail(torch.tensor([[ids[: t + 1]]]), batch.include.size(2))  # [1, 1, L]
        found, met, _, _ = advance(found, ends, batch.include, batch.include_len, batch.include_times, ordered)
    return bool(all_met(met, batch.include_len).item())


@pytest.mark.parametrize(
    ("ids", "include", "expected"),
    [
        ([5, 6], [[5], [5, 6]], True),  # the second phrase ends after the first: overlaps count
        ([5, 5, 5], [[5, 5], [5, 5]], True),
        ([5, 6], [[6], [5, 6]], False),  # both end at the same token
        ([5, 6, 5], [[5, 6], [5]], True),
        ([6, 5], [[5], [6]], False),
    ],
)
def test_ordered_constraints_follow_one_rule(ids, include, expected):
    assert _search_met(ids, include, ordered=True) == expected
    assert meets(ids, Constraints(include=include), ordered=True) == expected


@pytest.mark.parametrize("ordered", [False, True], ids=["any_order", "ordered"])
def test_meets_agrees_with_the_search_on_random_outputs(ordered):
    rng = random.Random(ordered)
    for _ in range(300):
        ids = [rng.choice([5, 6, 7]) for _ in range(rng.randrange(0, 7))]
        include = [[rng.choice([5, 6]) for _ in range(rng.randrange(1, 3))] for _ in range(rng.randrange(1, 4))]
        assert meets(ids, Constraints(include=include), ordered) == _search_met(ids, include, ordered), (ids, include)
