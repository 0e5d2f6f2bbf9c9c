"""The continuous search as the batcher's worker drives it: which queued sentences run in it, and one step at a
time, dropping the sentences whose requests were given up and adding those that join."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

from nmt.decode.engine import NBest
from nmt.serve.jobs import Attention, Item
from nmt.serve.queue import Key


class Search(Protocol):
    """A search that sentences join between steps (`nmt.decode.continuous.ContinuousSearch`)."""

    @property
    def sentences(self) -> int: ...  # sentences running

    @property
    def width(self) -> int: ...  # the longest running source, in tokens (EOS included)

    def add(self, srcs: list[list[int]], tags: list[Hashable], attend: list[bool] | None = None) -> None: ...

    def drop(self, tags: set[Hashable]) -> None: ...

    def step(self) -> list[tuple[Hashable, NBest, Attention | None]]: ...  # the ended: n-best list, attention


class RunningSearch:
    """A running search and the queued sentences in it; used by the worker thread only.

    Args:
        key: the queue whose sentences join it (their search settings).
        search: the search.
    """

    def __init__(self, key: Key, search: Search) -> None:
        self.key, self.search = key, search
        self.items: dict[int, Item] = {}  # the sentences running, by their tag in the search

    def step(self, joining: list[Item]) -> tuple[list[tuple[Item, NBest, Attention | None]], int, int]:
        """Drop the sentences of requests given up (cancelled, failed or late), add `joining` (but those), and
        advance the search one step.

        Returns:
            the sentences that ended, with their n-best lists and attention (for those that asked); the sentences
            the step ran and the longest source among them (0 and 0 when none was left to run).

        Raises:
            what the search raises; `items` then holds the sentences it had, `joining` included once added.
        """
        given_up = {tag for tag, item in self.items.items() if item.job.done}
        if given_up:
            self.search.drop(given_up)
            for tag in given_up:
                del self.items[tag]
        joining = [item for item in joining if not item.job.done]
        tags = [id(item) for item in joining]
        self.search.add([item.job.srcs[item.index] for item in joining], tags, [item.attends for item in joining])
        self.items.update(zip(tags, joining, strict=True))
        running, width = self.search.sentences, self.search.width
        if not running:
            return [], 0, 0
        ended = [(self.items.pop(tag), nbest, attn) for tag, nbest, attn in self.search.step()]
        return ended, running, width
