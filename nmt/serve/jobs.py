"""What flows through the batcher: a request's sentences (`Job`), each queued sentence (`Item`), the batch
statistics the worker reports, and the ways a request is refused."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from typing import Any

from torch import Tensor

from nmt.config import DecodeConfig
from nmt.decode.engine import NBest

Attention = list[Tensor]  # one sentence's cross-attention as its search computed it: [T + 1, S + 1] per hypothesis


class Refused(Exception):
    """A request the batcher will not take or could not finish; `retry_after` (seconds) when retrying may help."""

    retry_after: float | None = None


class QueueFull(Refused):
    """The queue holds too many tokens to take this request now."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ShuttingDown(Refused):
    """The server is draining its queue before it exits: no new work, and work left at the deadline is dropped."""

    retry_after = 1.0


class DeadlineExceeded(Refused):
    """The request's deadline passed before all of its sentences were translated."""


@dataclass(eq=False)
class Job:
    """One request's sentences on their way through the queue; `future` gets the n-best list of each, in order
    (with `attend`: those and each sentence's attention, None where it was not asked for)."""

    srcs: list[list[int]]  # source ids without EOS, each non-empty and within the model's length
    decode: DecodeConfig
    deadline: float  # time.monotonic() after which the request is answered 504
    attend: list[bool] | None = None  # per sentence: translate it with its search's attention
    future: Future = field(default_factory=Future)
    results: list[NBest | None] = field(init=False)
    attention: list[Attention | None] = field(init=False)
    left: int = field(init=False)  # sentences without a result yet
    queued_tokens: int = field(init=False)  # tokens of its sentences still in the queue

    def __post_init__(self) -> None:
        self.results = [None] * len(self.srcs)
        self.attention = [None] * len(self.srcs)
        self.left = len(self.srcs)
        self.queued_tokens = sum(len(s) + 1 for s in self.srcs)

    @property
    def done(self) -> bool:
        return self.future.done()

    def answer(self) -> list[NBest] | tuple[list[NBest], list[Attention | None]]:
        """What the future gets once every sentence has its result."""
        return self.results if self.attend is None else (self.results, self.attention)


@dataclass
class Item:
    """One queued sentence: its job, its index there, and when it arrived."""

    job: Job
    index: int
    arrived: float

    @property
    def tokens(self) -> int:
        return len(self.job.srcs[self.index]) + 1  # + EOS, as `Translator._batches` counts

    @property
    def attends(self) -> bool:
        return self.job.attend is not None and self.job.attend[self.index]

    def answer(self, nbest: NBest, attention: Attention | None) -> None:
        """Give this sentence its result; the request's future gets every result once the last one is in."""
        job = self.job
        job.results[self.index], job.attention[self.index] = nbest, attention
        job.left -= 1
        if job.left == 0:
            resolve(job.future, result=job.answer())


@dataclass
class BatchStats:
    """What the worker reports after each batch, or each step of the continuous search (for metrics): sentences
    in it, padded source tokens, seconds, and the sentences it finished (all of a batch's)."""

    sentences: int
    tokens: int
    seconds: float
    finished: int


def decode_key(cfg: DecodeConfig) -> tuple[Any, ...]:
    """The search settings as a hashable key: only sentences with equal settings share a batch."""
    return tuple(getattr(cfg, f.name) for f in fields(cfg))


def resolve(future: Future, result: Any = None, exception: BaseException | None = None) -> None:
    """Resolve a future unless it is already done (cancelled by its request, or failed)."""
    if future.done():
        return
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except Exception:  # noqa: BLE001 - cancelled in between by another thread: nobody waits for it
        pass


def run_call(fn: Callable[[], Any], future: Future) -> None:
    """Run a queued call and put its result (or error) in its future, unless it was cancelled."""
    if future.cancelled():
        return
    try:
        result = fn()
    except Exception as err:  # noqa: BLE001 - handed to the caller
        resolve(future, exception=err)
        return
    resolve(future, result=result)
