"""The translation service behind every route: texts split into lines, lines into ids, ids through the batcher,
n-best lists back into text; alignments and attention computed on the worker thread that owns the model.

Lines are what `nmt-translate` translates: each line of a text is stripped and translated on its own, an empty
line gives an empty translation without touching the model, and a text comes back with its lines in order. A
line longer than the model takes is refused with its position named (never cut silently).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from nmt.config import DecodeConfig, ServeConfig
from nmt.decode.align import Aligner, format_links
from nmt.decode.engine import NBest, TorchEngine
from nmt.decode.translator import Translator
from nmt.serve.batcher import Batcher, BatchStats, DeadlineExceeded, QueueFull, Refused, ShuttingDown
from nmt.serve.errors import RequestError

EOS_PIECE = "</s>"


@dataclass
class Hypothesis:
    """One translation of a line: text, model score (length-normalized log-probability), target ids, word links."""

    text: str
    score: float
    ids: list[int]
    alignment: str | None = None  # Pharaoh `i-j` word links, when asked


@dataclass
class Line:
    """One input line and its n-best hypotheses, best first (none for an empty line)."""

    source: str
    ids: list[int]
    hypotheses: list[Hypothesis] = field(default_factory=list)

    @property
    def best(self) -> str:
        return self.hypotheses[0].text if self.hypotheses else ""


@dataclass
class Attention:
    """Cross-attention of one translated line (mean over heads of one decoder layer): `weights[t][s]` is how much
    target piece t attends to source piece s; both piece lists end in EOS."""

    layer: int
    source: list[str]
    target: list[str]
    weights: list[list[float]]


class TranslationService:
    """A model behind a batching worker, answering texts with n-best lines.

    Args:
        translator: the loaded model (`Translator.from_checkpoint`), whose engine the worker thread owns.
        cfg: the server's settings: default search, batching and limits.
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
        self.batcher = Batcher(
            translator.engine.translate_ids,
            max_tokens=cfg.decode.max_tokens,
            max_sentences=cfg.decode.max_sentences,
            max_wait=cfg.max_wait_ms / 1000,
            max_queue_tokens=cfg.max_queue_tokens,
            merge_requests=cfg.merge_requests,
            on_batch=on_batch,
        )
        self._aligner: Aligner | None = None

    @property
    def max_src_len(self) -> int:
        return self.translator.max_src_len

    @property
    def ready(self) -> bool:
        return self.batcher.ready.is_set() and self.batcher.accepting

    def start(self) -> None:
        """Start the worker; it warms the model up (one translation, one attention map) before `ready`."""
        self.batcher.start(self._warm_up)

    def _warm_up(self) -> None:
        ids = self.tokenizer.encode_src(["hello world ."])[0] or [self.tokenizer.src_vocab_size - 1]
        for _ in range(2):
            nbest = self.translator.engine.translate_ids([ids], self.cfg.decode)[0]
        if isinstance(self.translator.engine, TorchEngine) and nbest[0]:
            self._attention(ids, nbest[0][0], -1)

    def encode(self, lines: list[str], name: str) -> list[list[int]]:
        """Source ids of stripped lines; a line longer than the model takes is refused, naming it."""
        ids = self.tokenizer.encode_src([line.strip() for line in lines])
        for number, src in enumerate(ids, start=1):
            if len(src) > self.max_src_len:
                raise RequestError(
                    400,
                    f"Invalid request: line {number} of `{name}` has {len(src)} subword tokens, more than this model "
                    f"takes ({self.max_src_len}); split it into shorter lines.",
                )
        return ids

    def decode_config(self, **options: int | float) -> DecodeConfig:
        """The server's search settings with a request's changes (already checked against the server's bounds)."""
        return replace(self.cfg.decode, **options)

    async def translate(
        self, texts: list[str], decode: DecodeConfig, name: str = "texts", alignments: bool = False
    ) -> list[list[Line]]:
        """Each text's lines with their n-best hypotheses (`decode.n_best` of them), in order.

        Raises:
            RequestError: 400 a line too long or a request larger than the queue; 503 the queue is full or the
                server shuts down (with Retry-After); 504 the request timeout passed.
        """
        split = [text.split("\n") for text in texts]
        lines = [Line(line.strip(), []) for text in split for line in text]
        ids = self.encode([line.source for line in lines], name)
        todo = [i for i, src in enumerate(ids) if src]
        nbests = await self._run_sentences([ids[i] for i in todo], decode)
        for i, (hyps, scores) in zip(todo, nbests, strict=True):
            lines[i].ids = ids[i]
            lines[i].hypotheses = [
                Hypothesis(self.tokenizer.decode_tgt(hyp), float(score), list(hyp))
                for hyp, score in zip(hyps, scores, strict=True)
            ]
        if alignments:
            await self._align(lines)
        out, start = [], 0
        for text in split:
            out.append(lines[start : start + len(text)])
            start += len(text)
        return out

    async def attention(self, line: Line, layer: int | None = None) -> Attention | None:
        """The cross-attention of a line's best hypothesis (None for an empty line), computed on the worker."""
        if not line.hypotheses or not isinstance(self.translator.engine, TorchEngine):
            return None
        layers = len(self.translator.model.decoder)
        layer = (self.cfg.align_layer if layer is None else layer) % layers  # -1: the top layer, by its index
        hyp = line.hypotheses[0].ids
        weights = await self._call(lambda: self._attention(line.ids, hyp, layer))
        src_pieces, tgt_pieces = self.tokenizer.src_pieces(), self.tokenizer.tgt_pieces()
        return Attention(
            layer,
            [src_pieces[i] for i in line.ids] + [EOS_PIECE],
            [tgt_pieces[i] for i in hyp] + [EOS_PIECE],
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

    async def _align(self, lines: list[Line]) -> None:
        """Word links of every hypothesis, from the model's cross-attention (as `nmt-translate alignments=true`)."""
        if self._aligner is None:
            engine = self.translator.engine
            self._aligner = Aligner(engine.model, self.tokenizer, engine.special_ids)
        hyps = [(line.source, hyp) for line in lines for hyp in line.hypotheses]
        method, layer = self.cfg.align_method, self.cfg.align_layer
        links = await self._call(lambda: self._aligner.align([(src, h.text) for src, h in hyps], method, layer))
        for (_, hyp), pairs in zip(hyps, links, strict=True):
            hyp.alignment = format_links(pairs)

    async def _run_sentences(self, srcs: list[list[int]], decode: DecodeConfig) -> list[NBest]:
        """The batcher's n-best lists for these sources, within the request timeout."""
        tokens = sum(len(s) + 1 for s in srcs)
        if tokens > self.cfg.max_queue_tokens:
            raise RequestError(
                400,
                f"Invalid request: its {tokens} subword tokens exceed what this server queues at once "
                f"({self.cfg.max_queue_tokens}); send it in smaller requests.",
            )
        deadline = time.monotonic() + self.cfg.request_timeout
        try:
            future = self.batcher.submit(srcs, decode, deadline)
        except Refused as err:
            raise _as_request_error(err, self.cfg.request_timeout) from None
        if self.on_accept is not None:
            self.on_accept(len(srcs))
        return await self._wait(future, deadline)

    async def _call(self, fn):
        """Run `fn` on the worker thread (it uses the model) within the request timeout."""
        try:
            future = self.batcher.call(fn)
        except Refused as err:
            raise _as_request_error(err, self.cfg.request_timeout) from None
        return await self._wait(future, time.monotonic() + self.cfg.request_timeout)

    async def _wait(self, future, deadline: float):
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), max(deadline - time.monotonic(), 0))
        except asyncio.TimeoutError:
            self.batcher.cancel(future)
            raise _as_request_error(DeadlineExceeded(), self.cfg.request_timeout) from None
        except Refused as err:
            raise _as_request_error(err, self.cfg.request_timeout) from None
        except asyncio.CancelledError:  # the client went away: drop its queued sentences
            self.batcher.cancel(future)
            raise


def _as_request_error(err: Refused, timeout: float) -> RequestError:
    """The HTTP answer to a refusal: 503 with Retry-After when busy or shutting down, 504 when late."""
    if isinstance(err, QueueFull):
        message = f"Server busy: {err} Retry after {err.retry_after:.0f} s."
        return RequestError(503, message, err.retry_after, "queue_full")
    if isinstance(err, ShuttingDown):
        return RequestError(503, f"Server unavailable: {err}", err.retry_after, "shutdown")
    return RequestError(504, f"The translation did not finish within this server's request timeout ({timeout:g} s).")
