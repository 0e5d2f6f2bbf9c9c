"""The translation service behind every route: texts split into lines, lines into sentences, sentences through the
batcher, translations rejoined; n-best lists, alignments and attention computed on the worker thread that owns the
model.

A line is translated as `nmt-translate` (split=sentences) translates it, through the document pipeline
(`nmt.documents.pipeline`): stripped, split into sentences by the source language's rules, a sentence longer than
the model's training length cut into chunks at clause punctuation (never refused, never truncated), URLs, e-mail
addresses, numbers, placeholders and `code` taken out and put back verbatim along the search's own attention, and
the sentences' translations joined into one line. An empty line gives an empty translation without touching the
model, and a text comes back with its lines in order. HTML goes the same way, segment by segment (a block's text),
its markup placed back along the same attention and the page written back around it.

A request for n-best lists or word alignments translates each line whole instead, as `nmt-translate` does with
n_best > 1 or alignments=true: one sentence per line, nothing taken out; a line longer than the model takes is then
refused with its position named (never cut silently).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import torch

from nmt.config import DecodeConfig, ServeConfig
from nmt.decode.align import Aligner, char_links, default_layer, format_links
from nmt.decode.continuous import ContinuousSearch
from nmt.decode.engine import NBest, TorchEngine
from nmt.decode.translator import Translator
from nmt.device import release_freed_memory
from nmt.documents.formats import Skeleton
from nmt.documents.pipeline import DocumentOptions, DocumentTranslator
from nmt.documents.protect import PROTECTED
from nmt.documents.segment import CharLink, Segment, render
from nmt.documents.sentences import split_sentences
from nmt.serve.batcher import Batcher
from nmt.serve.errors import RequestError, refusal_error
from nmt.serve.jobs import BatchStats, DeadlineExceeded, Refused
from nmt.serve.results import Attention, HtmlText, Hypothesis, Line, Unit

EOS_PIECE = "</s>"
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)  # `request`'s


@dataclass
class _Translated:
    """A segment's translation with its spans placed, its score (None: the model translated none of it), units."""

    segment: Segment
    score: float | None
    units: list[Unit]


def document_options(cfg: ServeConfig, max_src_len: int, trained_len: int | None, align_layer: int) -> DocumentOptions:
    """The document pipeline's options from the server's: sentences are cut at `max_len`, by default the training
    data's (else the model's longest source), never past what the model takes; `max_len=0` never cuts."""
    max_len = None if cfg.max_len == 0 else min(cfg.max_len or trained_len or max_src_len, max_src_len)
    protect = PROTECTED if cfg.protect is None else tuple(cfg.protect)
    align = (cfg.align_method, align_layer)
    return DocumentOptions(cfg.split == "sentences", cfg.splitter, protect, max_len, align)


def whole_lines(decode: DecodeConfig, alignments: bool) -> bool:
    """Whether a request's lines are translated whole (n-best lists, word alignments), not sentence by sentence."""
    return decode.n_best > 1 or alignments


class TranslationService:
    """A model behind a batching worker, answering texts with n-best lines.

    Args:
        translator: the loaded model (`Translator.from_checkpoint`), whose engine the worker thread owns.
        cfg: the server's settings: default search, batching, sentence splitting and limits.
        on_batch: called after every batch (metrics).
        on_accept: called with the number of sentences of every request the queue takes (metrics).
    """

    def __init__(
        self,
        translator: Translator,
        cfg: ServeConfig,
        on_batch: Callable[[BatchStats], None] | None = None,
        on_accept: Callable[[int], None] | None = None,
    ) -> None:
        self.translator, self.cfg, self.on_accept = translator, cfg, on_accept
        self.tokenizer = translator.tokenizer
        self.align_layer = default_layer(cfg.align_layer, translator.aligned_layer)
        options = document_options(cfg, translator.max_src_len, translator.trained_len, self.align_layer)
        if options.split:  # a missing `documents` extra fails now, not at the first request
            split_sentences("A.", translator.langs[0], options.splitter)
        self.documents = DocumentTranslator(translator, options, translator.langs)
        torch_engine = isinstance(translator.engine, TorchEngine)
        self.batcher = Batcher(
            translator.engine.translate_ids,
            max_tokens=cfg.decode.max_tokens,
            max_sentences=cfg.decode.max_sentences,
            max_wait=cfg.max_wait_ms / 1000,
            max_queue_tokens=cfg.max_queue_tokens,
            merge_requests=cfg.merge_requests,
            on_batch=on_batch,
            translate_attending=self._translate_attending,
            on_idle=release_freed_memory,  # the memory kept for reuse within batches goes back between bursts
            continuous=self._continuous if cfg.continuous and torch_engine else None,
            join_share=cfg.join_share,
        )
        self._aligner: Aligner | None = None

    @property
    def max_src_len(self) -> int:
        return self.translator.max_src_len

    @property
    def ready(self) -> bool:
        return self.batcher.ready.is_set() and self.batcher.accepting

    def start(self) -> None:
        """Start the worker; it warms the model up (one translation, one attending, one attention map, a continuous
        search that a second sentence joins) before `ready`."""
        self.batcher.start(self._warm_up)

    def _warm_up(self) -> None:
        ids = self.tokenizer.encode_src(["hello world ."])[0] or [self.tokenizer.src_vocab_size - 1]
        for _ in range(2):
            nbest = self.translator.engine.translate_ids([ids], self.cfg.decode)[0]
        if isinstance(self.translator.engine, TorchEngine) and nbest[0]:
            self._translate_attending([ids], self.cfg.decode)
            self._attention(ids, nbest[0][0], -1)
        search = self.batcher.continuous(self.cfg.decode) if self.batcher.continuous is not None else None
        if search is not None:  # two sentences, the second joining the first's search and keeping its attention
            search.add([ids], [0])
            search.step()
            search.add([ids], [1], [True])
            while search.sentences:
                search.step()

    def _continuous(self, decode: DecodeConfig) -> ContinuousSearch | None:
        """The continuous search for these settings (None where it takes them not), keeping the attention of
        `align_layer` for the sentences that ask (on the worker thread)."""
        assert isinstance(self.translator.engine, TorchEngine)
        return self.translator.engine.continuous(decode, self.align_layer)

    def _translate_attending(
        self, srcs: list[list[int]], decode: DecodeConfig
    ) -> tuple[list[NBest], list[list[torch.Tensor]]]:
        """A batch's n-best lists and their search's attention in `align_layer` (on the worker thread)."""
        return self.translator.engine.translate_ids_attending(srcs, decode, None, self.align_layer)

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """One request's scope: a single deadline, `request_timeout` from now, for every translation and model call
        it makes, and a hold on the worker, so that the calls after its translation still run while the server
        drains (a request accepted before SIGTERM is answered; `Batcher.holding`)."""
        token = _DEADLINE.set(time.monotonic() + self.cfg.request_timeout)
        try:
            with self.batcher.holding():
                yield
        finally:
            _DEADLINE.reset(token)

    def _deadline(self) -> float:
        """The deadline of the request in progress (`request`), or `request_timeout` from now outside one."""
        deadline = _DEADLINE.get()
        return time.monotonic() + self.cfg.request_timeout if deadline is None else deadline

    def decode_config(self, **options: int | float) -> DecodeConfig:
        """The server's search settings with a request's changes (already checked against the server's bounds)."""
        return replace(self.cfg.decode, **options)

    async def translate(
        self, texts: list[str], decode: DecodeConfig, name: str = "texts", alignments: bool = False
    ) -> list[list[Line]]:
        """Each text's lines with their translations, in order: sentence by sentence (one hypothesis per line), or
        whole with `decode.n_best` hypotheses per line when `whole_lines`.

        Raises:
            RequestError: 400 a line too long (whole lines, or `max_len=0`) or a request larger than the queue;
                503 the queue is full or the server shuts down (with Retry-After); 504 the request timeout passed.
        """
        split = [text.split("\n") for text in texts]
        sources = [line.strip() for text in split for line in text]
        if whole_lines(decode, alignments):
            lines = await self._whole_lines(sources, decode, name)
            if alignments:
                await self._align(lines)
        else:
            found = await self._segments([Segment(s) for s in sources], decode, lambda i: f"line {i + 1} of `{name}`")
            # as `nmt-translate` writes a line: its protected pieces back in, on one line
            lines = [_line(s, render(f.segment).replace("\n", " "), f) for s, f in zip(sources, found, strict=True)]
        out, start = [], 0
        for text in split:
            out.append(lines[start : start + len(text)])
            start += len(text)
        return out

    async def translate_html(self, documents: list[Skeleton], decode: DecodeConfig, name: str) -> list[HtmlText]:
        """Each HTML text (`nmt.serve.inputs.html_texts`) translated segment by segment and written back: its
        markup placed along the search's attention, attributes and everything outside the segments as read.

        Raises:
            RequestError: as `translate`.
        """
        segments = [segment for document in documents for segment in document.segments]
        found = await self._segments(segments, decode, lambda i: f"segment {i + 1} of `{name}`")
        out, start = [], 0
        for document in documents:
            mine = found[start : start + len(document.segments)]
            start += len(document.segments)
            lines = [
                _line(verbatim, verbatim if f.segment == source else render(f.segment, document.escape), f)
                for source, verbatim, f in zip(document.segments, document.verbatim, mine, strict=True)
            ]
            text = document.render([f.segment for f in mine]).decode(document.encoding)
            out.append(HtmlText(text, lines))
        return out

    async def attention(self, line: Line, layer: int | None = None) -> Attention | None:
        """The cross-attention of a line's best translation (None where the model translated none of it), computed
        on the worker by teacher forcing each piece (sentence, chunk) the model translated."""
        if not line.units or not isinstance(self.translator.engine, TorchEngine):
            return None
        layers = len(self.translator.model.decoder)
        layer = (self.align_layer if layer is None else layer) % layers  # -1: the top layer, by its index
        maps = await self._call(lambda: [self._attention(src, hyp, layer) for src, hyp in line.units])
        src_pieces, tgt_pieces = self.tokenizer.src_pieces(), self.tokenizer.tgt_pieces()
        weights = torch.block_diag(*maps)  # [sum of T_k + 1, sum of S_k + 1]
        return Attention(
            layer,
            [piece for src, _ in line.units for piece in [src_pieces[i] for i in src] + [EOS_PIECE]],
            [piece for _, hyp in line.units for piece in [tgt_pieces[i] for i in hyp] + [EOS_PIECE]],
            [[round(w, 4) for w in row] for row in weights.tolist()],
        )

    @torch.inference_mode()
    def _attention(self, src: list[int], hyp: list[int], layer: int) -> torch.Tensor:
        """Teacher-forced cross-attention [T+1, S+1] of `hyp` given `src` (on the worker thread)."""
        engine = self.translator.engine
        model = engine.model
        src_t = torch.tensor([src + [engine.special_ids.eos]], device=engine.device)  # [1, S+1]
        tgt_in = torch.tensor([[engine.special_ids.bos] + hyp], device=engine.device)  # [1, T+1]
        _, maps = model.attention_maps(src_t, tgt_in)
        return maps.cross[layer][0].float().mean(0).cpu()  # [H, T+1, S+1] -> [T+1, S+1]

    async def _whole_lines(self, sources: list[str], decode: DecodeConfig, name: str) -> list[Line]:
        """Each stripped line translated as one sentence, with its n-best hypotheses; a line too long is refused."""
        ids = self.tokenizer.encode_src(sources)
        for number, src in enumerate(ids, start=1):
            if len(src) > self.max_src_len:
                raise RequestError(
                    400,
                    f"Invalid request: line {number} of `{name}` has {len(src)} subword tokens, more than this model "
                    f"takes ({self.max_src_len}) in one sentence with n-best lists or alignments; split it into "
                    "shorter lines.",
                    reason="limit",
                )
        lines = [Line(source) for source in sources]
        todo = [i for i, src in enumerate(ids) if src]
        nbests = await self._run_sentences([ids[i] for i in todo], decode)
        for i, (hyps, scores) in zip(todo, nbests, strict=True):
            lines[i].hypotheses = [
                Hypothesis(self.tokenizer.decode_tgt(hyp), float(score))
                for hyp, score in zip(hyps, scores, strict=True)
            ]
            lines[i].units = [(ids[i], list(hyps[0]))] if hyps else []
        return lines

    async def _segments(
        self, segments: Sequence[Segment], decode: DecodeConfig, where: Callable[[int], str]
    ) -> list[_Translated]:
        """Segments translated by the document pipeline, their units in the batcher's queue; the units whose
        segment has spans bring the attention of their search, which places the spans. `where(i)` names segment
        i in the error of a sentence too long for the model (only with `max_len=0`)."""
        plan = self.documents.plan(segments)
        texts = [text.strip() for text in plan.texts]  # as `Translator.translate` strips each line
        ids = self.tokenizer.encode_src(texts)
        for unit, src in zip(plan.units, ids, strict=True):
            if len(src) > self.max_src_len:
                raise RequestError(
                    400,
                    f"Invalid request: {where(unit.segment)} has a sentence of {len(src)} subword tokens, more than "
                    f"this model takes ({self.max_src_len}), and this server does not cut sentences (max_len=0); "
                    "split it into shorter sentences.",
                    reason="limit",
                )
        todo = [k for k, src in enumerate(ids) if src]
        nbests, attention = await self._run_sentences([ids[k] for k in todo], decode, [plan.linked[k] for k in todo])
        found: list[tuple[str, list[CharLink]]] = [("", [])] * len(ids)
        units: list[list[Unit]] = [[] for _ in segments]
        weighted: list[list[tuple[float, int]]] = [[] for _ in segments]  # each unit's (score, target length)
        for k, (hyps, scores), attn in zip(todo, nbests, attention, strict=True):
            if not hyps:  # every hypothesis ended at -inf: an empty translation, as `Translator` gives
                continue
            links = [] if attn is None else self._links(texts[k], hyps[0], attn)
            found[k] = (self.tokenizer.decode_tgt(hyps[0]), links)
            segment = plan.units[k].segment
            units[segment].append((ids[k], list(hyps[0])))
            weighted[segment].append((float(scores[0]), len(hyps[0]) + 1))
        translated = self.documents.assemble(plan, found)
        return [_Translated(t, _mean(w), u) for t, w, u in zip(translated, weighted, units, strict=True)]

    def _links(self, source: str, hyp: list[int], attention: list[torch.Tensor]) -> list[CharLink]:
        """The character links of a unit's best hypothesis from its search's attention (as `Translator._link`)."""
        src_spans = self.tokenizer.encode_src_spans([source])[0][1]
        _, tgt_spans = self.tokenizer.decode_tgt_spans(hyp)
        return char_links(attention[0], src_spans, tgt_spans, self.cfg.align_method)

    async def _align(self, lines: list[Line]) -> None:
        """Word links of every hypothesis, from the model's cross-attention (as `nmt-translate alignments=true`)."""
        if self._aligner is None:
            engine = self.translator.engine
            self._aligner = Aligner(engine.model, self.tokenizer, engine.special_ids)
        hyps = [(line.source, hyp) for line in lines for hyp in line.hypotheses]
        method, layer = self.cfg.align_method, self.align_layer
        links = await self._call(lambda: self._aligner.align([(src, h.text) for src, h in hyps], method, layer))
        for (_, hyp), pairs in zip(hyps, links, strict=True):
            hyp.alignment = format_links(pairs)

    async def _run_sentences(
        self, srcs: list[list[int]], decode: DecodeConfig, attend: list[bool] | None = None
    ) -> list[NBest] | tuple[list[NBest], list[list[torch.Tensor] | None]]:
        """The batcher's n-best lists for these sources (with `attend`: and the attention of those it flags), within
        the request timeout."""
        tokens = sum(len(s) + 1 for s in srcs)
        if tokens > self.cfg.max_queue_tokens:
            raise RequestError(
                400,
                f"Invalid request: its {tokens} subword tokens exceed what this server queues at once "
                f"({self.cfg.max_queue_tokens}); send it in smaller requests.",
                reason="limit",
            )
        deadline = self._deadline()
        try:
            future = self.batcher.submit(srcs, decode, deadline, attend)
        except Refused as err:
            raise refusal_error(err, self.cfg.request_timeout) from None
        if self.on_accept is not None:
            self.on_accept(len(srcs))
        return await self._wait(future, deadline)

    async def _call(self, fn):
        """Run `fn` on the worker thread (it uses the model) within the request's deadline."""
        try:
            future = self.batcher.call(fn)
        except Refused as err:
            raise refusal_error(err, self.cfg.request_timeout) from None
        return await self._wait(future, self._deadline())

    async def _wait(self, future, deadline: float):
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), max(deadline - time.monotonic(), 0))
        except asyncio.TimeoutError:
            self.batcher.cancel(future)
            raise refusal_error(DeadlineExceeded(), self.cfg.request_timeout) from None
        except Refused as err:
            raise refusal_error(err, self.cfg.request_timeout) from None
        except asyncio.CancelledError:  # the client went away: drop its queued sentences
            self.batcher.cancel(future)
            raise


def _line(source: str, text: str, found: _Translated) -> Line:
    """A line (or segment) translated as `text`: one hypothesis, none when the text is empty."""
    score = 0.0 if found.score is None else found.score  # nothing translated: all of it passed through verbatim
    return Line(source, [Hypothesis(text, score)] if text else [], found.units)


def _mean(weighted: list[tuple[float, int]]) -> float | None:
    """The score of a line translated in several units: their scores' mean, weighted by their target lengths."""
    total = sum(length for _, length in weighted)
    return sum(score * length for score, length in weighted) / total if total else None
