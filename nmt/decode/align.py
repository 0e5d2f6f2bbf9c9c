"""From subword cross-attention to word alignments over the words of the given (space-separated) text.

SentencePiece marks the first piece of every space-separated word with "▁", so the words of a
tokenized text, punctuation included, are recovered from the pieces alone (except where a character
outside the vocabulary turns "▁" and the character into one `<unk>` piece: that word then joins the
one before; character offsets from SentencePiece would cover that case). A source word receives
the attention mass of all its pieces (summed); a target word attends as the mean of its pieces.
Each target word is then linked to the source word it attends to most (Bahdanau et al. 2015's reading
of attention as alignment).

`Aligner` reads the attention by teacher forcing a given target, from one decoder layer averaged over
heads, at one of two steps: `attention` reads the step that predicts the target piece, `shift` the
step where it is the decoder's input (Chen et al. 2020, shift-attention: by then the decoder has seen
the word, and the attention looks at its source). Links of two directions combine with `symmetrize`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from nmt.checkpoint import SpecialIds, aligned_layer, load_checkpoint
from nmt.data.batching import Batch, teacher_forcing_batches
from nmt.data.links import WORD_START
from nmt.data.tokenizer import Tokenizer
from nmt.decode.engine import load_model
from nmt.device import resolve_device
from nmt.model import Transformer

Link = tuple[int, int]  # (source word, target word), 0-indexed
# (target start, target end, source start, source end): a target piece's characters in a translation and those of
# the source piece it attends to most
CharLink = tuple[int, int, int, int]
METHODS = ("attention", "shift")
SYMMETRIZATIONS = ("intersection", "union", "grow-diag")


def default_layer(asked: int | None, aligned: int | None) -> int:
    """The decoder layer to read links from: the one asked, else the one the model was trained to align
    (`aligned`, guided alignment), else the last."""
    if asked is not None:
        return asked
    return aligned if aligned is not None else -1


def format_links(links: Iterable[Link]) -> str:
    """Pharaoh format, 0-indexed, sorted by source then target word: `0-0 1-2 2-1`."""
    return " ".join(f"{i}-{j}" for i, j in sorted(links))


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


def search_links(
    attn: Tensor, src_pieces: Sequence[str], tgt_pieces: Sequence[str], method: str = "attention"
) -> set[Link]:
    """Word links of one hypothesis from the attention its search computed, [T + 1, S + 1] (rows: its pieces then
    EOS; columns: the source pieces then EOS), read as `method` reads it (see `Aligner`). An empty side (a search
    that wrote EOS first) has no links."""
    if not src_pieces or not tgt_pieces:
        return set()
    rows = _rows(attn, len(tgt_pieces), len(src_pieces), method)
    return argmax_links(word_attention(rows, word_index(tgt_pieces), word_index(src_pieces)))


def char_links(
    attn: Tensor, src_spans: Sequence[tuple[int, int]], tgt_spans: Sequence[tuple[int, int]], method: str = "attention"
) -> list[CharLink]:
    """Each target piece (its character span) with the source piece it attends to most, from the search's
    attention [T + 1, S + 1] as in `search_links`: the subword links that carry markup onto a translation."""
    if not src_spans or not tgt_spans:
        return []
    rows = _rows(attn, len(tgt_spans), len(src_spans), method)
    return [(*tgt_spans[t], *src_spans[s]) for t, s in enumerate(rows.argmax(dim=1).tolist())]


def _rows(attn: Tensor, n_tgt: int, n_src: int, method: str) -> Tensor:
    """The attention rows that link each of `n_tgt` target pieces, over the `n_src` source pieces (EOS dropped)."""
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {', '.join(METHODS)}, but is {method!r} instead.")
    start = 1 if method == "shift" else 0  # shift: the step where the piece is the decoder's input
    return attn[start : start + n_tgt, :n_src].float()


def symmetrize(forward: set[Link], backward: set[Link], method: str = "grow-diag") -> set[Link]:
    """Combine source->target links with target->source ones (already as (source, target) pairs).

    `intersection` keeps the links both directions agree on (precise), `union` all (complete);
    `grow-diag` starts from the intersection and adds union links next to an accepted one
    (diagonals included) that align a word not yet aligned (Koehn et al. 2003).
    """
    if method not in SYMMETRIZATIONS:
        raise ValueError(f"`method` must be one of {', '.join(SYMMETRIZATIONS)}, but is {method!r} instead.")
    both, either = forward & backward, forward | backward
    if method == "intersection":
        return both
    if method == "union":
        return either
    links = set(both)
    grew = True
    while grew:
        grew = False
        for i, j in sorted(links):
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    new = (i + di, j + dj)
                    if new in either and new not in links and _unaligned(links, new):
                        links.add(new)
                        grew = True
    return links


def _unaligned(links: set[Link], link: Link) -> bool:
    """Whether the link's source word or its target word has no link yet."""
    return all(i != link[0] for i, _ in links) or all(j != link[1] for _, j in links)


def bidirectional_links(
    forward: list[set[Link]], backward: list[set[Link]], method: str = "grow-diag"
) -> list[set[Link]]:
    """Symmetrize each pair's links with those of the reverse model (whose links are (target, source))."""
    return [symmetrize(f, {(i, j) for j, i in b}, method) for f, b in zip(forward, backward, strict=True)]


class Aligner:
    """Word alignments of sentence pairs from a model's cross-attention, by teacher forcing the target.

    Args:
        model: the network, in eval mode, on the device it runs on.
        tokenizer: its tokenizer; words are the space-separated words of the given text.
        max_tokens: padded target tokens per batch.
        aligned_layer: the decoder layer the model was trained to align (guided alignment), read when no layer is
            asked; None: the last.
    """

    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        special_ids: SpecialIds,
        max_tokens: int = 4096,
        aligned_layer: int | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.special_ids = special_ids
        self.max_tokens = max_tokens
        self.aligned_layer = aligned_layer
        self._src_vocab, self._tgt_vocab = tokenizer.src_pieces(), tokenizer.tgt_pieces()

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", max_tokens: int = 4096) -> Aligner:
        """The aligner of a self-contained checkpoint (loaded safely, as for translation)."""
        ckpt = load_checkpoint(path)
        model, tokenizer = load_model(ckpt, path)
        return cls(model.to(resolve_device(device)), tokenizer, ckpt.special_ids, max_tokens, aligned_layer(ckpt))

    def align(
        self, pairs: Sequence[tuple[str, str]], method: str = "attention", layer: int | None = None
    ) -> list[set[Link]]:
        """The links of each (source, target) pair, for one method and decoder layer (negative: from the top;
        None: `aligned_layer`, else the last); the defaults are nmt-align's."""
        layer = default_layer(layer, self.aligned_layer)
        return self.align_all(pairs, [method], [layer])[method, layer]

    def align_all(
        self, pairs: Sequence[tuple[str, str]], methods: Sequence[str], layers: Sequence[int]
    ) -> dict[tuple[str, int], list[set[Link]]]:
        """Links per pair for every (method, layer) asked, from one teacher-forced pass per batch."""
        for method in methods:
            if method not in METHODS:
                raise ValueError(f"`method` must be one of {', '.join(METHODS)}, but is {method!r} instead.")
        for layer in layers:
            self.model.check_cross_attention(layer)
        limit = self.model.cfg.max_positions - 1  # room for EOS or BOS
        src_ids = [ids[:limit] for ids in self.tokenizer.encode_src([src for src, _ in pairs])]
        tgt_ids = [ids[:limit] for ids in self.tokenizer.encode_tgt([tgt for _, tgt in pairs])]
        links = {(m, layer): [set() for _ in pairs] for m in methods for layer in layers}  # an empty side: none
        for batch in teacher_forcing_batches(src_ids, tgt_ids, self.special_ids, self.max_tokens):
            attn = self._attention(batch, layers)
            for row, i in enumerate(batch.index.tolist()):
                src, tgt = src_ids[i], tgt_ids[i]
                src_words = word_index([self._src_vocab[t] for t in src])
                tgt_words = word_index([self._tgt_vocab[t] for t in tgt])
                for layer, weights in zip(layers, attn, strict=True):
                    for method in methods:
                        start = 1 if method == "shift" else 0  # shift: the step where the piece is the input
                        rows = weights[row, start : start + len(tgt), : len(src)]  # EOS and padding dropped
                        links[method, layer][i] = argmax_links(word_attention(rows, tgt_words, src_words))
        return links

    @torch.inference_mode()
    def _attention(self, batch: Batch, layers: Sequence[int]) -> list[Tensor]:
        """Head-averaged cross-attention of each asked layer, [B, T+1, S+1], for `[BOS] + tgt` given `src + [EOS]`."""
        device = next(self.model.parameters()).device
        _, maps = self.model.attention_maps(batch.src.to(device), batch.tgt_in.to(device))
        return [maps.cross[layer].float().mean(1).cpu() for layer in layers]
