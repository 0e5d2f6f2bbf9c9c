"""Lexical constraints as pure, vectorised step functions: phrases to include, phrases to avoid, forced prefixes.

Each sentence may carry C positive constraints (subword phrases that must appear, in any order or in the given
order, each ending where a word ends; a phrase given twice must appear twice), A negative ones (phrases never
written as words, however they are spelled: `nmt.decode.spelling`) and a forced prefix. Per hypothesis the
state is how often each positive phrase has occurred (up to the times it is asked for), which are met, how
far each unmet one has progressed (the longest prefix of the phrase that ends the history, as in
Knuth-Morris-Pratt, so repeated subwords and overlapping phrases are tracked exactly), whether the last token
completed one (then no piece that goes on the word may follow) and each avoided phrase's automaton state.
Candidates are allocated to the beam over banks of equal progress, best of each bank first: dynamic beam
allocation (Post & Vilar 2018) in the vectorised form of Hu et al. (2019) and fairseq's
`LexicallyConstrainedBeamSearch`. A phrase contained in another may be met by the same occurrence (`die` and `die
auf dem`); repeats of one phrase are counted, overlapping occurrences included.

Shapes: B sentences, W hypotheses each (R = B*W rows), C positive phrases of at most L subwords, A negative
ones, N candidates per sentence, V vocabulary; P avoided phrases in the batch, S states, K pieces per state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from nmt.decode.spelling import BOUNDARY, AvoidTable, Spelling

NONE = -1  # padding of phrases
BEFORE = -2  # history before the first token: matches no phrase token


@dataclass(frozen=True)
class Constraints:
    """One sentence's constraints, as target subword ids.

    Args:
        include: phrases that must appear (positive constraints).
        avoid: phrases that must never be written (negative constraints), each in its own spelling.
        prefix: ids the output starts with.
    """

    include: list[list[int]] = field(default_factory=list)
    avoid: list[list[int]] = field(default_factory=list)
    prefix: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.include or self.avoid or self.prefix)


def _pad(rows: list[list[list[int]]]) -> Tensor:
    """Phrases of each sentence as one tensor [B, C, L], left-aligned and padded with `NONE`."""
    count = max((len(r) for r in rows), default=0)
    width = max((len(p) for r in rows for p in r), default=0)
    out = torch.full((len(rows), count, max(width, 1)), NONE, dtype=torch.long)
    for b, phrases in enumerate(rows):
        for c, phrase in enumerate(phrases):
            out[b, c, : len(phrase)] = torch.tensor(phrase, dtype=torch.long)
    return out


def _times(phrases: list[tuple[int, ...]], ordered: bool) -> list[tuple[tuple[int, ...], int]]:
    """The phrases to track and the times each must occur: in order, every phrase as given, once each;
    else each distinct phrase, as often as it is given."""
    if ordered:
        return [(p, 1) for p in phrases]
    return [(p, phrases.count(p)) for p in dict.fromkeys(phrases)]


def _stack(tables: list[AvoidTable], device: torch.device) -> AvoidTable:
    """The automata of a batch's avoided phrases as one table [P, S, K], rows and columns padded with -1."""
    states = max(t.states for t in tables)

    def stacked(name: str) -> Tensor:
        width = max(getattr(t, name).size(1) for t in tables)
        out = torch.full((len(tables), states, width), NONE, dtype=torch.long)
        for p, table in enumerate(tables):
            part = getattr(table, name)
            out[p, : part.size(0), : part.size(1)] = part
        return out.to(device)

    return AvoidTable(stacked("blocked"), stacked("advancing"), stacked("advance_to"), tables[0].reset.to(device))


@dataclass(frozen=True)
class ConstraintBatch:
    """The constraints of a batch of sentences as tensors, indexed by batch row."""

    include: Tensor  # [B, C, L] left-aligned, NONE-padded
    include_len: Tensor  # [B, C] subwords of each phrase; 0 = no phrase
    include_times: Tensor  # [B, C] the times each phrase must occur; 0 = no phrase
    avoid: Tensor  # [B, A] index of each avoided phrase in `avoid_tables`, NONE for none
    avoid_tables: AvoidTable | None  # [P, S, *] the automata of the batch's avoided phrases (None: there are none)
    prefix: Tensor  # [B, P] NONE-padded
    prefix_len: Tensor  # [B]
    joins: Tensor | None = None  # [V] pieces that go on a word: none may follow a met phrase (None: no rule)
    ordered: bool = False  # positive constraints must appear in the given order

    @classmethod
    def of(
        cls,
        items: list[Constraints | None],
        device: torch.device,
        ordered: bool = False,
        spelling: Spelling | None = None,
    ) -> ConstraintBatch:
        """The batch of `items` (None: no constraints); `spelling` of the target vocabulary closes met phrases
        at a word's end and matches avoided ones on characters.

        Raises:
            ValueError: a phrase to avoid without a `spelling`.
        """
        items = [c or Constraints() for c in items]
        wanted = [_times([tuple(p) for p in c.include if p], ordered) for c in items]
        include = _pad([[list(p) for p, _ in w] for w in wanted])
        times = _pad([[[n for _, n in w]] for w in wanted])
        prefixes = _pad([[c.prefix] for c in items])[:, 0]  # [B, 1, P] -> [B, P]
        phrases = list(dict.fromkeys(tuple(p) for c in items for p in c.avoid if p))
        if phrases and spelling is None:
            raise ValueError("phrases to avoid are matched on characters: the search needs the target spelling.")
        index = {phrase: i for i, phrase in enumerate(phrases)}
        avoid = _pad([[[index[tuple(p)]] for p in c.avoid if p] for c in items])[:, :, 0]  # [B, A]
        return cls(
            include=include.to(device),
            include_len=(include != NONE).sum(2).to(device),
            include_times=times[:, 0, : include.size(1)].clamp(min=0).to(device),
            avoid=avoid.to(device),
            avoid_tables=_stack([spelling.table(p) for p in phrases], device) if phrases else None,
            prefix=prefixes.to(device),
            prefix_len=(prefixes != NONE).sum(1).to(device),
            joins=spelling.joins.to(device) if spelling is not None else None,
            ordered=ordered,
        )

    def rows(self, rows: Tensor) -> ConstraintBatch:
        """The constraints of the sentences `rows` [b]."""
        return replace(
            self,
            include=self.include[rows],
            include_len=self.include_len[rows],
            include_times=self.include_times[rows],
            avoid=self.avoid[rows],
            prefix=self.prefix[rows],
            prefix_len=self.prefix_len[rows],
        )

    @property
    def has_include(self) -> Tensor:
        """[B] True for sentences with at least one positive constraint."""
        return (self.include_len > 0).any(1)


@dataclass(frozen=True)
class ConstraintState:
    """Per hypothesis: how often each positive phrase has occurred, which are met, how far each unmet one has
    progressed, whether its last token completed one, and where each avoided phrase's automaton stands."""

    found: Tensor  # [b, W, C] occurrences, at most the phrase's `include_times`
    met: Tensor  # [b, W, C] bool
    progress: Tensor  # [b, W, C] subwords of the phrase that end the history
    closing: Tensor  # [b, W] bool: the last token met a positive phrase
    avoid: Tensor  # [b, W, A] automaton states (`nmt.decode.spelling`)

    @classmethod
    def start(cls, batch: ConstraintBatch) -> ConstraintState:
        b, c = batch.include_len.shape
        device = batch.include.device
        return cls(
            found=torch.zeros(b, 1, c, dtype=torch.long, device=device),
            met=torch.zeros(b, 1, c, dtype=torch.bool, device=device),
            progress=torch.zeros(b, 1, c, dtype=torch.long, device=device),
            closing=torch.zeros(b, 1, dtype=torch.bool, device=device),
            avoid=torch.full((b, 1, batch.avoid.size(1)), BOUNDARY, dtype=torch.long, device=device),
        )

    def keep(self, kept: Tensor | None) -> ConstraintState:
        """The state of the sentences `kept` [n] that go on (all when None)."""
        if kept is None:
            return self
        return ConstraintState(
            self.found[kept], self.met[kept], self.progress[kept], self.closing[kept], self.avoid[kept]
        )


def all_met(met: Tensor, include_len: Tensor) -> Tensor:
    """[b, W] True where every positive constraint is met; met [b, W, C], include_len [b, C]."""
    return (met | (include_len == 0).unsqueeze(1)).all(2)


def tail(history: Tensor, length: int) -> Tensor:
    """The last `length` tokens of each history [..., t], left-padded with `BEFORE`: [..., length]."""
    t = history.size(-1)
    if t >= length:
        return history[..., t - length :]
    pad = history.new_full((*history.shape[:-1], length - t), BEFORE)
    return torch.cat([pad, history], dim=-1)


def progress_of(ends: Tensor, include: Tensor, include_len: Tensor) -> Tensor:
    """For each phrase, the longest j <= its length such that its first j subwords end the history.

    Args:
        ends: the last L tokens of each history, [b, N, L].
        include: phrases, [b, C, L] left-aligned.
        include_len: [b, C].

    Returns:
        progress [b, N, C].
    """
    length = ends.size(2)
    j = torch.arange(1, length + 1, device=ends.device)  # [L] candidate progress
    i = torch.arange(length, device=ends.device)  # [L] position inside the phrase
    # Phrase position i (< j) lines up with history position L - j + i.
    index = (length - j.unsqueeze(1) + i).clamp(max=length - 1)  # [L(j), L(i)]
    aligned = ends[:, :, index]  # [b, N, L(j), L(i)]
    same = aligned.unsqueeze(2) == include[:, None, :, None, :]  # [b, N, 1, j, i] vs [b, 1, C, 1, i]
    same |= (i >= j.unsqueeze(1)).view(1, 1, 1, length, length)  # positions past j do not count
    fits = same.all(4) & (j.view(1, 1, 1, -1) <= include_len[:, None, :, None])  # [b, N, C, L(j)]
    return (fits * j).amax(3)  # [b, N, C]


def advance(
    found: Tensor, ends: Tensor, include: Tensor, include_len: Tensor, times: Tensor, ordered: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The state after one token: occurrences, met and progress [b, N, C] and bank [b, N] of each candidate.

    Args:
        found: occurrences of each phrase in each candidate's origin, [b, N, C].
        ends: the candidate's last L tokens (its new token last), [b, N, L].
        include, include_len, times: the phrases [b, C, L], their lengths and the times each must occur [b, C].
        ordered: a phrase counts only once the ones before it are met.

    The bank is the subwords of constraints produced: each phrase's length for each occurrence asked for, plus
    the furthest progress in an unmet one.
    """
    times = times.unsqueeze(1)  # [b, 1, C]
    progress = progress_of(ends, include, include_len)  # [b, N, C]
    if ordered:  # a phrase may progress only once every earlier one is met
        met = found >= times
        earlier = torch.cat([torch.ones_like(met[..., :1]), met[..., :-1]], dim=2).cummin(2).values
        progress = progress * earlier
    lengths = include_len.unsqueeze(1)  # [b, 1, C]
    found = torch.minimum(found + ((progress == lengths) & (lengths > 0)).long(), times)
    met = found >= times
    partial = progress * ~met  # [b, N, C]
    bank = (found * lengths).sum(2) + (partial.amax(2) if partial.size(2) else 0)  # [b, N]
    return found, met, progress, bank


def wanted_tokens(progress: Tensor, met: Tensor, include: Tensor, include_len: Tensor) -> Tensor:
    """The next subword of every unmet phrase for each hypothesis, NONE where there is none: [b, W, C].

    Args:
        progress, met: [b, W, C]; include [b, C, L]; include_len [b, C].
    """
    at = progress.clamp(max=include.size(2) - 1)  # [b, W, C]
    tokens = include.unsqueeze(1).expand(-1, progress.size(1), -1, -1).gather(3, at.unsqueeze(3)).squeeze(3)
    return tokens.masked_fill(met | (include_len.unsqueeze(1) == 0), NONE)


def avoid_(log_probs: Tensor, states: Tensor, avoid: Tensor, tables: AvoidTable | None) -> Tensor:
    """Mask, in place, every piece that would complete an avoided phrase as a word.

    Args:
        log_probs: [b, W, V].
        states: each hypothesis's automaton state per phrase, [b, W, A].
        avoid: the phrases' rows in `tables`, [b, A] (NONE: no phrase).
        tables: the batch's automata [P, S, K].

    Returns:
        `log_probs`.
    """
    if tables is None or avoid.size(1) == 0:
        return log_probs
    b, w, v = log_probs.shape
    pieces = tables.blocked[avoid.clamp(min=0).unsqueeze(1), states]  # [b, W, A, K]
    pieces = pieces.masked_fill((avoid < 0).view(b, 1, -1, 1) | (pieces < 0), v).view(b, w, -1)  # v: no piece
    blocked = torch.zeros(b, w, v + 1, dtype=torch.bool, device=log_probs.device).scatter_(2, pieces, True)
    return log_probs.masked_fill_(blocked[:, :, :v], float("-inf"))


def avoid_states(states: Tensor, avoid: Tensor, tables: AvoidTable | None, tokens: Tensor) -> Tensor:
    """The automaton states after each hypothesis's new token.

    Args:
        states: the states of each hypothesis's origin, [b, K, A].
        avoid: [b, A]; tables: the batch's automata; tokens: the new tokens, [b, K].

    Returns:
        [b, K, A].
    """
    if tables is None or avoid.size(1) == 0:
        return states
    rows = (avoid.clamp(min=0).unsqueeze(1), states)  # [b, 1, A], [b, K, A]
    hit = tables.advancing[rows] == tokens.view(*tokens.shape, 1, 1)  # [b, K, A, M]
    moved = (tables.advance_to[rows] * hit).sum(3)  # [b, K, A]: a piece appears once per row
    return torch.where(hit.any(3), moved, tables.reset[tokens].unsqueeze(2))


def close_words_(log_probs: Tensor, closing: Tensor, joins: Tensor | None) -> Tensor:
    """Mask, in place, the pieces that go on a word ([V] `joins`) right after a positive phrase was met
    ([b, W] `closing`): a term ends where a word ends."""
    if joins is not None:
        log_probs.masked_fill_(closing.unsqueeze(2) & joins, float("-inf"))
    return log_probs


def prefix_tokens(step: int, prefix: Tensor, prefix_len: Tensor, free: Tensor) -> Tensor:
    """The token each sentence must write at `step` (< P) [b], NONE where none is forced: past its prefix,
    or at its maximum length (`free` [b]: EOS wins).

    Args:
        prefix, prefix_len: [b, P] and [b].
    """
    return prefix[:, step].masked_fill(~((prefix_len > step) & ~free), NONE)


def force_prefix_(log_probs: Tensor, tokens: Tensor, values: Tensor) -> Tensor:
    """Allow, in place, only the forced token of each sentence ([b] `tokens`, NONE: leave the row alone), at
    its `values` [b, W] (taken before any other mask: inside its prefix, the prefix wins)."""
    forced = (tokens >= 0).view(-1, 1, 1)  # [b, 1, 1]
    index = tokens.clamp(min=0).view(-1, 1, 1).expand(-1, log_probs.size(1), 1)  # [b, W, 1]
    kept = log_probs.masked_fill(forced, float("-inf")).scatter_(2, index, values.unsqueeze(2))
    return log_probs.copy_(torch.where(forced, kept, log_probs))


def forbid_early_eos_(log_probs: Tensor, done: Tensor, eos_id: int, free: Tensor) -> Tensor:
    """Forbid EOS, in place, to hypotheses whose positive constraints are not all met ([b, W] `done`),
    except in sentences at their maximum length ([b] `free`), where EOS is the only choice."""
    stop = ~done & ~free.unsqueeze(1)  # [b, W]
    log_probs[:, :, eos_id].masked_fill_(stop, float("-inf"))
    return log_probs


def unique_(scores: Tensor, cells: Tensor) -> Tensor:
    """Set, in place, the score of every repeated candidate (same cell [b, N] as an earlier one) to -inf."""
    order = cells.argsort(dim=1, stable=True)  # [b, N]
    ordered = cells.gather(1, order)
    repeat = torch.zeros_like(cells, dtype=torch.bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    dup = torch.zeros_like(repeat).scatter_(1, order, repeat)  # back to candidate order
    return scores.masked_fill_(dup, float("-inf"))


def allocate(scores: Tensor, banks: Tensor, k: int) -> Tensor:
    """Dynamic beam allocation: `k` candidates per sentence taken round-robin over the banks.

    The best candidate of every bank comes first (highest bank first), then every bank's second best, and
    so on (fairseq's striping), so slots a bank cannot fill go to the others. Dead (-inf) candidates last.

    Args:
        scores: [b, N] candidate scores; banks: [b, N] their constraint progress.

    Returns:
        positions into the N candidates, [b, k], best score first.
    """
    n = scores.size(1)
    place = scores.argsort(dim=1, descending=True, stable=True).argsort(1)  # [b, N] rank by score
    same = banks.unsqueeze(2) == banks.unsqueeze(1)  # [b, N, N]
    rank = (same & (place.unsqueeze(1) < place.unsqueeze(2))).sum(2)  # [b, N] rank inside its bank
    top = int(banks.max()) + 1 if banks.numel() else 1
    key = rank * top + (top - 1 - banks)  # [b, N]
    key = torch.where(scores > float("-inf"), key, n * top + place)  # dead ones last
    pick = key.topk(k, dim=1, largest=False).indices  # [b, k]
    return pick.gather(1, scores.gather(1, pick).argsort(dim=1, descending=True, stable=True))


# Hypotheses greedy search keeps for a sentence with terms: dynamic beam allocation with one would always extend
# the hypothesis that has written most of the terms, and so write every term first. One per bank (1 + the terms'
# subwords) was measured slower and worse than 5 (docs/translate.md, "How well it works").
TERMS_WIDTH = 5


def greedy_width(constraints: Constraints | None) -> int:
    """The hypotheses greedy search keeps for a sentence: `TERMS_WIDTH` where it has terms, else one."""
    return TERMS_WIDTH if constraints is not None and any(constraints.include) else 1


def meets(ids: list[int], constraints: Constraints | None, ordered: bool = False) -> bool:
    """Whether the output `ids` contains every positive constraint (as often as it is given; in order, with
    `ordered`): the search's `met` flag, recomputed on a finished hypothesis for engines that do not report it.

    The rule is `advance`'s: occurrences may overlap, and in order each phrase counts at its first
    occurrence that ends after the previous phrase's counted one ends (`die` then `die auf dem`: one
    `die auf dem` is enough).
    """
    phrases = [p for p in constraints.include if p] if constraints is not None else []
    if not ordered:
        return all(len(_ends(ids, p)) >= phrases.count(p) for p in phrases)
    end = -1
    for phrase in phrases:
        end = next((e for e in _ends(ids, phrase) if e > end), None)
        if end is None:
            return False
    return True


def _ends(ids: list[int], phrase: list[int]) -> list[int]:
    """Where each occurrence of `phrase` in `ids` ends (its last index), overlapping occurrences included."""
    n = len(phrase)
    return [i + n - 1 for i in range(len(ids) - n + 1) if ids[i : i + n] == phrase]
