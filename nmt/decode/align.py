"""From subword cross-attention to word alignments over the words of the given (space-separated) text.

SentencePiece marks the first piece of every space-separated word with "▁", so the words of a
tokenized text, punctuation included, are recovered from the pieces alone (except where a character
outside the vocabulary turns "▁" and the character into one `<unk>` piece: that word then joins the
one before; character offsets from SentencePiece would cover that case). A source word receives
the attention mass of all its pieces (summed); a target word attends as the mean of its pieces.
Each target word is then linked to the source word it attends to most (Bahdanau et al. 2015's reading
of attention as alignment; the attention to read, and at which step, is the caller's choice).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Link = tuple[int, int]  # (source word, target word), 0-indexed
WORD_START = "\u2581"  # "▁", SentencePiece's mark of a piece that begins a word


def word_index(pieces: Sequence[str]) -> list[int]:
    """The word each piece belongs to: a piece starting with "▁" begins the next word (so does the first)."""
    words: list[int] = []
    current = -1
    for piece in pieces:
        if piece.startswith(WORD_START) or current < 0:
            current += 1
        words.append(current)
    return words


def word_attention(attn: Tensor, tgt_words: Sequence[int], src_words: Sequence[int]) -> Tensor:
    """Subword attention [T, S] (rows: target pieces, columns: source pieces) as word attention [T_w, S_w].

    Columns of one source word are summed (the attention mass the word receives); rows of one target word
    are averaged (how the word attends, whatever its number of pieces).
    """
    if attn.shape != (len(tgt_words), len(src_words)):
        raise ValueError(
            f"`attn` must be [{len(tgt_words)}, {len(src_words)}] like the pieces, not {list(attn.shape)}."
        )
    src_index = torch.tensor(src_words, device=attn.device)
    tgt_index = torch.tensor(tgt_words, device=attn.device)
    n_src, n_tgt = int(src_index.max()) + 1, int(tgt_index.max()) + 1
    by_src = attn.new_zeros(len(tgt_words), n_src).index_add_(1, src_index, attn)  # [T, S_w]
    summed = attn.new_zeros(n_tgt, n_src).index_add_(0, tgt_index, by_src)  # [T_w, S_w]
    counts = torch.bincount(tgt_index, minlength=n_tgt).to(attn.dtype)
    return summed / counts[:, None]


def argmax_links(word_attn: Tensor) -> set[Link]:
    """Each target word linked to the source word it attends to most, as (source, target) pairs."""
    return {(int(src), tgt) for tgt, src in enumerate(word_attn.argmax(dim=1).tolist())}
