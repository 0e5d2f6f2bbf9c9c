"""Prepared corpora on disk: each split's token ids as flat arrays, memory-mapped and checked on opening.

A prepared directory (written by `nmt-prepare`, or into the cache by `nmt-train`) holds, per split and side:

    {split}.{side}.bin   every token id of the side, one flat uint16 (vocabulary <= 65,536) or uint32 array
    {split}.{side}.idx   int64 offsets: row i is bin[idx[i]:idx[i + 1]]
    {split}.{side}.len   the row lengths (uint8, uint16 or uint32), read into memory for batching

plus `valid.ref` (the raw validation references BLEU is scored against), `tokenizer/` (the SentencePiece
models) and `manifest.json`, written last: counts, filter statistics, the tokenizer's fingerprint, the
configs, and the size and SHA-256 of every file. The directory is built under a temporary name and
renamed into place, so one without a manifest never appears; opening checks every file against it.

Training maps the arrays read-only: every rank on a machine shares one copy in the page cache, and the
process holds per pair only its two lengths (as fairseq's binarized datasets) and its place in the order.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nmt.atomic import atomic_write_bytes, remove_if_writer_gone, sha256_of
from nmt.config import DataConfig, TokenizerConfig
from nmt.data.batching import Batch
from nmt.data.corpus import FilterStats
from nmt.data.links import attention_targets, word_starts
from nmt.data.tokenizer import Tokenizer, TokenizerError
from nmt.errors import UserError

FORMAT = "nmt-prepared"
VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "valid")
SIDES = ("src", "tgt")
ROWS_PER_READ = 16  # rows gathered from the maps between two unmappings (`TokenArrays.padded`)
TMP_MARK = ".tmp-"  # `.{name}.tmp-{pid}-{random}`: a prepare in progress, or one that was interrupted


class PreparedError(UserError, ValueError):
    """A prepared directory is missing, unfinished, corrupt or does not fit the run; the message names the file."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type holding every id of a vocabulary."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


class TokenArrays:
    """One side of a split: row i is `tokens[offsets[i]:offsets[i + 1]]`, opened lazily as read-only memory maps.

    Only `lengths` is in memory. Pickling (DataLoader workers that spawn) carries the paths, not the data.
    """

    def __init__(self, stem: Path, dtype: np.dtype, length_dtype: np.dtype) -> None:
        self.stem, self.dtype = stem, np.dtype(dtype)
        self.lengths = np.fromfile(f"{stem}.len", dtype=length_dtype)
        self._maps: list[tuple[np.ndarray, mmap.mmap | None]] | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def tokens(self) -> np.ndarray:
        return self._mapped()[0][0]

    @property
    def offsets(self) -> np.ndarray:
        return self._mapped()[1][0]

    def _mapped(self) -> list[tuple[np.ndarray, mmap.mmap | None]]:
        if self._maps is None:
            self._maps = [_memmap(Path(f"{self.stem}.bin"), self.dtype), _memmap(Path(f"{self.stem}.idx"), np.int64)]
        return self._maps

    def release(self) -> None:
        """Unmap the pages read so far; they stay in the shared page cache, so reading them again is cheap.

        Mapped file pages count in a process's resident memory (and in what OOM killers and schedulers such
        as SLURM watch), and random reads over a page-cached file map it almost whole within a few batches:
        without this, a long run's resident memory grows to the size of the corpus.
        """
        for _, mapped in self._maps or ():
            if mapped is not None and hasattr(mmap, "MADV_DONTNEED"):
                mapped.madvise(mmap.MADV_DONTNEED)

    def __getitem__(self, i: int) -> list[int]:
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.tokens[start:end].tolist()

    def padded(self, rows: np.ndarray, width: int, pad_id: int) -> np.ndarray:
        """[len(rows), width] int64: row r's tokens first, then `pad_id`.

        Rows are read a few at a time, unmapping in between: one read can map a whole large folio of the
        page cache (megabytes for a few bytes of offsets), so reading a batch at once would map the files whole.
        """
        out = np.full((len(rows), width), pad_id, dtype=np.int64)
        columns = np.arange(width, dtype=np.int64)
        for first in range(0, len(rows), ROWS_PER_READ):
            part = rows[first : first + ROWS_PER_READ]
            inside = columns < self.lengths[part][:, None]
            positions = self.offsets[part][:, None] + columns
            out[first : first + len(part)][inside] = self.tokens[positions[inside]]
            self.release()
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": None}


def _memmap(path: Path, dtype: np.dtype) -> tuple[np.ndarray, mmap.mmap | None]:
    """A read-only array over a whole file and its map; an empty file is an empty array (mmap refuses those)."""
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype), None
    with path.open("rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mapped, dtype=dtype), mapped


@dataclass
class PairSplit:
    """Aligned sides of one split; `batch(rows)` assembles padded tensors for teacher forcing."""

    src: TokenArrays
    tgt: TokenArrays
    links: TokenArrays | None = None  # flat `source, target` word indices per pair (`nmt.data.links`)
    starts: tuple[np.ndarray, np.ndarray] | None = None  # with `links`: `word_starts` of the tokenizer

    def __len__(self) -> int:
        return len(self.src)

    def batch(self, rows: list[int] | np.ndarray, pad_id: int, bos_id: int, eos_id: int) -> Batch:
        """The `Batch` of these pairs, equal to `collate` of their ids: EOS after sources and targets,
        BOS before the decoder input; gathered from the arrays in a few numpy operations."""
        rows = np.asarray(rows, dtype=np.int64)
        src_len = self.src.lengths[rows].astype(np.int64)
        tgt_len = self.tgt.lengths[rows].astype(np.int64)
        every = np.arange(len(rows))
        src = self.src.padded(rows, int(src_len.max()) + 1, pad_id)
        src[every, src_len] = eos_id
        tgt_out = self.tgt.padded(rows, int(tgt_len.max()) + 1, pad_id)
        tgt_in = np.empty_like(tgt_out)
        tgt_in[:, 0] = bos_id
        tgt_in[:, 1:] = tgt_out[:, :-1]
        tgt_out[every, tgt_len] = eos_id
        align = None
        if self.links is not None and self.starts is not None:
            links = [np.asarray(self.links[i], dtype=np.int64) for i in rows.tolist()]
            align = torch.from_numpy(attention_targets(src, tgt_out, links, self.starts, pad_id))
        return Batch(
            src=torch.from_numpy(src),
            tgt_in=torch.from_numpy(tgt_in),
            tgt_out=torch.from_numpy(tgt_out),
            src_tokens=int(src_len.sum()) + len(rows),
            tgt_tokens=int(tgt_len.sum()) + len(rows),
            index=torch.from_numpy(rows),
            align=align,
        )

    def ids(self, rows: list[int]) -> tuple[list[list[int]], list[list[int]]]:
        """The source and target ids of these pairs as lists (for tests and small tools)."""
        return [self.src[i] for i in rows], [self.tgt[i] for i in rows]


@dataclass
class PreparedCorpus:
    """An opened prepared directory: what training reads."""

    path: Path
    manifest: dict[str, Any]
    tokenizer: Tokenizer
    train: PairSplit
    valid: PairSplit
    valid_refs: list[str]

    @property
    def filter_stats(self) -> FilterStats:
        return FilterStats(**self.manifest["splits"]["train"]["filter"])

    @property
    def data(self) -> DataConfig:
        """The data config the corpus was prepared with."""
        return DataConfig(**self.manifest["data"])

    @property
    def tokenizer_config(self) -> TokenizerConfig | None:
        """The tokenizer options it was trained with; None when a given tokenizer (a checkpoint's) was used."""
        options = self.manifest["tokenizer"]["config"]
        return None if options is None else TokenizerConfig(**options)


class PreparedWriter:
    """Writes a prepared directory under a temporary name beside `output`; `finish` renames it into place.

    Use as a context manager: leaving it by an exception removes the temporary directory.
    """

    def __init__(self, output: Path, tokenizer: Tokenizer) -> None:
        self.output = output
        output.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}{TMP_MARK}{os.getpid()}-", dir=output.parent))
        self.tmp.chmod(0o755)  # mkdtemp makes it private; the prepared directory is shared like any output
        self.tokenizer = tokenizer
        self.dtype = token_dtype(max(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size))
        self._files: dict[str, Any] = {}
        self._lengths: dict[str, list[np.ndarray]] = {}
        self.refs: list[str] = []

    def __enter__(self) -> PreparedWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        for f in self._files.values():
            f.close()
        if kind is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def add(self, split: str, side: str, ids: np.ndarray, lengths: np.ndarray) -> None:
        """Append rows to one side of a split: their ids concatenated, and their lengths."""
        stem = f"{split}.{side}"
        if stem not in self._files:
            self._files[stem] = (self.tmp / f"{stem}.bin").open("wb")
            self._lengths[stem] = []
        self._files[stem].write(np.ascontiguousarray(ids, dtype=self.dtype).tobytes())
        self._lengths[stem].append(np.asarray(lengths, dtype=np.int64))

    def finish(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Write offsets, lengths, references, tokenizer and the manifest (last), rename into place, and
        return the manifest as written.

        If another process finished the same directory meanwhile (two ranks preparing one cache entry),
        its copy is kept and this one discarded.
        """
        for f in self._files.values():
            f.close()
        lengths = {}
        for stem in sorted({f"{split}.{side}" for split in SPLITS for side in SIDES} | self._files.keys()):
            if stem not in self._files:  # a split without rows
                (self.tmp / f"{stem}.bin").write_bytes(b"")
            parts = self._lengths.get(stem, [])
            lengths[stem] = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        longest = max((int(x.max()) for x in lengths.values() if len(x)), default=0)
        length_dtype = np.dtype(next(t for t in (np.uint8, np.uint16, np.uint32) if longest < np.iinfo(t).max))
        for stem, rows in lengths.items():
            offsets = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum(rows, out=offsets[1:])
            offsets.tofile(self.tmp / f"{stem}.idx")
            rows.astype(length_dtype).tofile(self.tmp / f"{stem}.len")
        (self.tmp / "valid.ref").write_text("".join(line + "\n" for line in self.refs), encoding="utf-8")
        (self.tmp / "tokenizer").mkdir()
        for name, model in self.tokenizer.to_bytes().items():
            (self.tmp / "tokenizer" / f"{name}.model").write_bytes(model)
        files = sorted(p for p in self.tmp.rglob("*") if p.is_file())
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            **manifest,
            "dtype": self.dtype.name,
            "length_dtype": length_dtype.name,
            "files": {str(p.relative_to(self.tmp)): {"bytes": p.stat().st_size, "sha256": sha256_of(p)} for p in files},
        }
        atomic_write_bytes(self.tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
        try:
            os.rename(self.tmp, self.output)
        except OSError:
            if not (self.output / MANIFEST).is_file():
                raise
            shutil.rmtree(self.tmp, ignore_errors=True)  # an identical copy won the race
        return manifest


def interrupted_leftovers(output: Path) -> list[Path]:
    """Temporary directories that a prepare into `output` left behind."""
    return sorted(output.parent.glob(f".{output.name}{TMP_MARK}*")) if output.parent.is_dir() else []


def remove_stale_leftovers(output: Path) -> None:
    """Remove the temporary directories of prepares into `output` whose process is gone."""
    for leftover in interrupted_leftovers(output):
        pid = leftover.name.removeprefix(f".{output.name}{TMP_MARK}").split("-")[0]
        if pid.isdigit():
            remove_if_writer_gone(leftover, int(pid))


def read_manifest(path: Path) -> dict[str, Any]:
    """The checked manifest of a prepared directory.

    Raises:
        PreparedError: the directory is missing or unfinished (an interrupted prepare is named), or the
            manifest is truncated, not JSON, or of another format or version.
    """
    manifest_path = path / MANIFEST
    if not path.is_dir():
        leftovers = interrupted_leftovers(path)
        if leftovers:
            raise PreparedError(
                f"prepared directory {path} does not exist, but {leftovers[0]} does: a prepare into it was "
                "interrupted or is still running. Run nmt-prepare again."
            )
        raise PreparedError(f"prepared directory {path} does not exist; write it with nmt-prepare output={path}.")
    if not manifest_path.is_file():
        raise PreparedError(
            f"{manifest_path} does not exist: {path} is not a finished nmt-prepare output. Run nmt-prepare again."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PreparedError(f"{manifest_path} is truncated or not JSON ({e}). Run nmt-prepare again.") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PreparedError(f"{manifest_path} is not the manifest of an nmt-prepare output.")
    if manifest.get("version") != VERSION:
        raise PreparedError(
            f"{manifest_path} has format version {manifest.get('version')}, but this nmt reads version {VERSION}; "
            "run nmt-prepare again."
        )
    return manifest


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    """Check every file the manifest lists: present, of its size and of its SHA-256.

    Raises:
        PreparedError: naming the first file that is missing, truncated, grown or changed.
    """
    for name, expected in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise PreparedError(f"{file} is missing from prepared directory {path}.")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise PreparedError(
                f"{file} has {size:,} bytes, but the manifest says {expected['bytes']:,}: truncated or replaced. "
                "Run nmt-prepare again."
            )
        if sha256_of(file) != expected["sha256"]:
            raise PreparedError(f"{file} is corrupt: its SHA-256 differs from the manifest's. Run nmt-prepare again.")


def open_prepared(path: str | Path, tokenizer: Tokenizer | None = None) -> PreparedCorpus:
    """Open a prepared directory for training, after checking it against its manifest.

    Args:
        path: the directory.
        tokenizer: the tokenizer the run must use (a resumed or fine-tuned checkpoint's), or None.

    Raises:
        PreparedError: unfinished, corrupt, or prepared with another tokenizer than `tokenizer`.
    """
    path = Path(path).expanduser()
    manifest = read_manifest(path)
    verify_files(path, manifest)
    models = {p.stem: p.read_bytes() for p in (path / "tokenizer").glob("*.model")}
    try:
        stored = Tokenizer.from_bytes(models)
    except (TokenizerError, RuntimeError) as e:
        raise PreparedError(f"{path / 'tokenizer'} holds no usable tokenizer ({e}).") from e
    if stored.fingerprint != manifest["tokenizer"]["fingerprint"]:
        raise PreparedError(f"{path / 'tokenizer'} does not match the tokenizer fingerprint in {path / MANIFEST}.")
    if tokenizer is not None and tokenizer.fingerprint != stored.fingerprint:
        raise PreparedError(
            f"{path} was prepared with another tokenizer than the checkpoint's: its token ids would mean other "
            "subwords. Prepare the corpus with that tokenizer (nmt-prepare tokenizer_from=CKPT)."
        )
    dtypes = np.dtype(manifest["dtype"]), np.dtype(manifest["length_dtype"])
    splits = {s: PairSplit(*(TokenArrays(path / f"{s}.{side}", *dtypes) for side in SIDES)) for s in SPLITS}
    if (path / "train.links.len").is_file():  # guided alignment: the word links of every training pair
        splits["train"].links, splits["train"].starts = TokenArrays(path / "train.links", *dtypes), word_starts(stored)
    for split, pairs in splits.items():
        for arrays in (pairs.src, pairs.tgt):
            expected = manifest["splits"][split]["pairs"]
            if len(arrays) != expected:
                raise PreparedError(f"{arrays.stem}.len has {len(arrays):,} rows, but the manifest says {expected:,}.")
    refs = (path / "valid.ref").read_text(encoding="utf-8").split("\n")[:-1]
    return PreparedCorpus(path, manifest, stored, splits["train"], splits["valid"], refs)
