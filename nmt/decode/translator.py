"""Translate text: encode, sort by length, batch by tokens, let an engine search, restore order, detokenize.

Lines are preserved: N lines in give N translations out, in order; an empty
line gives an empty translation without touching the model.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor

from nmt.checkpoint import Checkpoint, CheckpointError, aligned_layer, load_checkpoint
from nmt.config import DecodeConfig
from nmt.data.tokenizer import Tokenizer
from nmt.decode.align import CharLink, Link, char_links, format_links, search_links
from nmt.decode.constraints import Constraints, meets
from nmt.decode.engine import Engine, TorchEngine, load_model
from nmt.decode.ensemble import Ensemble
from nmt.decode.spelling import Spelling, refuse_textless
from nmt.device import resolve_device
from nmt.model import Transformer


@dataclass
class Translation:
    """The n-best hypotheses of one input line, best first (empty for an empty line)."""

    texts: list[str]
    scores: list[float]
    tokens: int  # target subword tokens of the best hypothesis
    links: list[set[Link]] = field(default_factory=list)  # word alignment of each hypothesis, when asked
    char_links: list[list[CharLink]] = field(default_factory=list)  # the same as pieces' characters, when asked
    # per hypothesis: all positive constraints met (False: the length limit ended it first); empty for an empty line
    met: list[bool] = field(default_factory=list)

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
    """Batched translation of lines: encoding, empty lines, truncation, batching, order and detokenizing.

    Args:
        engine: what translates the batches of source ids (`TorchEngine`, or the one in `nmt.ctranslate2.engine`).
        tokenizer: the SentencePiece models the network was trained with.
        decode: search settings (greedy when beam_size is 1), passed to the engine with every batch.
        align: (method, decoder layer): link each hypothesis to its source from the cross-attention its own
            search computed (`nmt.decode.align.search_links`, read as `nmt-align` reads it); None: no links.
        langs: the (source, target) languages the model translates, "" where unknown.
        trained_len: the longest sentence of the model's training data in subword tokens (`data.max_len`), if known.
        aligned_layer: the decoder layer the model was trained to align (guided alignment), if any.
    """

    def __init__(
        self,
        engine: Engine,
        tokenizer: Tokenizer,
        decode: DecodeConfig,
        align: tuple[str, int] | None = None,
        langs: tuple[str, str] = ("", ""),
        trained_len: int | None = None,
        aligned_layer: int | None = None,
    ) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.decode = decode
        self.align = align
        self.langs, self.trained_len, self.aligned_layer = langs, trained_len, aligned_layer
        self.max_src_len = engine.max_src_len
        self.stats = Stats()

    @cached_property
    def _pieces(self) -> tuple[list[str], list[str]]:
        """The source and target vocabularies as pieces, for word links."""
        return self.tokenizer.src_pieces(), self.tokenizer.tgt_pieces()

    @cached_property
    def _spelling(self) -> Spelling:
        """The target vocabulary's characters, to check phrases to avoid."""
        return Spelling.of(self.tokenizer)

    def textless(self, phrases: Sequence[str]) -> list[str]:
        """The phrases to avoid among `phrases` whose pieces spell no text in the target vocabulary (only characters
        it lacks, as an emoji): nothing could match them, so `translate` refuses them."""
        encoded = self.tokenizer.encode_tgt(list(phrases))
        return [p for p, ids in zip(phrases, encoded, strict=True) if ids and not self._spelling.spells_text(ids)]

    @property
    def device(self) -> torch.device:
        """Where the engine runs."""
        return self.engine.device

    @property
    def model(self) -> Transformer:
        """The PyTorch network; only the torch engine has one."""
        if not isinstance(self.engine, TorchEngine):
            raise AttributeError(f"a translator with {type(self.engine).__name__} has no PyTorch model.")
        return self.engine.model

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, decode: DecodeConfig, device: str = "auto", expect_langs: tuple[str, str] | None = None
    ) -> Translator:
        """Load a self-contained checkpoint safely (tensors and plain data only).

        Args:
            expect_langs: (source, target) the caller's data is in; a checkpoint for another pair is refused.
        """
        ckpt = load_checkpoint(path)
        if expect_langs is not None:
            check_langs(path, (ckpt.src_lang, ckpt.tgt_lang), expect_langs)
        return cls.from_loaded(ckpt, decode, resolve_device(device), path)

    @classmethod
    def from_ensemble(
        cls,
        paths: Sequence[str | Path],
        decode: DecodeConfig,
        device: str = "auto",
        expect_langs: tuple[str, str] | None = None,
    ) -> Translator:
        """The ensemble of checkpoints trained with one tokenizer (`nmt.decode.ensemble`).

        Raises:
            CheckpointError: a checkpoint is unusable, or its language pair or tokenizer (so its target vocabulary)
                differs.
        """
        if not paths:
            raise CheckpointError("an ensemble needs at least one checkpoint.")
        loaded = [(path, load_checkpoint(path)) for path in paths]
        if expect_langs is not None:
            for path, ckpt in loaded:
                check_langs(path, (ckpt.src_lang, ckpt.tgt_lang), expect_langs)
        first_path, first = loaded[0]
        for path, ckpt in loaded[1:]:
            if (ckpt.src_lang, ckpt.tgt_lang) != (first.src_lang, first.tgt_lang):
                raise CheckpointError(
                    f"cannot ensemble {path} with {first_path}: it translates {ckpt.src_lang}->{ckpt.tgt_lang}, "
                    f"not {first.src_lang}->{first.tgt_lang}."
                )
            if ckpt.tokenizer != first.tokenizer:
                raise CheckpointError(
                    f"cannot ensemble {path} with {first_path}: its tokenizer differs, so its target vocabulary "
                    "means other subwords. An ensemble needs models trained with one tokenizer (init_from keeps it)."
                )
        members = [load_model(ckpt, path) for path, ckpt in loaded]
        target = resolve_device(device)
        model = members[0][0] if len(members) == 1 else Ensemble([m for m, _ in members])
        engine = TorchEngine(model.to(target), first.special_ids, target, Spelling.of(members[0][1]))
        langs = (first.src_lang, first.tgt_lang)
        return cls(engine, members[0][1], decode, None, langs, trained_len(first), aligned_layer(first))

    @classmethod
    def load(
        cls,
        ckpt: str | Sequence[str],
        decode: DecodeConfig,
        device: str = "auto",
        expect_langs: tuple[str, str] | None = None,
    ) -> Translator:
        """One checkpoint's translator, or (for a list of paths) their ensemble's."""
        if isinstance(ckpt, str | Path):
            return cls.from_checkpoint(ckpt, decode, device, expect_langs)
        return cls.from_ensemble(ckpt, decode, device, expect_langs)

    @classmethod
    def from_loaded(cls, ckpt: Checkpoint, decode: DecodeConfig, device: torch.device, path: str | Path) -> Translator:
        """A translator running the network of a loaded checkpoint with `TorchEngine`."""
        model, tokenizer = load_model(ckpt, path)
        engine = TorchEngine(model.to(device), ckpt.special_ids, device, Spelling.of(tokenizer))
        return cls(
            engine, tokenizer, decode, None, (ckpt.src_lang, ckpt.tgt_lang), trained_len(ckpt), aligned_layer(ckpt)
        )

    def translate(
        self,
        lines: list[str],
        constraints: Sequence[Sequence[str]] | None = None,
        avoid: Sequence[Sequence[str]] | None = None,
        prefix: Sequence[str | None] | None = None,
    ) -> list[Translation]:
        """Translate a list of lines; the result has one `Translation` per line, in order.

        Args:
            lines: source sentences.
            constraints: per line, target terms that must appear (in the given order with
                `decode.ordered_constraints`).
            avoid: per line, target words or phrases that must not appear.
            prefix: per line, target text the translation starts with (None or "": none).
        """
        wanted = self._constraints(len(lines), constraints, avoid, prefix)
        stripped = [line.strip() for line in lines]
        if self.align is None:
            ids, spans = self.tokenizer.encode_src(stripped), [[] for _ in lines]
        else:  # the pieces' characters too, to link translations to them
            encoded = self.tokenizer.encode_src_spans(stripped)
            ids, spans = [src for src, _ in encoded], [piece_spans for _, piece_spans in encoded]
        results: list[Translation | None] = [None] * len(lines)
        for i, src in enumerate(ids):
            if not src:
                results[i] = Translation([], [], 0)
            elif len(src) > self.max_src_len:
                ids[i], spans[i] = src[: self.max_src_len], spans[i][: self.max_src_len]
                self.stats.truncated += 1
        for batch in self._batches([i for i, r in enumerate(results) if r is None], ids):
            batch_constraints = [wanted[i] for i in batch] if wanted is not None else None
            translations = self._translate_batch([ids[i] for i in batch], batch_constraints, [spans[i] for i in batch])
            for i, translation in zip(batch, translations, strict=True):
                results[i] = translation
        self.stats.sentences += len(lines)
        self.stats.tgt_tokens += sum(r.tokens for r in results if r is not None)
        return [r for r in results if r is not None]

    def _batches(self, indices: list[int], ids: list[list[int]]) -> Iterator[list[int]]:
        """Length-sorted batches whose padded source size stays within `decode.max_tokens`, each of at most
        `decode.max_sentences` sentences when that is set (sentences, not sentences x beam, as fairseq)."""
        indices = sorted(indices, key=lambda i: len(ids[i]))
        cap = self.decode.max_sentences or len(indices)
        batch: list[int] = []
        for i in indices:
            width = len(ids[i]) + 1  # + EOS; sorted, so the newest is the longest
            if batch and ((len(batch) + 1) * width > self.decode.max_tokens or len(batch) == cap):
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _constraints(
        self,
        count: int,
        constraints: Sequence[Sequence[str]] | None,
        avoid: Sequence[Sequence[str]] | None,
        prefix: Sequence[str | None] | None,
    ) -> list[Constraints] | None:
        """Each line's constraints as target subword ids, or None when none is given.

        A term is encoded alone: SentencePiece gives its first piece the word-start marker "▁", which is how
        the word begins anywhere in a sentence.
        """
        given = {"constraints": constraints, "avoid": avoid, "prefix": prefix}
        wrong = [f"`{k}` has {len(v)} entries" for k, v in given.items() if v is not None and len(v) != count]
        if wrong:
            raise ValueError(f"constraints must give one entry per line ({count}), but {', '.join(wrong)}.")
        if constraints is None and avoid is None and prefix is None:
            return None
        encode = self.tokenizer.encode_tgt
        wanted = [
            Constraints(
                include=encode(list(constraints[i])) if constraints is not None and constraints[i] else [],
                avoid=encode(list(avoid[i])) if avoid is not None and avoid[i] else [],
                prefix=encode([prefix[i]])[0] if prefix is not None and prefix[i] else [],
            )
            for i in range(count)
        ]
        if avoid is not None:
            refuse_textless(avoid, [c.avoid for c in wanted], self._spelling)
        return wanted

    def _translate_batch(
        self, srcs: list[list[int]], constraints: list[Constraints] | None, spans: list[list[tuple[int, int]]]
    ) -> list[Translation]:
        """The engine's n-best lists of one batch of sources (under their constraints), detokenized, and linked
        to the sources (whose pieces cover `spans` of their lines) when `align` is set."""
        # An empty n-best list (every hypothesis ended at -inf, e.g. `min_len` with n-gram blocking) gives an
        # empty translation, so the output keeps one line per input line.
        attention: list[list[Tensor]] | None = None
        if self.align is not None:
            if not isinstance(self.engine, TorchEngine):
                raise ValueError(f"alignments read the search's attention: {type(self.engine).__name__} has none.")
            found, attention = self.engine.translate_ids_attending(srcs, self.decode, constraints, self.align[1])
        elif constraints:
            found = self.engine.translate_ids(srcs, self.decode, constraints)
        else:  # engines and wrappers that know no constraints keep working
            found = self.engine.translate_ids(srcs, self.decode)
        ordered = self.decode.ordered_constraints
        translations = [
            Translation(
                [self.tokenizer.decode_tgt(h) for h in nbest],
                list(scores),
                len(nbest[0]) if nbest else 0,
                met=[meets(h, wanted, ordered) for h in nbest],
            )
            for (nbest, scores), wanted in zip(found, constraints or [None] * len(srcs), strict=True)
        ]
        if attention is not None:
            for translation, src, src_spans, (nbest, _), attns in zip(
                translations, srcs, spans, found, attention, strict=True
            ):
                self._link(translation, src, src_spans, nbest, attns)
        return translations

    def _link(
        self,
        translation: Translation,
        src: list[int],
        src_spans: list[tuple[int, int]],
        nbest: list[list[int]],
        attns: list[Tensor],
    ) -> None:
        """Fill a translation's word and character links from its hypotheses' search attention."""
        assert self.align is not None
        method = self.align[0]
        src_pieces, tgt_vocab = [self._pieces[0][i] for i in src], self._pieces[1]
        for hyp, attn in zip(nbest, attns, strict=True):
            translation.links.append(search_links(attn, src_pieces, [tgt_vocab[i] for i in hyp], method))
            _, tgt_spans = self.tokenizer.decode_tgt_spans(hyp)
            translation.char_links.append(char_links(attn, src_spans, tgt_spans, method))

    def translate_stream(self, lines: Iterable[str], chunk_lines: int = 2000) -> Iterator[Translation]:
        """Translate lines as they arrive, `chunk_lines` at a time, so memory stays flat on big inputs.

        If reading `lines` fails (a bad line), the lines read before it are translated and yielded
        first, then the error is raised: nothing before the bad line is lost.
        """
        for chunk in line_chunks(lines, chunk_lines):
            yield from self.translate(chunk)

    def warn_truncated(self) -> None:
        """One warning counting the inputs cut to the model's maximum length."""
        if self.stats.truncated:
            print(
                f"warning: {self.stats.truncated} input line(s) longer than {self.max_src_len} subword tokens "
                "were truncated to fit the model.",
                file=sys.stderr,
            )


def trained_len(ckpt: Checkpoint) -> int | None:
    """The longest sentence (subword tokens) of a checkpoint's training data, from its training config."""
    value = ckpt.train_config.get("data", {}).get("max_len") if isinstance(ckpt.train_config, dict) else None
    return value if isinstance(value, int) and value > 0 else None


def check_langs(path: str | Path, found: tuple[str, str], expected: tuple[str, str]) -> None:
    """Refuse a model for another language pair than the caller's data."""
    if tuple(found) != tuple(expected):
        raise CheckpointError(
            f"checkpoint {path} translates {found[0]}->{found[1]}, but the data is "
            f"{expected[0]}->{expected[1]}; choose a matching `data` (e.g. data=multi30k_en_de)."
        )


def line_chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
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


def format_translation(index: int, translation: Translation, n_best: int, alignments: bool = False) -> list[str]:
    """Output lines for one input: the best text, or Moses-style `i ||| text ||| score` n-best lines.

    With `alignments`, each line ends in ` ||| ` and the hypothesis's word links (none for an empty line).
    """
    texts, scores = translation.texts or [""], translation.scores or [0.0]
    links = [format_links(pair) for pair in translation.links] or [""] * len(texts)
    if n_best == 1:
        lines = [texts[0]]
    else:
        lines = [f"{index} ||| {text} ||| {score:.4f}" for text, score in zip(texts, scores, strict=True)]
    if alignments:
        lines = [f"{line} ||| {pair}" for line, pair in zip(lines, links, strict=False)]
    return lines
