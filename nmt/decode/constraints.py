"""Lexical constraints as pure, vectorised step functions: phrases to include, phrases to avoid, forced prefixes.

Each sentence may carry C positive constraints (subword phrases that must appear, in any order or in the given
order), A negative ones (phrases never completed: the token that would complete one is masked) and a forced
prefix. Per hypothesis the state is two tensors: which constraints are met, and how far each unmet one has
progressed (the longest prefix of the phrase that ends the history, as in Knuth-Morris-Pratt, so repeated
subwords and overlapping phrases are tracked exactly). Candidates are allocated to the beam over banks of
equal progress, best of each bank first: dynamic beam allocation (Post & Vilar 2018) in the vectorised form
of Hu et al. (2019) and fairseq's `LexicallyConstrainedBeamSearch`.

Shapes: B sentences, W hypotheses each (R = B*W rows), C positive and A negative phrases of at most L subwords,
N candidates per sentence, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

NONE = -1  # padding of phrases; a padded position of an avoided phrase matches any token
BEFORE = -2  # history before the first token: matches no phrase token


@dataclass(frozen=True)
class Constraints:
    """One sentence's constraints, as target subword ids.

    Args:
        include: phrases that must appear (positive constraints).
        avoid: phrases that must never be completed (negative constraints).
        prefix: ids the output starts with.
    """

    include: list[list[int]] = field(default_factory=list)
    avoid: list[list[int]] = field(default_factory=list)
    prefix: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.include or self.avoid or self.prefix)


def _pad(rows: list[list[list[int]]], right: bool = False) -> Tensor:
    """Phrases of each sentence as one tensor [B, C, L], padded with `NONE` (left-aligned, or right-aligned)."""
    count = max((len(r) for r in rows), default=0)
    width = max((len(p) for r in rows for p in r), default=0)
    out = torch.full((len(rows), count, max(width, 1)), NONE, dtype=torch.long)
    for b, phrases in enumerate(rows):
        for c, phrase in enumerate(phrases):
            start = out.size(2) - len(phrase) if right else 0
            out[b, c, start : start + len(phrase)] = torch.tensor(phrase, dtype=torch.long)
    return out


@dataclass(frozen=True)
class ConstraintBatch:
    """The constraints of a batch of sentences as tensors, indexed by batch row."""

    include: Tensor  # [B, C, L] left-aligned, NONE-padded
    include_len: Tensor  # [B, C] subwords of each phrase; 0 = no phrase
    avoid: Tensor  # [B, A, L] right-aligned, NONE-padded
    prefix: Tensor  # [B, P] NONE-padded
    prefix_len: Tensor  # [B]
    ordered: bool = False  # positive constraints must appear in the given order

    @classmethod
    def of(cls, items: list[Constraints | None], device: torch.device, ordered: bool = False) -> ConstraintBatch:
        items = [c or Constraints() for c in items]
        include = _pad([[p for p in c.include if p] for c in items])
        prefixes = _pad([[c.prefix] for c in items])[:, 0]  # [B, 1, P] -> [B, P]
        return cls(
            include=include.to(device),
            include_len=(include != NONE).sum(2).to(device),
            avoid=_pad([[p for p in c.avoid if p] for c in items], right=True).to(device),
            prefix=prefixes.to(device),
            prefix_len=(prefixes != NONE).sum(1).to(device),
            ordered=ordered,
        )

    def rows(self, rows: Tensor) -> ConstraintBatch:
        """The constraints of the sentences `rows` [b]."""
        return ConstraintBatch(
            self.include[rows],
            self.include_len[rows],
            self.avoid[rows],
            self.prefix[rows],
            self.prefix_len[rows],
            self.ordered,
        )

    @property
    def has_include(self) -> Tensor:
        """[B] True for sentences with at least one positive constraint."""
        return (self.include_len > 0).any(1)


@dataclass(frozen=True)
class ConstraintState:
    """Per hypothesis: which positive constraints are met and how far each unmet one has progressed."""

    met: Tensor  # [b, W, C] bool
    progress: Tensor  # [b, W, C] subwords of the phrase that end the history

    @classmethod
    def start(cls, batch: int, constraints: int, device: torch.device) -> ConstraintState:
        met = torch.zeros(batch, 1, constraints, dtype=torch.bool, device=device)
        return cls(met, torch.zeros(batch, 1, constraints, dtype=torch.long, device=device))

    def keep(self, kept: Tensor | None) -> ConstraintState:
        """The state of the sentences `kept` [n] that go on (all when None)."""
        return self if kept is None else ConstraintState(self.met[kept], self.progress[kept])


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
    met: Tensor, ends: Tensor, include: Tensor, include_len: Tensor, ordered: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """The state after one token: met and progress [b, N, C] and bank [b, N] of each candidate.

    Args:
        met: met constraints of each candidate's origin, [b, N, C].
        ends: the candidate's last L tokens (its new token last), [b, N, L].
        include, include_len: the phrases, [b, C, L] and [b, C].
        ordered: a phrase counts only once the ones before it are met.

    The bank is the subwords of constraints produced: all of each met phrase, plus the furthest progress
    in an unmet one.
    """
    progress = progress_of(ends, include, include_len)  # [b, N, C]
    if ordered:  # a phrase may progress only once every earlier one is met
        earlier = torch.cat([torch.ones_like(met[..., :1]), met[..., :-1]], dim=2).cummin(2).values
        progress = progress * earlier
    lengths = include_len.unsqueeze(1)  # [b, 1, C]
    met = met | ((progress == lengths) & (lengths > 0))
    partial = progress * ~met  # [b, N, C]
    bank = (met * lengths).sum(2) + (partial.amax(2) if partial.size(2) else 0)  # [b, N]
    return met, progress, bank


def wanted_tokens(progress: Tensor, met: Tensor, include: Tensor, include_len: Tensor) -> Tensor:
    """The next subword of every unmet phrase for each hypothesis, NONE where there is none: [b, W, C].

    Args:
        progress, met: [b, W, C]; include [b, C, L]; include_len [b, C].
    """
    at = progress.clamp(max=include.size(2) - 1)  # [b, W, C]
    tokens = include.unsqueeze(1).expand(-1, progress.size(1), -1, -1).gather(3, at.unsqueeze(3)).squeeze(3)
    return tokens.masked_fill(met | (include_len.unsqueeze(1) == 0), NONE)


def avoid_(log_probs: Tensor, ends: Tensor, avoid: Tensor) -> Tensor:
    """Mask, in place, every token that would complete an avoided phrase.

    Args:
        log_probs: [b, W, V].
        ends: the last L-1 tokens of each history, [b, W, L-1].
        avoid: phrases [b, A, L], right-aligned; NONE-padded positions match any token.

    Returns:
        `log_probs`.
    """
    if avoid.size(1) == 0:
        return log_probs
    head, last = avoid[:, :, :-1], avoid[:, :, -1]  # [b, A, L-1], [b, A]
    match = (head.unsqueeze(1) == ends.unsqueeze(2)) | (head.unsqueeze(1) == NONE)  # [b, W, A, L-1]
    hit = match.all(3) & (last.unsqueeze(1) != NONE)  # [b, W, A]
    index = last.clamp(min=0).unsqueeze(1).expand_as(hit)  # [b, W, A]
    # scatter_add, not scatter: two phrases may end in the same token.
    blocked = torch.zeros_like(log_probs).scatter_add_(2, index, hit.to(log_probs.dtype))  # [b, W, V]
    return log_probs.masked_fill_(blocked > 0, float("-inf"))


def force_prefix_(log_probs: Tensor, step: int, prefix: Tensor, prefix_len: Tensor, free: Tensor) -> Tensor:
    """Allow, in place, only the prefix's token at `step` in sentences still inside their prefix.

    Args:
        log_probs: [b, W, V].
        prefix, prefix_len: [b, P] and [b].
        free: [b] rows the rule must leave alone (those at their maximum length: EOS wins).
    """
    if step >= prefix.size(1):
        return log_probs
    forced = (prefix_len > step) & ~free  # [b]
    token = prefix[:, step].clamp(min=0).view(-1, 1, 1).expand(-1, log_probs.size(1), 1)  # [b, W, 1]
    value = log_probs.gather(2, token)  # [b, W, 1]
    kept = torch.where(forced.view(-1, 1, 1), float("-inf"), log_probs).scatter_(2, token, value)
    return log_probs.copy_(kept)


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


def meets(ids: list[int], constraints: Constraints | None, ordered: bool = False) -> bool:
    """Whether the output `ids` contains every positive constraint (in order, with `ordered`): the search's
    `met` flag, recomputed on a finished hypothesis for engines that do not report it."""
    start = 0
    for phrase in constraints.include if constraints is not None else []:
        n = len(phrase)
        at = next((i for i in range(start, len(ids) - n + 1) if ids[i : i + n] == phrase), None)
        if phrase and at is None:
            return False
        start = at + n if ordered and phrase else 0
    return True
