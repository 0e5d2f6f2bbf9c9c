"""Translate text with a checkpoint: encode, sort by length, batch by tokens, search, restore order, detokenize.

Lines are preserved: N lines in give N translations out, in order; an empty
line gives an empty translation without touching the model.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nmt.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from nmt.config import DecodeConfig
from nmt.data.tokenizer import Tokenizer
from nmt.decode.search import beam_search, greedy_search
from nmt.device import resolve_device
from nmt.model import Transformer


@dataclass
class Translation:
    """The n-best hypotheses of one input line, best first (empty for an empty line)."""

    texts: list[str]
    scores: list[float]
    tokens: int  # target subword tokens of the best hypothesis

    @property
    def best(self) -> str:
        return self.texts[0] if self.texts else ""


@dataclass
class Stats:
    """Counts and wall time of a translation run, for the closing timing line."""

    sentences: int = 0
    tgt_tokens: int = 0
    truncated: int = 0
    started: float = field(default_factory=time.perf_counter)

    def summary(self) -> str:
        seconds = max(time.perf_counter() - self.started, 1e-9)
        return (
            f"translated {self.sentences} sentences ({self.tgt_tokens} target tokens) in {seconds:.1f} s: "
            f"{self.sentences / seconds:.1f} sentences/s, {self.tgt_tokens / seconds:.0f} tokens/s"
        )


class Translator:
    """Batched translation with a trained model.

    Args:
        model: the network, already on `device` and in eval mode.
        tokenizer: the SentencePiece models the network was trained with.
        decode: search settings (greedy when beam_size is 1).
        special_ids: pad, bos and eos ids.
        device: where the tensors go.
    """

    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        decode: DecodeConfig,
        special_ids: tuple[int, int, int],
        device: torch.device,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.decode = decode
        self.pad_id, self.bos_id, self.eos_id = special_ids
        self.device = device
        self.max_src_len = model.cfg.max_positions - 1  # room for EOS
        self.stats = Stats()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, decode: DecodeConfig, device: str = "auto", expect_langs: tuple[str, str] | None = None
    ) -> Translator:
        """Load a self-contained checkpoint safely (tensors and plain data only).

        Args:
            expect_langs: (source, target) the caller's data is in; a checkpoint for another pair is refused.
        """
        ckpt = load_checkpoint(path)
        if expect_langs is not None and (ckpt.src_lang, ckpt.tgt_lang) != tuple(expect_langs):
            raise CheckpointError(
                f"checkpoint {path} translates {ckpt.src_lang}->{ckpt.tgt_lang}, but the data is "
                f"{expect_langs[0]}->{expect_langs[1]}; choose a matching `data` (e.g. data=multi30k_en_de)."
            )
        return cls.from_loaded(ckpt, decode, resolve_device(device), path)

    @classmethod
    def from_loaded(cls, ckpt: Checkpoint, decode: DecodeConfig, device: torch.device, path: str | Path) -> Translator:
        """Build the model and tokenizer described by a loaded checkpoint."""
        tokenizer = Tokenizer.from_bytes(ckpt.tokenizer)
        if (tokenizer.src_vocab_size, tokenizer.tgt_vocab_size) != (ckpt.src_vocab_size, ckpt.tgt_vocab_size):
            raise CheckpointError(
                f"checkpoint {path}: its tokenizer has vocabularies {tokenizer.src_vocab_size}/"
                f"{tokenizer.tgt_vocab_size} but the model expects {ckpt.src_vocab_size}/{ckpt.tgt_vocab_size}."
            )
        model = Transformer(ckpt.model_config, ckpt.src_vocab_size, ckpt.tgt_vocab_size, ckpt.pad_id)
        try:
            model.load_state_dict(ckpt.state_dict)
        except RuntimeError as err:
            raise CheckpointError(f"checkpoint {path}: weights do not fit the model config: {err}") from err
        model.to(device).eval()
        return cls(model, tokenizer, decode, (ckpt.pad_id, ckpt.bos_id, ckpt.eos_id), device)

    def translate(self, lines: list[str]) -> list[Translation]:
        """Translate a list of lines; the result has one `Translation` per line, in order."""
        ids = self.tokenizer.encode_src([line.strip() for line in lines])
        results: list[Translation | None] = [None] * len(lines)
        for i, src in enumerate(ids):
            if not src:
                results[i] = Translation([], [], 0)
            elif len(src) > self.max_src_len:
                ids[i] = src[: self.max_src_len]
                self.stats.truncated += 1
        for batch in self._batches([i for i, r in enumerate(results) if r is None], ids):
            for i, translation in zip(batch, self._translate_batch([ids[i] for i in batch]), strict=True):
                results[i] = translation
        self.stats.sentences += len(lines)
        self.stats.tgt_tokens += sum(r.tokens for r in results if r is not None)
        return [r for r in results if r is not None]

    def _batches(self, indices: list[int], ids: list[list[int]]) -> Iterator[list[int]]:
        """Length-sorted batches whose padded source size stays within `decode.max_tokens`."""
        indices = sorted(indices, key=lambda i: len(ids[i]))
        batch: list[int] = []
        for i in indices:
            width = len(ids[i]) + 1  # + EOS; sorted, so the newest is the longest
            if batch and (len(batch) + 1) * width > self.decode.max_tokens:
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    @torch.inference_mode()
    def _translate_batch(self, srcs: list[list[int]]) -> list[Translation]:
        width = max(len(s) for s in srcs) + 1
        src = torch.full((len(srcs), width), self.pad_id, dtype=torch.long)  # [B, S]
        for row, ids in enumerate(srcs):
            src[row, : len(ids) + 1] = torch.tensor(ids + [self.eos_id])
        src = src.to(self.device)
        search = greedy_search if self.decode.beam_size == 1 else beam_search
        result = search(self.model, src, src.eq(self.pad_id), self.decode, self.bos_id, self.eos_id)
        # An empty n-best list (every hypothesis ended at -inf, e.g. `min_len` with n-gram blocking) gives an
        # empty translation, so the output keeps one line per input line.
        return [
            Translation([self.tokenizer.decode_tgt(h) for h in nbest], list(scores), len(nbest[0]) if nbest else 0)
            for nbest, scores in zip(result.tokens, result.scores, strict=True)
        ]

    def translate_stream(self, lines: Iterable[str], chunk_lines: int = 2000) -> Iterator[Translation]:
        """Translate lines as they arrive, `chunk_lines` at a time, so memory stays flat on big inputs.

        If reading `lines` fails (a bad line), the lines read before it are translated and yielded
        first, then the error is raised: nothing before the bad line is lost.
        """
        for chunk in _chunks(lines, chunk_lines):
            yield from self.translate(chunk)

    def warn_truncated(self) -> None:
        """One warning counting the inputs cut to the model's maximum length."""
        if self.stats.truncated:
            print(
                f"warning: {self.stats.truncated} input line(s) longer than {self.max_src_len} subword tokens "
                "were truncated to fit the model.",
                file=sys.stderr,
            )


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of `size` lines without line ends; if reading fails, the lines read so far come first."""
    chunk: list[str] = []
    try:
        for line in lines:
            chunk.append(line.rstrip("\r\n"))
            if len(chunk) >= size:
                yield chunk
                chunk = []
    except Exception:
        if chunk:
            yield chunk
        raise
    if chunk:
        yield chunk


def format_translation(index: int, translation: Translation, n_best: int) -> list[str]:
    """Output lines for one input: the best text, or Moses-style `i ||| text ||| score` n-best lines."""
    if n_best == 1:
        return [translation.best]
    texts, scores = translation.texts or [""], translation.scores or [0.0]
    return [f"{index} ||| {text} ||| {score:.4f}" for text, score in zip(texts, scores, strict=True)]
