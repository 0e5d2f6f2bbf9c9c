"""SentencePiece subwords (Kudo & Richardson 2018): train once per corpus, cache, encode, decode.

Models are handled as bytes, never paths, so they travel inside checkpoints and a
checkpoint needs nothing else to translate. Special ids are fixed and shared
with the model: PAD 0, UNK 1, BOS 2, EOS 3.

SentencePiece normalises text with the rule `TokenizerConfig.normalization`
(default `nmt_nfkc`: NFKC) and collapses runs of whitespace, so
`decode(encode(x))` returns the normalised `x`: under NFKC full-width "，"
becomes "," and "ﬁ" becomes "fi". Output is scored against raw references, so
targets whose references use full-width punctuation (Chinese) train with
`identity`.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import sentencepiece as spm

from nmt.atomic import atomic_write_bytes
from nmt.config import TokenizerConfig
from nmt.config.options import fields_with_role
from nmt.errors import UserError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

# SentencePiece's unigram trainer sums each thread's expected counts in float and merges them, so the
# vocabulary depends on the thread count (measured: 1, 2, 3, 8 and 16 threads give five different
# vocabularies on 40,000 Multi30k lines), and the model stores the count it was trained with. A fixed
# count (SentencePiece's default) makes the model a function of the text and options alone.
SPM_THREADS = 16
# How models are trained; part of every cache key, so models trained the earlier way are not reused.
# 1: SentencePiece sampled `input_sentence_size` of the lines itself, unseeded, on `os.cpu_count()` threads.
# 2: it trains on exactly the lines given (the caller samples, seeded), on `SPM_THREADS` threads.
TRAINING_VERSION = 2


class TokenizerError(UserError, ValueError):
    """Stored SentencePiece models (e.g. in a checkpoint) do not fit this package's conventions."""


def _load(model: bytes) -> spm.SentencePieceProcessor:
    """A processor for serialised model bytes, checked to use this package's special ids."""
    sp = spm.SentencePieceProcessor(model_proto=model)
    ids = (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id())
    if ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
        raise TokenizerError(
            f"SentencePiece special ids (pad, unk, bos, eos) must be "
            f"{(PAD_ID, UNK_ID, BOS_ID, EOS_ID)}, but are {ids} instead."
        )
    return sp


class Tokenizer:
    """Source and target SentencePiece models: one joint model or two separate ones.

    Args:
        src_model: serialised source model (the joint model when `tgt_model` is None).
        tgt_model: serialised target model, or None for a joint vocabulary.
    """

    def __init__(self, src_model: bytes, tgt_model: bytes | None = None) -> None:
        self.joint = tgt_model is None
        self._models = {"joint": src_model} if tgt_model is None else {"src": src_model, "tgt": tgt_model}
        self._src = _load(src_model)
        self._tgt = self._src if tgt_model is None else _load(tgt_model)

    def to_bytes(self) -> dict[str, bytes]:
        """`{"joint": model}` or `{"src": model, "tgt": model}`, for storing in a checkpoint."""
        return dict(self._models)

    @classmethod
    def from_bytes(cls, models: dict[str, bytes]) -> Tokenizer:
        """Rebuild from `to_bytes()` output."""
        if set(models) == {"joint"}:
            return cls(models["joint"])
        if set(models) == {"src", "tgt"}:
            return cls(models["src"], models["tgt"])
        raise TokenizerError(f"tokenizer models must have keys {{joint}} or {{src, tgt}}, but have {sorted(models)}.")

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the model bytes: equal fingerprints mean identical token ids."""
        digest = hashlib.sha256()
        for name, model in sorted(self._models.items()):
            digest.update(f"{name}:{len(model)}:".encode())
            digest.update(model)
        return digest.hexdigest()

    @property
    def src_vocab_size(self) -> int:
        return self._src.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        return self._tgt.get_piece_size()

    def src_pieces(self) -> list[str]:
        """The source vocabulary: piece `i` has id `i` (for toolkits that take tokens as strings)."""
        return [self._src.id_to_piece(i) for i in range(self.src_vocab_size)]

    def tgt_pieces(self) -> list[str]:
        """The target vocabulary: piece `i` has id `i`."""
        return [self._tgt.id_to_piece(i) for i in range(self.tgt_vocab_size)]

    def tgt_special_ids(self) -> set[int]:
        """Target ids that spell no text of their own: control (PAD, BOS, EOS), unknown and byte pieces."""
        sp = self._tgt
        return {i for i in range(self.tgt_vocab_size) if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)}

    def encode_src(self, lines: list[str]) -> list[list[int]]:
        """Source token ids per line, without BOS/EOS (the caller adds them)."""
        return self._src.encode(lines)

    def encode_tgt(self, lines: list[str]) -> list[list[int]]:
        """Target token ids per line, without BOS/EOS (the caller adds them)."""
        return self._tgt.encode(lines)

    def encode_src_spans(self, lines: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Source ids per line, each with the character span [start, end) of its piece in the line (a piece
        that begins a word covers the spaces before it)."""
        protos = [self._src.encode(line, out_type="proto") for line in lines]
        return [
            ([p.id for p in proto.pieces], _char_spans(line, proto)) for line, proto in zip(lines, protos, strict=True)
        ]

    def decode_tgt_spans(self, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
        """`decode_tgt`'s text of ids without BOS/EOS, and each id's character span [start, end) in it."""
        proto = self._tgt.decode(ids, out_type="proto")
        return proto.text, _char_spans(proto.text, proto)

    def pieces(self, line: str, side: str) -> list[str]:
        """The pieces of `line` on `side` ("src" or "tgt") as text, for labels: an unknown character shows
        as itself, not as `<unk>`; piece `k` is id `k` of the encoding."""
        return (self._src if side == "src" else self._tgt).encode(line, out_type=str)

    def decode_tgt(self, ids: list[int]) -> str:
        """Detokenized target text; ids from the first EOS on are ignored, PAD and BOS dropped."""
        return _decode(self._tgt, ids)

    def decode_src(self, ids: list[int]) -> str:
        """Detokenized source text, as `decode_tgt` (e.g. a training source as augmentation changed it)."""
        return _decode(self._src, ids)


def _decode(model: Any, ids: list[int]) -> str:
    """The text of `ids` up to the first EOS, PAD and BOS dropped (SentencePiece skips control ids)."""
    if EOS_ID in ids:
        ids = ids[: ids.index(EOS_ID)]
    return model.decode(ids)


def _char_spans(text: str, proto: Any) -> list[tuple[int, int]]:
    """The pieces' spans in characters of `text`: SentencePiece gives them in bytes of its UTF-8."""
    byte_starts = list(itertools.accumulate((len(char.encode("utf-8")) for char in text), initial=0))
    return [(bisect.bisect_left(byte_starts, p.begin), bisect.bisect_left(byte_starts, p.end)) for p in proto.pieces]


def tokenizer_options(cfg: TokenizerConfig) -> dict[str, Any]:
    """The options that decide the tokenizer (role `tokenizer`), by name: what its cache keys hold."""
    return {k: v for k, v in asdict(cfg).items() if k in fields_with_role(TokenizerConfig, "tokenizer")}


def _cache_key(lines: list[str], cfg: TokenizerConfig) -> str:
    """SHA-256 of the training text, the options, the SentencePiece version and `TRAINING_VERSION`."""
    digest = hashlib.sha256()
    options = {**tokenizer_options(cfg), "sentencepiece": spm.__version__, "training": TRAINING_VERSION}
    digest.update(json.dumps(options, sort_keys=True).encode())
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _train_model(lines: list[str], cfg: TokenizerConfig) -> bytes:
    """Train one SentencePiece model in memory on exactly the non-empty `lines` and return its bytes.

    Deterministic: the same lines and options give the same bytes in any process on any machine.
    SentencePiece draws no sample of its own (its generator is seeded anew in every process; the
    caller's sample is seeded) and always runs `SPM_THREADS` threads, whatever the machine's cores.
    """
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([line for line in lines if line]),
        model_writer=model,
        model_type=cfg.model_type,
        vocab_size=cfg.vocab_size,
        # A soft limit: a corpus too small for `vocab_size` pieces gets fewer instead of an error.
        hard_vocab_limit=False,
        character_coverage=cfg.character_coverage,
        normalization_rule_name=cfg.normalization,
        user_defined_symbols=cfg.user_symbols,
        input_sentence_size=0,  # every line given: the sample is the caller's
        shuffle_input_sentence=False,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        num_threads=SPM_THREADS,
        minloglevel=2,  # warnings and errors only
    )
    return model.getvalue()


def _cached_model(lines: list[str], cfg: TokenizerConfig, cache_dir: Path) -> bytes:
    """Model bytes from `cache_dir` if this text and these options were seen before, else train and store."""
    path = cache_dir / f"spm-{_cache_key(lines, cfg)[:32]}.model"
    if path.is_file():
        return path.read_bytes()
    model = _train_model(lines, cfg)
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, model)  # a crash or a concurrent run never leaves a half-written model
    return model


def _report_size(model: bytes, asked: int, side: str) -> int:
    """The real number of pieces in `model`; say so on stderr when the corpus gave fewer than `asked`.

    Training uses a soft limit (`hard_vocab_limit=False`), so a small corpus
    silently yields a smaller vocabulary than `tokenizer.vocab_size`.
    """
    size = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    if size < asked:
        print(f"tokenizer{side}: asked for {asked:,} pieces, the corpus gave {size:,}.", file=sys.stderr)
    return size


def train_tokenizer(
    src_lines: list[str], tgt_lines: list[str], cfg: TokenizerConfig, cache_dir: str | Path
) -> Tokenizer:
    """Train (or load from the cache) a joint or separate SentencePiece tokenizer.

    Args:
        src_lines: source training sentences.
        tgt_lines: target training sentences.
        cfg: model type, vocabulary size and normalisation; `cfg.joint` trains
            one model on both sides (needed to share all embeddings).
        cache_dir: where models are kept, named by a hash of text and options.

    Every line given is trained on (a joint model on both sides' lines): sampling
    `cfg.input_sentence_size` pairs is the caller's job (`nmt.data.prepare`), so the
    model is a pure function of the lines and `cfg`, bit for bit. A corpus too small
    for `cfg.vocab_size` pieces gives fewer; the real size is printed to stderr
    (and is `Tokenizer.src_vocab_size`).
    """
    cache_dir = Path(cache_dir).expanduser()
    if cfg.joint:
        model = _cached_model(src_lines + tgt_lines, cfg, cache_dir)
        _report_size(model, cfg.vocab_size, "")
        return Tokenizer(model)
    src, tgt = _cached_model(src_lines, cfg, cache_dir), _cached_model(tgt_lines, cfg, cache_dir)
    _report_size(src, cfg.vocab_size, " (source)")
    _report_size(tgt, cfg.vocab_size, " (target)")
    return Tokenizer(src, tgt)
