"""Word links of training pairs for guided alignment: read from Pharaoh lines, checked against the pairs' words,
and turned into each batch's target attention.

A links file has one line per training pair, in the training files' order, of 0-indexed `source-target` word
pairs (`0-0 1-2 2-1`, as eflomal, fast_align and `nmt-align` write; `ipj` possible links count as links). Words
are the pieces' words: SentencePiece marks the first piece of every space-separated word with "▁"
(`nmt.decode.align.word_index`), so word i of a line is its i-th space-separated word.
"""

from __future__ import annotations

import numpy as np

from nmt.data.corpus import CorpusError, check_lines
from nmt.data.tokenizer import Tokenizer

WORD_START = "\u2581"  # "▁", SentencePiece's mark of a piece that begins a word


def word_starts(tokenizer: Tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """For each source and each target id, whether its piece begins a word ("▁..."), as bool arrays over the
    vocabularies."""
    src, tgt = (
        np.array([p.startswith(WORD_START) for p in pieces])
        for pieces in (tokenizer.src_pieces(), tokenizer.tgt_pieces())
    )
    return src, tgt


def piece_words(ids: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The word of each piece of one row of ids: a piece beginning a word starts the next one, as does the first."""
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    begins = starts[ids]
    begins[0] = True
    return np.cumsum(begins) - 1


def parse_links(
    raw: list[bytes], name: str, first: int, src_words: list[int], tgt_words: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Pharaoh lines as one flat array of `source, target` word indices per row, and each row's count of indices.

    Args:
        raw: the lines, one per pair.
        name: for errors: "file train.align".
        first: the 1-based number of the first line.
        src_words, tgt_words: the words each pair's source and target has, to check the links against.

    Raises:
        CorpusError: a line that is not UTF-8 or not Pharaoh, or a link past its pair's words; file and line named.
    """
    flat: list[int] = []
    lengths = np.zeros(len(raw), dtype=np.int64)
    for row, line in enumerate(check_lines(raw, name, first)):
        number = first + row
        start = len(flat)
        for link in line.split():
            parts = link.replace("p", "-").split("-")
            if len(parts) != 2 or not all(part.isdigit() for part in parts):
                raise CorpusError(f"{name}, line {number}: {link!r} is not a link; links are `i-j` (0-indexed words).")
            i, j = int(parts[0]), int(parts[1])
            if i >= src_words[row] or j >= tgt_words[row]:
                raise CorpusError(
                    f"{name}, line {number}: link {link} is past the pair's words ({src_words[row]} source, "
                    f"{tgt_words[row]} target); the links file must follow the training pairs line by line."
                )
            flat += [i, j]
        lengths[row] = len(flat) - start
    return np.asarray(flat, dtype=np.int64), lengths


def attention_targets(
    src: np.ndarray, tgt_out: np.ndarray, links: list[np.ndarray], starts: tuple[np.ndarray, np.ndarray], pad_id: int
) -> np.ndarray:
    """The cross-attention each target piece should have, [B, T, S]: spread evenly over the source pieces of the
    words its word is linked to; all zero for a piece whose word has no link, for EOS and for padding.

    Row t belongs to target piece t (`tgt_out[:, t]`): the decoder step that predicts it, as `nmt-align` and the
    search read links by default (`method=attention`).

    Args:
        src: [B, S] source ids with EOS and padding.
        tgt_out: [B, T] target ids with EOS and padding.
        links: each pair's links, flat `source, target` word indices.
        starts: `word_starts` of the tokenizer.
        pad_id: padding id; EOS is the last non-pad position of each row.
    """
    batch, tgt_len = tgt_out.shape
    out = np.zeros((batch, tgt_len, src.shape[1]), dtype=np.float32)
    for b, flat in enumerate(links):
        if not len(flat):
            continue
        src_ids, tgt_ids = src[b][src[b] != pad_id][:-1], tgt_out[b][tgt_out[b] != pad_id][:-1]  # EOS dropped
        src_word, tgt_word = piece_words(src_ids, starts[0]), piece_words(tgt_ids, starts[1])
        linked = np.zeros((int(tgt_word.max()) + 1, int(src_word.max()) + 1), dtype=np.float32)
        linked[flat[1::2], flat[0::2]] = 1.0
        rows = linked[tgt_word][:, src_word]  # [T_b, S_b]: piece t linked to piece s
        total = rows.sum(axis=1, keepdims=True)
        out[b, : len(tgt_ids), : len(src_ids)] = np.divide(rows, total, out=np.zeros_like(rows), where=total > 0)
    return out
