"""Turn a configured corpus into a prepared directory (see `nmt.data.prepared`), streaming it.

    sample (seeded) -> train or load the tokenizer -> encode in worker processes -> filter -> write

The corpus is read as chunks of raw lines, never held whole: training pairs that are empty, longer than `max_len`
or too unequal in length are dropped and counted; validation pairs are all kept (cut to `max_len` tokens) so that
validation BLEU covers the whole split. `nmt-train` without `data.prepared` prepares its corpus into the cache once
(`load_training_data`): under DDP one rank prepares, holding a file lock, while the others wait for it.
"""

from __future__ import annotations

import collections
import dataclasses
import fcntl
import functools
import hashlib
import itertools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from nmt.checkpoint import load_checkpoint
from nmt.config import DataConfig, PrepareConfig, TokenizerConfig
from nmt.config.options import fields_with_role
from nmt.data.corpus import CorpusError, FilterStats, check_file, check_lines, filter_mask, raw_lines
from nmt.data.encode import Chunk, EncodedChunk, encode_chunks
from nmt.data.prepared import (
    MANIFEST,
    VERSION,
    PreparedCorpus,
    PreparedError,
    PreparedWriter,
    open_prepared,
    remove_stale_leftovers,
)
from nmt.data.sources import get_corpus, split_files
from nmt.data.tokenizer import TRAINING_VERSION, Tokenizer, tokenizer_options, train_tokenizer
from nmt.device import usable_cores

# Corpus options added after the cache key was fixed: they enter it only when set, so that a cache prepared
# before them is still found.
ADDED_CORPUS_OPTIONS = ("train_links",)
CHUNK_LINES = 10_000  # lines per unit of work: large enough to amortise the hand-over, small for memory


@dataclass
class _Side:
    """One file of a file pair (or a generated side), opened anew on every pass."""

    name: str  # "file train.en" or "builtin train.en"
    lines: Callable[[], Iterator[bytes]]


def _sources(data: DataConfig, split: Any) -> list[tuple[_Side, _Side]]:
    """The file pairs of a split, or the generated built-in corpus as one pair."""
    if data.name == "builtin":
        text = get_corpus(data, split)
        names = (f"builtin {split}.{data.src_lang}", f"builtin {split}.{data.tgt_lang}")
        return [
            (
                _Side(names[0], functools.partial(_as_bytes, text.src)),
                _Side(names[1], functools.partial(_as_bytes, text.tgt)),
            )
        ]
    return [
        (
            _Side(f"file {src}", functools.partial(raw_lines, src)),
            _Side(f"file {tgt}", functools.partial(raw_lines, tgt)),
        )
        for src, tgt in split_files(data, split)
    ]


def _as_bytes(lines: list[str]) -> Iterator[bytes]:
    return (line.encode("utf-8") + b"\n" for line in lines)


def _chunks(
    sources: list[tuple[_Side, _Side]], keep_text: bool, size: int, links: _Side | None = None
) -> Iterator[Chunk]:
    """Each file pair in chunks of `size` aligned raw lines, with the lines of `links` (one per pair of all the
    file pairs, in order) beside them.

    Raises:
        CorpusError: a file is empty, the two files of a pair have different numbers of lines, or `links` has
            another number of lines than the pairs.
    """
    link_lines, links_name = (links.lines(), links.name) if links is not None else (None, "")
    read = 0  # links lines handed out
    for index, (src, tgt) in enumerate(sources):
        pairs = itertools.zip_longest(src.lines(), tgt.lines())
        first = 1
        while block := list(itertools.islice(pairs, size)):
            if None in block[-1]:  # one file ended before the other: count both out for the message
                rest = [*block, *pairs]
                counts = [first - 1 + sum(line is not None for line in side) for side in zip(*rest, strict=True)]
                _check_aligned(src, counts[0], tgt, counts[1])
            chunk = Chunk(index, src.name, tgt.name, first, [a for a, _ in block], [b for _, b in block], keep_text)
            if link_lines is not None:
                chunk.links, chunk.links_name = list(itertools.islice(link_lines, len(block))), links_name
                if len(chunk.links) < len(block):
                    raise CorpusError(
                        f"{links_name} has {read + len(chunk.links)} lines, fewer than the training pairs."
                    )
                chunk.first_link, read = read + 1, read + len(block)
            yield chunk
            first += len(block)
        if first == 1:
            raise CorpusError(f"{src.name} is empty.")
    if link_lines is not None and next(link_lines, None) is not None:
        raise CorpusError(f"{links_name} has more lines than the {read} training pairs.")


def _check_aligned(src: _Side, src_count: int, tgt: _Side, tgt_count: int) -> None:
    """Raise the error of a file pair that is empty or does not align line by line."""
    for side, count in ((src, src_count), (tgt, tgt_count)):
        if count == 0:
            raise CorpusError(f"{side.name} is empty.")
    raise CorpusError(
        f"{src.name.removeprefix('file ')} has {src_count} lines but {tgt.name.removeprefix('file ')} has "
        f"{tgt_count}; the files must align line by line."
    )


def sample_pairs(sources: list[tuple[_Side, _Side]], size: int, seed: int) -> tuple[list[str], list[str]]:
    """`size` pairs drawn uniformly without replacement (seeded), in corpus order; all pairs when fewer.

    A pure function of the corpus and `seed`, whatever its size: the tokenizer trained on the sample
    is reproducible. Only the drawn lines are decoded.
    """
    counts = []
    for src, tgt in sources:  # counted first, so a corpus that cannot be prepared fails before any training
        src_count, tgt_count = _count(src.lines()), _count(tgt.lines())
        if src_count != tgt_count or not src_count:
            _check_aligned(src, src_count, tgt, tgt_count)
        counts.append(src_count)
    total = sum(counts)
    picks = (
        np.arange(total) if total <= size else np.sort(np.random.default_rng(seed).choice(total, size, replace=False))
    )
    src_out: list[str] = []
    tgt_out: list[str] = []
    start = 0
    for (src, tgt), count in zip(sources, counts, strict=True):
        wanted = picks[(picks >= start) & (picks < start + count)] - start
        for side, out in ((src, src_out), (tgt, tgt_out)):
            lines, position = side.lines(), 0
            for number in wanted.tolist():  # islice skips the lines between draws without decoding them
                raw = next(itertools.islice(lines, number - position, None))
                out.extend(check_lines([raw], side.name, number + 1))
                position = number + 1
        start += count
    return src_out, tgt_out


def _count(lines: Iterator[bytes]) -> int:
    """How many lines an iterator yields, consumed in C (no Python step per line)."""
    counter = itertools.count()
    collections.deque(zip(lines, counter, strict=False), maxlen=0)
    return next(counter)


def _select(ids: np.ndarray, lengths: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of flat `ids` where `keep` is true."""
    return ids[np.repeat(keep, lengths)], lengths[keep]


def _cut(ids: np.ndarray, lengths: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row of flat `ids` cut to its first `max_len` ids."""
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return ids[np.arange(len(ids)) - starts < max_len], np.minimum(lengths, max_len)


def _write_split(
    writer: PreparedWriter,
    split: str,
    encoded: Iterator[EncodedChunk],
    sources: list[tuple[_Side, _Side]],
    data: DataConfig,
) -> dict[str, Any]:
    """Write one split's encoded chunks (filtered for train, cut for valid); return its manifest entry."""
    stats = FilterStats(0, 0, 0, 0, 0, data.max_len, data.max_ratio)
    has_text = [[False, False] for _ in sources]
    tokens = {"src": 0, "tgt": 0}
    for chunk in encoded:
        has_text[chunk.source][0] |= bool(chunk.src_lens.any())
        has_text[chunk.source][1] |= bool(chunk.tgt_lens.any())
        if split == "train":
            keep, part = filter_mask(chunk.src_lens, chunk.tgt_lens, data.max_len, data.max_ratio)
            stats = stats + part
            rows = {
                "src": _select(chunk.src_ids, chunk.src_lens, keep),
                "tgt": _select(chunk.tgt_ids, chunk.tgt_lens, keep),
            }
            if chunk.links is not None and chunk.links_lens is not None:  # dropped pairs drop their links
                rows["links"] = _select(chunk.links, chunk.links_lens, keep)
        else:
            rows = {
                "src": _cut(chunk.src_ids, chunk.src_lens, data.max_len),
                "tgt": _cut(chunk.tgt_ids, chunk.tgt_lens, data.max_len),
            }
            count = len(chunk.src_lens)
            stats = dataclasses.replace(stats, total=stats.total + count, kept=stats.kept + count)
            writer.refs += chunk.tgt_text or []
        for side, (ids, lengths) in rows.items():
            writer.add(split, side, ids, lengths)
            tokens[side] = tokens.get(side, 0) + len(ids)
    for (src, tgt), (src_text, tgt_text) in zip(sources, has_text, strict=True):
        for side, text in ((src, src_text), (tgt, tgt_text)):
            if not text:
                raise CorpusError(f"{side.name} has only empty lines.")
    if split == "train" and stats.kept == 0:  # a run on it would train nothing and write no model
        names = ", ".join(side.name for pair in sources for side in pair)
        raise CorpusError(
            f"no training pair of {names} is left after filtering ({stats}): raise data.max_len or max_ratio."
        )
    return {
        "pairs": stats.kept,
        "src_tokens": tokens["src"],
        "tgt_tokens": tokens["tgt"],
        **({"links": tokens["links"] // 2} if "links" in tokens else {}),
        "filter": dataclasses.asdict(stats),
    }


def prepare_corpus(
    data: DataConfig,
    tokenizer_cfg: TokenizerConfig,
    output: str | Path,
    workers: int = 1,
    tokenizer: Tokenizer | None = None,
    chunk_lines: int = CHUNK_LINES,
) -> dict[str, Any]:
    """Prepare the train and valid splits of `data` into the directory `output`; return its manifest.

    Args:
        data: the corpus, its splits and the filter (`max_len`, `max_ratio`).
        tokenizer_cfg: SentencePiece options; the model is trained on `input_sentence_size` pairs
            sampled with `sample_seed` (and cached by their content), unless `tokenizer` is given.
        output: the directory to write; it must not exist.
        workers: encoding processes at most (1: encode in this process); a split of fewer chunks
            gets one per chunk, so a split of one chunk is encoded in this process.
        tokenizer: a tokenizer to use as it is (a checkpoint's, for resuming or fine-tuning).
        chunk_lines: lines per unit of work.

    Raises:
        CorpusError: a malformed corpus (file and line named).
    """
    output = Path(output).expanduser()
    sources = {split: _sources(data, getattr(data, split)) for split in ("train", "valid")}
    given = tokenizer is not None
    if tokenizer is None:
        src, tgt = sample_pairs(sources["train"], tokenizer_cfg.input_sentence_size, tokenizer_cfg.sample_seed)
        for side, lines in zip(sources["train"][0], (src, tgt), strict=True):
            if not any(lines):  # nothing to train a tokenizer on (the encode pass names any other empty file)
                raise CorpusError(f"{side.name} has only empty lines.")
        tokenizer = train_tokenizer(src, tgt, tokenizer_cfg, Path(data.cache_dir).expanduser() / "spm")
        del src, tgt
    with PreparedWriter(output, tokenizer) as writer:
        splits = {}
        links = None
        if data.train_links is not None:
            path = Path(data.train_links).expanduser()
            links = _Side(f"file {path}", functools.partial(raw_lines, path))
        for split, pairs in sources.items():
            chunks = _chunks(
                pairs, keep_text=split == "valid", size=chunk_lines, links=links if split == "train" else None
            )
            splits[split] = _write_split(writer, split, _encoded(chunks, tokenizer, workers), pairs, data)
        manifest = {
            "data": {**dataclasses.asdict(data), "prepared": None},
            "tokenizer": {
                "config": None if given else dataclasses.asdict(tokenizer_cfg),
                "fingerprint": tokenizer.fingerprint,
                "joint": tokenizer.joint,
                "src_vocab_size": tokenizer.src_vocab_size,
                "tgt_vocab_size": tokenizer.tgt_vocab_size,
            },
            "splits": splits,
            "sources": {split: [[a.name, b.name] for a, b in pairs] for split, pairs in sources.items()},
            "sentencepiece": spm.__version__,
        }
        return writer.finish(manifest)


def _encoded(chunks: Iterator[Chunk], tokenizer: Tokenizer, workers: int) -> Iterator[EncodedChunk]:
    """`encode_chunks` with no more processes than chunks: the first `workers` chunks are read to count them."""
    head = list(itertools.islice(chunks, max(workers, 1)))
    return encode_chunks(itertools.chain(head, chunks), tokenizer, max(min(workers, len(head)), 1))


def cache_key(data: DataConfig, tokenizer: TokenizerConfig | Tokenizer) -> str:
    """What a cached prepared corpus depends on: the corpus options that change its content, the files'
    names, sizes and modification times, and the tokenizer options and way of training (or the given
    tokenizer itself)."""
    content = {
        k: v
        for k, v in dataclasses.asdict(data).items()
        if k in fields_with_role(DataConfig, "corpus") and not (k in ADDED_CORPUS_OPTIONS and v is None)
    }
    files = []
    if data.name != "builtin":
        for split in (data.train, data.valid):
            for pair in split_files(data, split):
                files += [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in pair]
    if data.train_links is not None:
        links = Path(data.train_links).expanduser()
        check_file(links)
        files.append([str(links.resolve()), links.stat().st_size, links.stat().st_mtime_ns])
    tok = tokenizer.fingerprint if isinstance(tokenizer, Tokenizer) else tokenizer_options(tokenizer)
    key = {
        "version": VERSION,
        "data": content,
        "files": files,
        "tokenizer": tok,
        "tokenizer_training": TRAINING_VERSION,
        "sentencepiece": spm.__version__,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def load_training_data(
    data: DataConfig, tokenizer_cfg: TokenizerConfig, tokenizer: Tokenizer | None = None
) -> PreparedCorpus:
    """The corpus a run trains on: `data.prepared` when set, else `data` prepared once into the cache.

    A given `tokenizer` (a resumed run's, from its checkpoint) is used as it is, never retrained; a
    prepared directory made with another one is refused.

    Safe to call from many processes at once (the ranks of a DDP run, on one machine or on a shared
    file system with working `flock`): one prepares the cache entry `prepared/KEY` with all usable cores
    while holding an exclusive lock on `prepared/KEY.lock`; the others wait for the lock and open what
    it wrote. The tokenizer it trains into `spm/` is written under the same lock.

    Raises:
        PreparedError: `data.prepared` is unfinished, corrupt, or of another tokenizer.
        CorpusError: a malformed corpus.
    """
    if data.prepared is not None:
        return open_prepared(data.prepared, tokenizer)
    cache = Path(data.cache_dir).expanduser() / "prepared"
    path = cache / cache_key(data, tokenizer_cfg)
    if tokenizer is not None and not _holds_tokenizer(path, tokenizer):
        path = cache / cache_key(data, tokenizer)
    if not (path / MANIFEST).is_file():
        with _exclusive(path.with_name(f"{path.name}.lock")):
            if not (path / MANIFEST).is_file():  # else the process this one waited for has prepared it
                print(f"preparing {data.name} {data.src_lang}-{data.tgt_lang} into {path}", file=sys.stderr)
                remove_stale_leftovers(path)
                prepare_corpus(data, tokenizer_cfg, path, workers=usable_cores(), tokenizer=tokenizer)
    return open_prepared(path, tokenizer)


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on the file `lock` (created if missing), waiting while another process does.

    The kernel frees the lock when its holder exits, even when killed. The file stays: deleting it would let
    a process still waiting on the old file and one that creates a new file both hold "the" lock.
    """
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as f:  # "a": created if missing, never truncated
        fcntl.flock(f, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _holds_tokenizer(path: Path, tokenizer: Tokenizer) -> bool:
    """Whether a cached prepared directory exists and was made with `tokenizer`."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        return manifest["tokenizer"]["fingerprint"] == tokenizer.fingerprint
    except (OSError, ValueError, KeyError, TypeError):
        return False


def prepare_directory(cfg: PrepareConfig) -> dict[str, Any]:
    """What `nmt-prepare` does: refuse an existing output, clear a dead prepare's leftovers, prepare.

    Raises:
        PreparedError: `cfg.output` exists already.
        CorpusError: a malformed corpus.
        CheckpointError: `cfg.tokenizer_from` is not a usable checkpoint.
    """
    output = Path(cfg.output).expanduser()
    if output.exists():
        raise PreparedError(f"output {output} exists already; remove it or choose another directory.")
    remove_stale_leftovers(output)
    tokenizer = None
    if cfg.tokenizer_from is not None:
        tokenizer = Tokenizer.from_bytes(load_checkpoint(cfg.tokenizer_from).tokenizer)
    workers = cfg.workers or usable_cores()
    return prepare_corpus(cfg.data, cfg.tokenizer, output, workers=workers, tokenizer=tokenizer)
