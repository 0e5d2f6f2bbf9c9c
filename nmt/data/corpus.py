"""Reading parallel text (plain or gzip UTF-8) with clear errors, and length filtering.

Every error names the file and, where it has one, the 1-based line, so a bad
corpus is fixed in one look instead of a debugging session.

Only "\n" ends a line, as in fairseq, Moses and sacreBLEU: a CRLF file reads as
its LF twin, and a lone carriage return inside a line (an old-Mac line end, or
a stray byte in scraped text) does not split it, which would misalign the two
sides of a corpus. Such a CR becomes a space (`_clean`).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nmt.errors import UserError

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


class CorpusError(UserError, ValueError):
    """A corpus is missing, unreadable or malformed; the message names file and line."""


@dataclass
class ParallelText:
    """Sentence-aligned text: `src[i]` translates to `tgt[i]`."""

    src: list[str]
    tgt: list[str]

    def __len__(self) -> int:
        return len(self.src)


def check_file(path: Path) -> None:
    """Raise `CorpusError` unless `path` is an existing regular file."""
    if not path.exists():
        raise CorpusError(f"file {path} does not exist.")
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise CorpusError(f"file {path} must be a regular file, but is {kind} instead.")


def _read_bytes(path: Path) -> tuple[bytes, bool]:
    """The file's bytes, gunzipped when it starts with the gzip magic or ends in `.gz`; and whether it was."""
    check_file(path)
    data = path.read_bytes()
    packed = data[:2] == _GZIP_MAGIC or path.suffix == ".gz"
    if packed:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise CorpusError(f"file {path}: not a valid gzip file ({e}).") from e
    return data, packed


def _byte_offset(offset: int, packed: bool) -> str:
    """Where a byte of a file is, for a message: into the decompressed text of a gzip file."""
    return f"byte offset {offset}{' of the decompressed text' if packed else ''}"


def _line_of(data: bytes, offset: int) -> int:
    """The 1-based line holding byte `offset`, counting LF (alone or in CRLF) as the only break."""
    return data.count(b"\n", 0, offset) + 1


def _clean(line: str) -> str:
    """One line as the corpus holds it: stripped of surrounding whitespace (a CRLF's CR with it), and each
    inner CR made a space.

    SentencePiece's normalisation would make an inner CR whitespace anyway; as a space it also cannot
    become a line break later (Python's text mode reads a lone CR as one, e.g. in `valid.ref`).
    """
    return line.strip().replace("\r", " ")


def read_lines(path: str | Path) -> list[str]:
    """Read one sentence per line, stripped of surrounding whitespace.

    A UTF-8 byte-order mark and CRLF line ends are accepted. Only "\\n" separates
    lines: a lone CR stays inside its line as a space (see `_clean`), and
    `str.splitlines`, which would split at CR, U+2028 and friends, is not used.

    Args:
        path: plain or gzip-compressed UTF-8 text.

    Raises:
        CorpusError: the file is missing, a directory, not UTF-8, binary (has NUL
            bytes) or empty.
    """
    path = Path(path)
    data, packed = _read_bytes(path)
    skipped = len(_BOM) if data.startswith(_BOM) else 0  # offsets in messages count it: they are the file's
    data = data[skipped:]
    nul = data.find(b"\x00")
    if nul >= 0:
        where = f"line {_line_of(data, nul)}: NUL byte at {_byte_offset(nul + skipped, packed)}"
        raise CorpusError(f"file {path}, {where}; is this a binary file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        where = f"line {_line_of(data, e.start)}: invalid UTF-8 at {_byte_offset(e.start + skipped, packed)}"
        raise CorpusError(f"file {path}, {where} ({e.reason}).") from e
    if not text:
        raise CorpusError(f"file {path} is empty.")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final line break ends the last line; it does not start a new one
    return [_clean(line) for line in lines]


def iter_lines(path: str | Path) -> Iterator[str]:
    """Yield the stripped lines of a plain or gzip UTF-8 file one at a time, for inputs of any size.

    Accepts and rejects what `read_lines` does, except that an empty file is
    simply zero lines (translating an empty file gives an empty file).

    Raises:
        CorpusError: the file is missing, a directory, not UTF-8 or binary; the
            message names the file and the line.
    """
    yield from check_lines(raw_lines(path), f"file {path}")


def raw_lines(path: str | Path) -> Iterator[bytes]:
    """Yield the undecoded LF-terminated lines of a plain or gzip file (decode them with `check_lines`).

    Raises:
        CorpusError: the file is missing, a directory or a broken gzip file.
    """
    path = Path(path)
    check_file(path)
    with path.open("rb") as probe:
        packed = probe.read(2) == _GZIP_MAGIC or path.suffix == ".gz"
    try:
        with gzip.open(path, "rb") if packed else path.open("rb") as f:
            yield from f
    except (OSError, EOFError, zlib.error) as e:
        raise CorpusError(f"file {path}: not a valid gzip file ({e}).") from e


def check_lines(raw_lines: Iterable[bytes], name: str, first: int = 1) -> Iterator[str]:
    """Decode and yield the stripped lines of a byte stream (a file, `sys.stdin.buffer`) one at a time.

    The checks and messages of `iter_lines`, for any source. Each item of
    `raw_lines` is one LF-terminated line (as iterating a binary file or stream
    gives them) and yields exactly one line. A leading UTF-8 BOM and CRLF line
    ends are accepted and an inner CR becomes a space, as in `read_lines`; a NUL
    byte or invalid UTF-8 stops with `CorpusError` naming `name` (e.g. "file
    in.txt" or "<stdin>") and the line. Lines before the bad one have been
    yielded by then. `first` is the 1-based number of the stream's first line
    (for a stream that starts mid-file).
    """
    for number, raw in enumerate(raw_lines, start=first):
        skipped = len(_BOM) if number == 1 and raw.startswith(_BOM) else 0
        yield _decode_line(raw[skipped:], name, number, skipped)


def _decode_line(raw: bytes, name: str, number: int, skipped: int = 0) -> str:
    """Decode and clean one LF-terminated line (see `_clean`); `skipped` bytes (a BOM) were cut off its start,
    and the byte a message names counts them."""
    if b"\x00" in raw:
        raise CorpusError(f"{name}, line {number}: NUL byte; is this a binary file?")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        where = f"byte {e.start + skipped} of the line"
        raise CorpusError(f"{name}, line {number}: invalid UTF-8 at {where} ({e.reason}).") from e
    return _clean(line)


def check_aligned(path: str | Path, lines: list[str], other_path: str | Path, other: list[str]) -> None:
    """Raise `CorpusError` unless two files have as many lines: line i of one belongs to line i of the other."""
    if len(lines) != len(other):
        raise CorpusError(
            f"{path} has {len(lines)} lines but {other_path} has {len(other)}; the files must align line by line."
        )


def check_has_text(path: str | Path, lines: list[str]) -> None:
    """Raise `CorpusError` when every line of a corpus or reference file is empty."""
    if not any(lines):
        raise CorpusError(f"file {path} has only empty lines.")


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> ParallelText:
    """Read a sentence-aligned pair of files and check that they line up.

    Raises:
        CorpusError: either file is unreadable (see `read_lines`), the line counts
            differ, or a side has only empty lines.
    """
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    check_aligned(src_path, src, tgt_path, tgt)
    check_has_text(src_path, src)
    check_has_text(tgt_path, tgt)
    return ParallelText(src, tgt)


@dataclass
class FilterStats:
    """Why training pairs were dropped, for the log."""

    total: int
    kept: int
    empty: int
    too_long: int
    bad_ratio: int
    max_len: int
    max_ratio: float

    def __add__(self, other: FilterStats) -> FilterStats:
        """The counts of both (for a corpus filtered in chunks); the limits are this one's."""
        counts = ("total", "kept", "empty", "too_long", "bad_ratio")
        return replace(self, **{k: getattr(self, k) + getattr(other, k) for k in counts})

    def __str__(self) -> str:
        return (
            f"kept {self.kept} of {self.total} pairs; dropped {self.empty} with an empty side, "
            f"{self.too_long} longer than {self.max_len} tokens, "
            f"{self.bad_ratio} with length ratio > {self.max_ratio:g}"
        )


def filter_mask(
    src_lens: np.ndarray, tgt_lens: np.ndarray, max_len: int, max_ratio: float
) -> tuple[np.ndarray, FilterStats]:
    """Which training pairs are worth keeping (a boolean mask), and counts of what was dropped.

    A pair is dropped (first matching reason counts) when a side is empty, a side
    is longer than `max_len`, or the longer side exceeds `max_ratio` times the
    shorter one: such pairs are usually misaligned, as in Moses' clean-corpus-n.

    Args:
        src_lens: token counts of the source sentences (without EOS/BOS).
        tgt_lens: token counts of the target sentences, same order.
        max_len: longest side kept.
        max_ratio: largest long/short length ratio kept.
    """
    if max_len < 1:
        raise ValueError(f"`max_len` must be >= 1, but is {max_len} instead.")
    if max_ratio < 1.0:
        raise ValueError(f"`max_ratio` must be >= 1, but is {max_ratio} instead.")
    longer, shorter = np.maximum(src_lens, tgt_lens), np.minimum(src_lens, tgt_lens)
    empty = shorter == 0
    too_long = ~empty & (longer > max_len)
    bad_ratio = ~empty & ~too_long & (longer > max_ratio * shorter)
    keep = ~(empty | too_long | bad_ratio)
    counts = (int(keep.sum()), int(empty.sum()), int(too_long.sum()), int(bad_ratio.sum()))
    return keep, FilterStats(len(keep), *counts, max_len, max_ratio)
