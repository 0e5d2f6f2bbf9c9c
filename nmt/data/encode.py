"""Decoding and SentencePiece-encoding corpus chunks, in worker processes, in order, with bounded memory.

The reading process only splits files into chunks of raw lines; the workers decode them (with the
file and line in any error), encode both sides and return flat id arrays. At most two chunks per
worker are in flight, so memory stays flat however large the corpus.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from nmt.data.corpus import check_lines
from nmt.data.links import parse_links, word_starts
from nmt.data.tokenizer import Tokenizer


@dataclass
class Chunk:
    """Consecutive raw lines of a source file and the aligned target file."""

    source: int  # which file pair of the split (for per-file checks)
    src_name: str  # for errors: "file train.en"
    tgt_name: str
    first: int  # 1-based line number of the first line
    src: list[bytes]
    tgt: list[bytes]
    keep_text: bool  # also return the decoded target lines (validation references)
    links: list[bytes] | None = None  # the pairs' word links (guided alignment), one raw line each
    links_name: str = ""  # for errors: "file train.align"
    first_link: int = 1  # the line of the links file of the first pair


@dataclass
class EncodedChunk:
    """Token ids of a chunk's pairs: each side's ids concatenated, and the length of every row."""

    source: int
    src_ids: np.ndarray
    src_lens: np.ndarray
    tgt_ids: np.ndarray
    tgt_lens: np.ndarray
    tgt_text: list[str] | None
    links: np.ndarray | None = None  # flat `source, target` word indices of every pair
    links_lens: np.ndarray | None = None  # indices per pair


_worker_tokenizer: Tokenizer | None = None


def _start_worker(models: dict[str, bytes]) -> None:
    global _worker_tokenizer
    _worker_tokenizer = Tokenizer.from_bytes(models)


@functools.cache
def _word_starts(tokenizer: Tokenizer) -> tuple[np.ndarray, np.ndarray]:
    return word_starts(tokenizer)


def encode_chunk(chunk: Chunk, tokenizer: Tokenizer | None = None) -> EncodedChunk:
    """Decode and encode one chunk with `tokenizer` (in a worker: the one it was started with).

    Raises:
        CorpusError: a line is not UTF-8 or holds a NUL byte.
    """
    tokenizer = tokenizer or _worker_tokenizer
    assert tokenizer is not None, "encode_chunk runs in a worker started by encode_chunks, or gets a tokenizer"
    src = list(check_lines(chunk.src, chunk.src_name, chunk.first))
    tgt = list(check_lines(chunk.tgt, chunk.tgt_name, chunk.first))
    src_ids, src_lens = _flat(tokenizer.encode_src(src))
    tgt_ids, tgt_lens = _flat(tokenizer.encode_tgt(tgt))
    encoded = EncodedChunk(chunk.source, src_ids, src_lens, tgt_ids, tgt_lens, tgt if chunk.keep_text else None)
    if chunk.links is not None:
        words = [
            _words(ids, lens, starts)
            for ids, lens, starts in zip((src_ids, tgt_ids), (src_lens, tgt_lens), _word_starts(tokenizer), strict=True)
        ]
        encoded.links, encoded.links_lens = parse_links(chunk.links, chunk.links_name, chunk.first_link, *words)
    return encoded


def _words(ids: np.ndarray, lengths: np.ndarray, starts: np.ndarray) -> list[int]:
    """The number of words of each row of flat `ids` (a non-empty row has at least one)."""
    begins = starts[ids].astype(np.int64)
    begins[np.cumsum(lengths)[lengths > 0] - lengths[lengths > 0]] = 1  # a row's first piece begins a word
    ends = np.cumsum(lengths)
    totals = np.concatenate([[0], np.cumsum(begins)])
    return (totals[ends] - totals[ends - lengths]).tolist()


def _flat(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ids as one uint32 array of all ids and an int64 array of row lengths."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    ids = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.uint32, count=int(lengths.sum()))
    return ids, lengths


def encode_chunks(chunks: Iterable[Chunk], tokenizer: Tokenizer, workers: int) -> Iterator[EncodedChunk]:
    """Encode `chunks` in order with `workers` processes (1: in this process)."""
    if workers <= 1:
        for chunk in chunks:
            yield encode_chunk(chunk, tokenizer)
        return
    # fork: workers start at once and share the parent's pages; nothing in a prepare has started threads.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with context.Pool(workers, initializer=_start_worker, initargs=(tokenizer.to_bytes(),)) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.apply_async(encode_chunk, (chunk,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
