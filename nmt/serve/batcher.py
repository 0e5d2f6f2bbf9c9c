"""Dynamic batching: sentences of every concurrent request, queued with their deadline, translated in token-budget
batches by one worker thread that owns the model.

The worker forms a batch as `nmt-translate` does (at most `max_tokens` padded source tokens, EOS included, and at
most `max_sentences` sentences), from the sentences that share the search settings, oldest first. It starts a
batch once it is full, or once its oldest sentence has waited `max_wait` seconds and `max_wait` has passed since the
last batch ended: a lone request waits at most that long, and the clients a batch has just answered have that long
to send their next sentences into the next batch, so a busy server fills its batches. Sentences of one request
may share a batch with other requests'; a sentence's output does not depend on its neighbours (the search is
batch-invariant), so the answer equals the offline translation.

A sentence may ask for the cross-attention of its search (which places markup and untranslatable pieces): it
shares batches with the others; a batch holding one runs `translate_attending`, and the continuous search keeps the
attention of those that asked. Every translation is as without it (bit for bit up to beam 8, `nmt.model.attention`).

With continuous batching (`continuous`, the PyTorch engine's beam and greedy search), a batch does not run to its
end before the next one starts: its search goes on step by step, and between two steps the worker adds the queued
sentences with the same settings that fit the token budget beside the running ones (no waiting for a batch to
fill: the steps batch them; with `join_share`, a busy search takes them in groups), and hands each sentence's
answer to its request as soon as that sentence ends. So a request that arrives
while others are being translated starts at the next step, not after the whole batch. Queued sentences with other
settings run as ordinary batches between two steps once due. A request given up (deadline passed, client gone)
while its sentences run in the search has them dropped from it before the next step.

When the queue runs empty after a batch, the worker calls `on_idle` (the server hands the memory its batches freed
back to the system there, so that a burst's largest batch does not stay resident).

The queue (`nmt.serve.queue`) is bounded in tokens: a request that would overfill it is refused at once with
`QueueFull`, which carries an estimate of when to retry, never queued without bound. Nothing here knows of HTTP:
requests are futures (`concurrent.futures.Future`), which the web layer awaits.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from nmt.config import DecodeConfig
from nmt.decode.engine import NBest
from nmt.serve.jobs import Attention, BatchStats, Item, Job, QueueFull, ShuttingDown, decode_key, resolve, run_call
from nmt.serve.queue import Key, SentenceQueue
from nmt.serve.rate import WorkRate
from nmt.serve.search import RunningSearch, Search

log = logging.getLogger("nmt.serve")
_IDLE = object()  # what `_next` returns when the queue has run empty after a batch

TranslateIds = Callable[[list[list[int]], DecodeConfig], list[NBest]]  # what `Engine.translate_ids` does
# what `TorchEngine.translate_ids_attending` does for one decoder layer
TranslateAttending = Callable[[list[list[int]], DecodeConfig], tuple[list[NBest], list[Attention]]]
JOIN_HOLD_STEPS = 2  # steps of the running search a sentence may be held back to join with others (`join_share`)


@dataclass
class _Step:
    """Worker work: add `joining` to the running search, then advance it by one step."""

    joining: list[Item]


class Batcher:
    """A queue of sentences and the one worker thread that translates them in batches.

    Args:
        translate: translates one batch of source ids with the given settings (e.g. `TorchEngine.translate_ids`);
            called only from the worker thread.
        translate_attending: the same, also giving each hypothesis's cross-attention (for sentences submitted with
            `attend`); None: no sentence may ask for it.
        max_tokens: padded source tokens (EOS included) per batch, as `decode.max_tokens`.
        max_sentences: sentences per batch (None or 0: no cap), as `decode.max_sentences`.
        max_wait: seconds the worker waits for a batch to fill, after its oldest sentence arrived and after the last
            batch ended.
        max_queue_tokens: source tokens (EOS included) the queue holds at most; a request past it is refused.
        merge_requests: whether a batch may hold sentences of several requests (False: one request per batch).
        on_batch: called after each batch (or step of the continuous search) with its `BatchStats`, before its
            sentences are answered (from the worker thread).
        on_idle: called from the worker thread, outside the lock, once the queue has run empty after one or more
            batches (an exception it raises is logged).
        continuous: the search that sentences with these settings join between steps (`TorchEngine.continuous`,
            keeping the attention of those added with `attend`), or None where they go in batches; None: every
            batch runs to its end. Used only with `merge_requests`.
        join_share: with `continuous`, queued sentences join the running search once they are this share of its
            sentences (or fill its budget) or after `JOIN_HOLD_STEPS` steps: fewer, larger joins. 0: every step.
    """

    def __init__(
        self,
        translate: TranslateIds,
        max_tokens: int,
        max_sentences: int | None = None,
        max_wait: float = 0.005,
        max_queue_tokens: int = 32_000,
        merge_requests: bool = True,
        on_batch: Callable[[BatchStats], None] | None = None,
        translate_attending: TranslateAttending | None = None,
        on_idle: Callable[[], Any] | None = None,
        continuous: Callable[[DecodeConfig], Search | None] | None = None,
        join_share: float = 0.0,
    ) -> None:
        self.translate, self.translate_attending = translate, translate_attending
        self.max_wait, self.max_queue_tokens = max_wait, max_queue_tokens
        self.merge_requests, self.on_batch, self.on_idle = merge_requests, on_batch, on_idle
        self._worked = False  # a batch has run since the worker was last idle
        self._queue = SentenceQueue(max_tokens, max_sentences or None, max_queue_tokens, merge_requests)
        self._calls: deque[tuple[Callable[[], Any], Future]] = deque()
        self._lock = threading.Condition()
        self._accepting, self._stop_at = True, math.inf  # the drain deadline, once draining
        self._holds, self._ended = 0, False  # requests that may still `call` (`holding`); the worker has ended
        self._rate = WorkRate()  # for Retry-After
        self._idle_since = -math.inf  # when the last batch ended (time.monotonic())
        self._shedding = False
        self.continuous = continuous if merge_requests else None
        self.join_share = join_share
        self._search: RunningSearch | None = None
        self._step_seconds = 0.0  # moving average of the running search's step time
        self.ready = threading.Event()  # set once the warm-up has run
        self._thread: threading.Thread | None = None

    # ---- the request side (any thread) ----

    @property
    def queued_tokens(self) -> int:
        return self._queue.tokens

    @property
    def queued_sentences(self) -> int:
        return self._queue.sentences

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def shedding(self) -> bool:
        """Whether a request found the queue full and it has not drained below 90% since: new requests may then
        be refused before they are even read, which keeps refusing cheap under overload."""
        if self._shedding and self._queue.tokens < 0.9 * self.max_queue_tokens:
            self._shedding = False
        return self._shedding

    def submit(
        self, srcs: Sequence[list[int]], decode: DecodeConfig, deadline: float, attend: Sequence[bool] | None = None
    ) -> Future:
        """Queue a request's sentences; the future gets their n-best lists in order. With `attend` (a flag per
        sentence), it gets a pair: the n-best lists, and the attention of each flagged sentence (None for others).

        Raises:
            QueueFull: taking them would put more than `max_queue_tokens` in the queue.
            ShuttingDown: the batcher is draining.
            ValueError: `attend` does not give one flag per sentence, or flags one without `translate_attending`.
        """
        if attend is not None and len(attend) != len(srcs):
            raise ValueError(f"`attend` must give one flag per sentence ({len(srcs)}), but gives {len(attend)}.")
        if attend is not None and any(attend) and self.translate_attending is None:
            raise ValueError("`attend` asks for attention, but this batcher has no `translate_attending`.")
        job = Job(list(srcs), decode, deadline, None if attend is None else list(attend))
        if not srcs:
            job.future.set_result(job.answer())
            return job.future
        with self._lock:
            if not self._accepting:
                raise ShuttingDown("the server is shutting down and takes no new requests.")
            try:
                self._queue.add(job, time.monotonic(), self.retry_after())
            except QueueFull:
                self._shedding = True
                raise
            self._lock.notify()
        return job.future

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run `fn` on the worker thread between two batches (work that needs the model); the future gets its result.
        While draining, only until the drain deadline (the work of requests accepted before, see `holding`).

        Raises:
            ShuttingDown: the worker has ended, or the drain deadline has passed.
        """
        future: Future = Future()
        with self._lock:
            if self._ended or time.monotonic() >= self._stop_at:
                raise ShuttingDown("the server is shutting down and takes no new requests.")
            self._calls.append((fn, future))
            self._lock.notify()
        return future

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Hold the worker for a request's duration: once draining, it stays (until the drain deadline) while any
        request holds it, so that the calls a request makes after its translation (alignments, attention) run."""
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1
                self._lock.notify()

    def cancel(self, future: Future) -> None:
        """Give up a request (its deadline passed, or its client left): its queued sentences are dropped."""
        future.cancel()
        with self._lock:
            self._queue.drop_finished()
            self._lock.notify()

    def retry_after(self) -> float:
        """Seconds until the queue has drained at the worker's recent rate (at least 1)."""
        return self._rate.seconds_for(self._queue.tokens)

    # ---- lifetime ----

    def start(self, warmup: Callable[[], Any] | None = None) -> None:
        """Start the worker thread (once); it runs `warmup` first, then sets `ready`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, args=(warmup,), name="nmt-serve-worker", daemon=True)
        self._thread.start()

    def drain(self, grace: float) -> None:
        """Stop taking requests; what is queued is translated for up to `grace` seconds more, then refused."""
        with self._lock:
            self._accepting = False
            self._stop_at = min(self._stop_at, time.monotonic() + grace)
            self._lock.notify()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end after `drain`; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---- the worker thread ----

    def _run(self, warmup: Callable[[], Any] | None) -> None:
        if warmup is not None:
            warmup()
        self.ready.set()
        while True:
            work = self._next()
            if work is None:
                return
            if work is _IDLE:
                self._run_on_idle()
            elif isinstance(work, tuple):
                run_call(*work)
            elif isinstance(work, _Step):
                self._step(work.joining)
            elif self._search is not None or not self._start_search(work):  # one search runs at a time
                self._translate(work)

    def _next(self) -> list[Item] | tuple[Callable[[], Any], Future] | _Step | object | None:
        """The next thing to do: a call, a batch (waiting for it to fill), a step of the running search (with the
        sentences that join it), or `_IDLE` once the queue has run empty after a batch (with `on_idle`); None once
        drained."""
        with self._lock:
            while True:
                now = time.monotonic()
                if now >= self._stop_at:
                    self._refuse_everything()
                if self._calls:
                    return self._calls.popleft()
                self._queue.drop_finished()
                if (running := self._search) is not None:  # other settings' due batches go between two steps
                    batch, _ = self._take(now, besides=running.key)
                    if batch:
                        return batch
                    search = running.search
                    least, hold = math.ceil(self.join_share * search.sentences), JOIN_HOLD_STEPS * self._step_seconds
                    return _Step(self._queue.joining(running.key, search.sentences, search.width, now, least, hold))
                if not self._accepting and not self._queue and (not self._holds or now >= self._stop_at):
                    self._ended = True
                    return None
                batch, wait = self._take(now)
                if batch:
                    self._worked = True
                    return batch
                if self._worked and not self._queue and self.on_idle is not None:
                    self._worked = False
                    return _IDLE
                self._lock.wait(None if wait == math.inf else wait)

    def _take(self, now: float, besides: Key | None = None) -> tuple[list[Item], float]:
        """A batch from the queue whose head is oldest (other than the queue `besides`), if it is full or due; else
        ([], seconds to wait)."""
        oldest = self._queue.oldest(besides)
        if oldest is None:
            return [], self._stop_at - now
        key, queue = oldest
        due = max(queue[0].arrived, self._idle_since) + self.max_wait
        count, full = self._queue.fits(queue)
        if not (full or now >= due or not self._accepting or not self.merge_requests):
            return [], min(due, self._stop_at) - now
        return self._queue.take(key, count, now), 0.0

    def _refuse_everything(self) -> None:
        """At the drain deadline: answer every queued or running request and call with `ShuttingDown`."""
        running = [] if self._search is None else list(self._search.items.values())
        for item in self._queue.clear() + running:
            self._finish(item.job, ShuttingDown("the server shut down before this request was translated."))
        self._search = None  # a running search's state goes with it
        while self._calls:
            _, future = self._calls.popleft()
            resolve(future, exception=ShuttingDown("the server shut down before this request was finished."))

    def _translate(self, batch: list[Item]) -> None:
        """Translate one batch outside the lock and hand each sentence's n-best list to its request."""
        started = time.perf_counter()
        srcs, decode = [item.job.srcs[item.index] for item in batch], batch[0].job.decode
        try:
            if any(item.attends for item in batch):
                assert self.translate_attending is not None
                nbests, attention = self.translate_attending(srcs, decode)
                attention = [attn if item.attends else None for item, attn in zip(batch, attention, strict=True)]
            else:
                nbests, attention = self.translate(srcs, decode), [None] * len(batch)
        except Exception as err:  # noqa: BLE001 - a failed batch fails its requests, not the worker
            for item in batch:
                self._finish(item.job, err)
            return
        seconds = time.perf_counter() - started
        self._rate.add(sum(item.tokens for item in batch), seconds)
        tokens = len(batch) * max(item.tokens for item in batch)
        self._report(BatchStats(len(batch), tokens, seconds, finished=len(batch)))
        for item, nbest, attn in zip(batch, nbests, attention, strict=True):
            item.answer(nbest, attn)
        self._idle_since = time.monotonic()

    def _start_search(self, batch: list[Item]) -> bool:
        """Start the batch in the search its settings take, if any (False: it goes as an ordinary batch)."""
        if self.continuous is None:
            return False
        try:
            search = self.continuous(batch[0].job.decode)
        except Exception as err:  # noqa: BLE001 - as a failed batch
            for item in batch:
                self._finish(item.job, err)
            return True
        if search is None:
            return False
        self._search = RunningSearch(decode_key(batch[0].job.decode), search)  # its queue's `Key`
        self._step(batch)
        return True

    def _step(self, joining: list[Item]) -> None:
        """Advance the running search one step (`RunningSearch.step`) and answer the sentences that ended."""
        assert self._search is not None
        running = self._search
        started = time.perf_counter()
        try:
            ended, sentences, width = running.step(joining)
        except Exception as err:  # noqa: BLE001 - a failed search fails its requests, not the worker
            for item in [*joining, *running.items.values()]:
                self._finish(item.job, err)
            self._end_search()
            return
        seconds = time.perf_counter() - started
        self._rate.add(sum(item.tokens for item, *_ in ended), seconds)
        self._step_seconds = seconds if not self._step_seconds else 0.8 * self._step_seconds + 0.2 * seconds
        if sentences:
            self._report(BatchStats(sentences, sentences * width, seconds, finished=len(ended)))
        for item, nbest, attn in ended:
            item.answer(nbest, attn)
        if not running.search.sentences:
            self._end_search()

    def _end_search(self) -> None:
        """The running search has no sentence left (or failed, its state dropped): back to waiting for batches."""
        self._search = None
        self._idle_since = time.monotonic()

    def _report(self, stats: BatchStats) -> None:
        """Hand a batch's (or step's) figures to `on_batch`, before its answers go out (a client that got one sees
        it in the metrics); a failure is logged, never the end of the worker or of the batch's answers."""
        if self.on_batch is None:
            return
        try:
            self.on_batch(stats)
        except Exception:  # noqa: BLE001 - the worker must go on serving
            log.exception("on_batch failed; the worker goes on")

    def _run_on_idle(self) -> None:
        """Call `on_idle`; a failure is logged, never the end of the worker."""
        assert self.on_idle is not None  # `_IDLE` comes only with it
        try:
            self.on_idle()
        except Exception:  # noqa: BLE001 - the worker must go on serving
            log.exception("on_idle failed; the worker goes on")

    @staticmethod
    def _finish(job: Job, error: BaseException) -> None:
        resolve(job.future, exception=error)
