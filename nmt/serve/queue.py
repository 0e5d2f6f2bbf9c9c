"""The batcher's queue of sentences: one FIFO per search settings, bounded in tokens, and the
token budget by which its head sentences form a batch or join a running search.

Not thread-safe: the batcher holds its lock around every call.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from nmt.serve.jobs import DeadlineExceeded, Item, Job, QueueFull, decode_key, resolve

Key = tuple[Any, ...]  # a queue's key: the search settings (`decode_key`)


class SentenceQueue:
    """Queued sentences by search settings, oldest first, with the tokens and sentences they hold.

    Args:
        max_tokens: padded source tokens (EOS included) per batch, as `decode.max_tokens`.
        max_sentences: sentences per batch (None: no cap), as `decode.max_sentences`.
        max_queue_tokens: source tokens (EOS included) the queue holds at most.
        merge_requests: whether a batch may hold sentences of several requests.
    """

    def __init__(self, max_tokens: int, max_sentences: int | None, max_queue_tokens: int, merge_requests: bool):
        self.max_tokens, self.max_sentences = max_tokens, max_sentences
        self.max_queue_tokens, self.merge_requests = max_queue_tokens, merge_requests
        self.queues: dict[Key, deque[Item]] = {}
        self.tokens = self.sentences = 0

    def __bool__(self) -> bool:
        return bool(self.queues)

    def add(self, job: Job, now: float, retry_after: float) -> None:
        """Queue a job's sentences, arrived `now`.

        Raises:
            QueueFull: they would put more than `max_queue_tokens` in the queue (with `retry_after`).
        """
        if self.tokens + job.queued_tokens > self.max_queue_tokens:
            raise QueueFull(
                f"the translation queue is full ({self.tokens} of {self.max_queue_tokens} tokens "
                f"queued; this request needs {job.queued_tokens}).",
                retry_after,
            )
        queue = self.queues.setdefault(decode_key(job.decode), deque())
        queue.extend(Item(job, i, now) for i in range(len(job.srcs)))
        self.tokens += job.queued_tokens
        self.sentences += len(job.srcs)

    def oldest(self, besides: Key | None = None) -> tuple[Key, deque[Item]] | None:
        """The queue whose head arrived first (other than `besides`), if any."""
        queues = [(key, queue) for key, queue in self.queues.items() if key != besides]
        return min(queues, key=lambda kv: kv[1][0].arrived) if queues else None

    def fits(self, queue: deque[Item], running: int = 0, width: int = 0) -> tuple[int, bool]:
        """How many head items form a batch within the budget (beside `running` sentences up to `width` tokens),
        and whether the next one would not fit."""
        count, cap = 0, (self.max_sentences or math.inf) - running
        for item in queue:
            if count and not self.merge_requests and item.job is not queue[0].job:
                return count, True
            width = max(width, item.tokens)
            if (count or running) and ((running + count + 1) * width > self.max_tokens or count >= cap):
                return count, True
            count += 1
        return count, False

    def joining(self, key: Key, running: int, width: int, now: float, least: int = 1, hold: float = 0.0) -> list[Item]:
        """The head items of queue `key` that fit beside `running` sentences up to `width` tokens, taken; none yet
        while fewer than `least` fit, the budget would hold more, and the head has waited less than `hold` seconds."""
        queue = self.queues.get(key)
        if not queue:
            return []
        count, full = self.fits(queue, running, width)
        room = min(self.max_sentences or math.inf, self.max_tokens // max(width, queue[0].tokens)) - running
        if count < min(least, room) and not full and now - queue[0].arrived < hold:
            return []
        return self.take(key, count, now) if count else []

    def take(self, key: Key, count: int, now: float) -> list[Item]:
        """Take `count` head items of queue `key`; those past their deadline are answered 504 and left out."""
        queue = self.queues[key]
        batch = [queue.popleft() for _ in range(count)]
        if not queue:
            del self.queues[key]
        self._forget(batch)
        for item in batch:
            if now > item.job.deadline:
                late = DeadlineExceeded("the request's deadline passed while it was queued.")
                resolve(item.job.future, exception=late)
        return [item for item in batch if not item.job.done]

    def drop_finished(self) -> None:
        """Remove the queued sentences of requests already answered (cancelled, failed or late)."""
        for key in list(self.queues):
            queue = self.queues[key]
            if any(item.job.done for item in queue):
                self._forget([item for item in queue if item.job.done])
                kept = deque(item for item in queue if not item.job.done)
                if kept:
                    self.queues[key] = kept
                else:
                    del self.queues[key]

    def clear(self) -> list[Item]:
        """Empty the queue; the items it held."""
        items = [item for queue in self.queues.values() for item in queue]
        self.queues.clear()
        self._forget(items)
        return items

    def _forget(self, items: list[Item]) -> None:
        """Count `items` out of the queue's tokens and sentences, and out of their jobs' queued tokens."""
        self.tokens -= sum(item.tokens for item in items)
        self.sentences -= len(items)
        for item in items:
            item.job.queued_tokens -= item.tokens
