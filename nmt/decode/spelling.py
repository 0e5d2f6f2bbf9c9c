"""The target vocabulary as characters: where words end, and phrases to avoid matched however they are spelled.

Subword constraints alone leak at word level: a term forced as `▁Hund` may go on as `▁Hund e`, and a model
kept from the pieces `▁Ziegelgebäude` spells the word `▁Ziegel gebäude`. `Spelling` knows each piece's
characters, so the search can close a met term at a word's end (the pieces that continue a word are masked
right after it) and block an avoided phrase in every spelling. An avoided phrase becomes a small automaton
over characters (Knuth-Morris-Pratt, whose first position is "the start or any non-word character"), run once
over every piece of the vocabulary from each of its states; the search then carries one state per hypothesis
and phrase. A piece is blocked where it completes the phrase as a word: the phrase starts after a non-word
character or at the start, and no letter or digit follows it inside the piece (a piece that ends right after
the phrase completes it: what comes next is unknown, so "Hund" blocks `▁Hund` but not `▁Hunde`).
Letters, digits and "_" are word characters, as `\\w` in Python's regular expressions; matching keeps case.
Special pieces (EOS, padding, unknown and byte pieces) spell no text: they are never blocked, and a phrase
that spells nothing once they are left out (`😀` encodes to `▁ <unk>`) is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import torch
from torch import Tensor

from nmt.data.tokenizer import Tokenizer
from nmt.errors import UserError

WORD, BOUNDARY = 0, 1  # automaton states with no progress: after a word character, after a non-word one
_WORD_MARK, _BOUNDARY_MARK = "\0w", "\0b"  # stand-ins for characters outside the phrase (never equal to one)
_SPACE = "▁"  # SentencePiece's space


def is_word_char(char: str) -> bool:
    """Letters, digits and "_" (a stand-in counts as what it stands for)."""
    return char == _WORD_MARK or (len(char) == 1 and (char.isalnum() or char == "_"))


@dataclass(frozen=True)
class AvoidTable:
    """One phrase's automaton over one vocabulary; states are `WORD`, `BOUNDARY`, then 1 + characters matched.

    Attributes:
        blocked: [S, K] the pieces that complete the phrase from each state, padded with -1.
        advancing: [S, M] the pieces that lead from each state to a state of progress, padded with -1 ...
        advance_to: [S, M] ... and the states they lead to.
        reset: [V] the state after any other piece: `BOUNDARY` if it ends in a non-word character, else `WORD`.
    """

    blocked: Tensor
    advancing: Tensor
    advance_to: Tensor
    reset: Tensor

    @property
    def states(self) -> int:
        return self.blocked.size(0)


class Spelling:
    """The characters of the target pieces (`Tokenizer.tgt_pieces()`); the `special` ones (control, unknown
    and byte pieces) count as one non-word character."""

    def __init__(self, pieces: list[str], special: set[int]) -> None:
        self.special = frozenset(special)
        self.pieces = [_SPACE if i in special else p for i, p in enumerate(pieces)]
        self.joins = torch.tensor([is_word_char(p[0]) for p in self.pieces])  # [V] pieces that go on a word
        self.table = lru_cache(maxsize=4096)(self._table)

    @cached_property
    def _chars(self) -> tuple[dict[str, int], Tensor, Tensor, Tensor]:
        """Built on the first phrase to avoid: each character's index, the pieces as character indices [V, T]
        (-1 after a piece's end), which indices are word characters (and -1 is not), and `AvoidTable.reset`."""
        chars = sorted({c for p in self.pieces for c in p})
        index = {c: i for i, c in enumerate(chars)}
        codes = torch.full((len(self.pieces), max(len(p) for p in self.pieces)), -1, dtype=torch.long)
        for row, piece in enumerate(self.pieces):
            codes[row, : len(piece)] = torch.tensor([index[c] for c in piece])
        word_chars = torch.tensor([is_word_char(c) for c in chars] + [False])
        last = codes.gather(1, (codes >= 0).sum(1, keepdim=True) - 1).squeeze(1)  # [V]
        return index, codes, word_chars, torch.where(word_chars[last], WORD, BOUNDARY)

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> Spelling:
        """The spelling of `tokenizer`'s target vocabulary."""
        return cls(tokenizer.tgt_pieces(), tokenizer.tgt_special_ids())

    def text(self, ids: list[int] | tuple[int, ...]) -> str:
        """The phrase spelled by `ids`, without the space SentencePiece puts before its first word."""
        return "".join(self.pieces[i] for i in ids).removeprefix(_SPACE)

    def spells_text(self, ids: list[int] | tuple[int, ...]) -> bool:
        """Whether `ids` spell a character other than a space once the special pieces are left out."""
        return any(c != _SPACE for i in ids if i not in self.special for c in self.pieces[i])

    def _table(self, ids: tuple[int, ...]) -> AvoidTable:
        """The automaton of the phrase `ids` spell (cached: `self.table(ids)`); special pieces are never blocked.

        Raises:
            ValueError: `ids` spell no text (`spells_text`).
        """
        if not self.spells_text(ids):
            raise ValueError(f"a phrase to avoid must spell text, but the pieces {list(ids)} spell none.")
        phrase = list(self.text(ids))
        char_index, codes, word_chars, reset = self._chars
        moves = _moves(phrase)  # [S, A + 3]: the phrase's own characters, two stand-ins, padding
        column = torch.full((len(char_index) + 1,), -1, dtype=torch.long)  # character index -> column
        for char, col in {c: phrase.index(c) for c in phrase}.items():
            if char in char_index:
                column[char_index[char]] = col
        other = len(phrase)  # column of the two stand-ins, chosen by the character's kind
        cols = column[codes]  # [V, T]
        cols = torch.where(cols >= 0, cols, other + (~word_chars[codes]).long())
        cols = cols.masked_fill(codes < 0, other + 2)  # past the piece's end: stay
        done = len(phrase) + 1
        states = torch.arange(done + 1).unsqueeze(1).expand(-1, len(self.pieces))  # [S, V] start in each
        blocked = torch.zeros(states.shape, dtype=torch.bool)
        after = torch.cat([codes[:, 1:], codes.new_full((len(self.pieces), 1), -1)], 1)  # [V, T]
        free = ~word_chars[after]  # no word character follows inside the piece (or the piece ends)
        for t in range(codes.size(1)):
            states = moves[states, cols[:, t]]
            blocked |= (states == done) & (codes[:, t] >= 0) & free[:, t]
        blocked[:, sorted(self.special)] = False  # EOS must stay possible: at the length limit it is all there is
        progress = (states > BOUNDARY) & ~blocked
        return AvoidTable(
            blocked=_rows(blocked),
            advancing=_rows(progress),
            advance_to=_rows(progress, states),
            reset=reset,
        )


def refuse_textless(phrases: Sequence[Sequence[str]], encoded: Sequence[list[list[int]]], spelling: Spelling) -> None:
    """Refuse, all at once, the phrases to avoid (each line's, as given and as target ids) whose pieces spell no
    text: only characters the vocabulary lacks (an emoji, `▁ <unk>`), which nothing could match.

    Raises:
        UserError: naming each such phrase and its line (1-based, among the lines given).
    """
    bad = [
        f"{phrase!r} (line {line})"
        for line, (given, ids_of) in enumerate(zip(phrases, encoded, strict=True), start=1)
        for phrase, ids in zip(given, ids_of, strict=True)
        if ids and not spelling.spells_text(ids)
    ]
    if bad:
        raise UserError(
            f"`avoid` phrases must spell text in the target vocabulary, but {', '.join(bad)} spell only characters "
            "it lacks."
        )


def _rows(mask: Tensor, values: Tensor | None = None) -> Tensor:
    """For each row of `mask` [S, V], the columns (or `values` there) where it is True, padded with -1: [S, K]."""
    width = max(int(mask.sum(1).max()), 1)
    out = torch.full((mask.size(0), width), -1, dtype=torch.long)
    for row in range(mask.size(0)):
        found = mask[row].nonzero().squeeze(1)
        out[row, : found.numel()] = found if values is None else values[row, found]
    return out


def _moves(phrase: list[str]) -> Tensor:
    """The automaton's moves [S, A + 3]: from each state (`WORD`, `BOUNDARY`, 1 + characters matched, the
    last one complete) on each of the phrase's distinct characters (columns in order of first appearance,
    repeats pointing to the first), on any other word character, any other non-word character, and no
    character (padding: stay)."""
    n, first_is_word = len(phrase), is_word_char(phrase[0])
    alphabet = [phrase[i] for i in range(n)] + [_WORD_MARK, _BOUNDARY_MARK]

    def state_after(text: list[str]) -> int:
        """The state of `text`: the longest phrase prefix ending it, preceded by the start or a non-word
        character where the phrase begins with a word character."""
        for k in range(min(n, len(text) - 1), 0, -1):
            if text[-k:] == phrase[:k] and (not first_is_word or not is_word_char(text[-k - 1])):
                return 1 + k
        return WORD if is_word_char(text[-1]) else BOUNDARY

    starts = [[_WORD_MARK], [_BOUNDARY_MARK]] + [[_BOUNDARY_MARK, *phrase[:k]] for k in range(1, n + 1)]
    table = [[state_after(text + [char]) for char in alphabet] + [state] for state, text in enumerate(starts)]
    return torch.tensor(table)
