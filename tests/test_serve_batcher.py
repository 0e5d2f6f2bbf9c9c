"""The serving batcher: batches across requests within the token budget, the bounded queue, deadlines, draining,
and batch invariance with the real model (a sentence's output equals its offline translation).

Most tests drive the batcher with a recording fake engine (no model, milliseconds each); the invariance tests
use the session's tiny model.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor, wait

import pytest

pytest.importorskip("starlette", reason="nmt-serve needs the `serve` extra: pip install 'nmt-toolkit[serve]'")

from nmt.config import DataConfig, DecodeConfig  # noqa: E402
from nmt.data.sources import get_corpus  # noqa: E402
from nmt.decode.continuous import ContinuousSearch  # noqa: E402
from nmt.decode.translator import Translator  # noqa: E402
from nmt.serve.batcher import Batcher  # noqa: E402
from nmt.serve.jobs import DeadlineExceeded, QueueFull, ShuttingDown  # noqa: E402

DECODE = DecodeConfig(beam_size=1)
LATER = 1e9  # a deadline that never passes


class FakeEngine:
    """Answers each source with itself reversed (score = its length), recording every batch; `gate` holds it."""

    def __init__(self) -> None:
        self.batches: list[list[list[int]]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, srcs: list[list[int]], cfg: DecodeConfig):
        self.gate.wait(10)
        self.batches.append([list(s) for s in srcs])
        return [([s[::-1]], [float(len(s))]) for s in srcs]


_STARTED: list[Batcher] = []


@pytest.fixture(autouse=True)
def _drain_batchers():
    """Each test's workers end with it."""
    yield
    while _STARTED:
        batcher = _STARTED.pop()
        batcher.drain(grace=0)
        batcher.join(5)


def _batcher(engine, **kwargs) -> Batcher:
    batcher = Batcher(engine, **{"max_tokens": 100, "max_wait": 0.05, "max_queue_tokens": 1000, **kwargs})
    batcher.start()
    _STARTED.append(batcher)
    assert batcher.ready.wait(5)
    return batcher


def _hold(batcher: Batcher) -> threading.Event:
    """Keep the worker busy until the returned event is set, so requests pile up in the queue."""
    release, busy = threading.Event(), threading.Event()
    batcher.call(lambda: (busy.set(), release.wait(10)))
    assert busy.wait(5)
    return release


def test_concurrent_requests_share_batches_and_get_their_own_answers():
    engine = FakeEngine()
    batcher = _batcher(engine)
    release = _hold(batcher)
    futures = [batcher.submit([[i, i + 1], [i] * 3], DECODE, LATER) for i in range(1, 6)]
    release.set()
    for i, future in enumerate(futures, start=1):
        assert future.result(5) == [([[i + 1, i]], [2.0]), ([[i] * 3], [3.0])]
    assert len(engine.batches) == 1 and len(engine.batches[0]) == 10  # all five requests in one batch


def test_batches_keep_the_token_budget_and_the_sentence_cap():
    engine = FakeEngine()
    batcher = _batcher(engine, max_tokens=20, max_sentences=3)
    release = _hold(batcher)
    futures = [batcher.submit([[7] * n], DECODE, LATER) for n in (3, 3, 3, 3, 9, 1, 1)]
    release.set()
    wait(futures, 5)
    for batch in engine.batches:
        assert len(batch) <= 3
        assert len(batch) * max(len(s) + 1 for s in batch) <= 20  # padded, EOS included, as nmt-translate
    assert sorted(len(s) for b in engine.batches for s in b) == [1, 1, 3, 3, 3, 3, 9]


def test_sentences_asking_for_attention_share_a_batch_searched_with_it():
    engine, attending = FakeEngine(), FakeEngine()

    def with_attention(srcs, cfg):
        return attending(srcs, cfg), [[f"attention of {s}"] for s in srcs]

    batcher = _batcher(engine, translate_attending=with_attention)
    release = _hold(batcher)
    mixed = batcher.submit([[1], [2, 2], [3]], DECODE, LATER, attend=[True, False, True])
    plain = batcher.submit([[4]], DECODE, LATER)
    release.set()
    assert mixed.result(5) == (
        [([[1]], [1.0]), ([[2, 2]], [2.0]), ([[3]], [1.0])],
        [["attention of [1]"], None, ["attention of [3]"]],
    )
    assert plain.result(5) == [([[4]], [1.0])]
    assert attending.batches == [[[1], [2, 2], [3], [4]]]  # one batch; attention only for those that asked
    assert engine.batches == []


def test_attention_needs_an_attending_engine_and_a_flag_per_sentence():
    batcher = _batcher(FakeEngine())
    with pytest.raises(ValueError, match="no `translate_attending`"):
        batcher.submit([[1]], DECODE, LATER, attend=[True])
    with pytest.raises(ValueError, match="one flag per sentence"):
        batcher.submit([[1], [2]], DECODE, LATER, attend=[False])
    assert batcher.submit([[1]], DECODE, LATER, attend=[False]).result(5) == ([([[1]], [1.0])], [None])


def test_a_lone_request_waits_at_most_max_wait():
    engine = FakeEngine()
    batcher = _batcher(engine, max_wait=0.02)
    started = time.perf_counter()
    assert batcher.submit([[1, 2, 3]], DECODE, LATER).result(5) == [([[3, 2, 1]], [3.0])]
    assert time.perf_counter() - started < 0.5


def test_the_clients_a_batch_answered_join_the_next_batch():
    """After a batch the worker waits `max_wait` more: a request sent just after the first one is answered
    shares a batch with one queued meanwhile, which is overdue (the first batch took longer than `max_wait`)."""
    engine = FakeEngine()
    batcher = _batcher(engine, max_wait=1.0)
    engine.gate.clear()
    first = batcher.submit([[1]], DECODE, LATER)
    deadline = time.monotonic() + 5
    while batcher.queued_sentences and time.monotonic() < deadline:  # until the worker took it
        time.sleep(0.01)
    queued = batcher.submit([[2]], DECODE, LATER)
    followers: list = []

    def follow(_) -> None:  # the client answered sends its next request 50 ms later, from its own thread
        threading.Timer(0.05, lambda: followers.append(batcher.submit([[3]], DECODE, LATER))).start()

    first.add_done_callback(follow)
    time.sleep(1.2)  # the first batch outlasts max_wait: the queued request is overdue when it ends
    engine.gate.set()
    assert queued.result(5) == [([[2]], [1.0])]
    deadline = time.monotonic() + 5
    while not followers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert followers[0].result(5) == [([[3]], [1.0])]
    assert engine.batches == [[[1]], [[2], [3]]]


def test_on_idle_runs_once_each_time_the_queue_runs_empty_after_batches():
    """Not between batches while sentences wait, not before any batch, not again while nothing runs."""
    engine, idle = FakeEngine(), []
    batcher = _batcher(engine, max_tokens=4, max_wait=0.001, on_idle=lambda: idle.append(len(engine.batches)))
    time.sleep(0.1)
    assert idle == []  # started and ready, no batch yet
    engine.gate.clear()
    first = [batcher.submit([[1, 2, 3]], DECODE, LATER) for _ in range(3)]  # 4 tokens each: a batch each
    time.sleep(0.1)
    assert idle == []
    engine.gate.set()
    wait(first, timeout=5)
    deadline = time.monotonic() + 5
    while not idle and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert idle == [3]
    batcher.submit([[4]], DECODE, LATER).result(5)
    deadline = time.monotonic() + 5
    while len(idle) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert idle == [3, 4]


def test_on_idle_waits_while_a_sentence_is_queued_but_not_due():
    engine, idle = FakeEngine(), []
    batcher = _batcher(engine, max_tokens=8, max_wait=0.5, on_idle=lambda: idle.append(len(engine.batches)))
    engine.gate.clear()
    first = batcher.submit([[1, 2, 3]] * 2, DECODE, LATER)  # fills a batch: taken at once, held at the gate
    deadline = time.monotonic() + 5
    while batcher.queued_sentences and time.monotonic() < deadline:
        time.sleep(0.01)
    queued = batcher.submit([[4]], DECODE, LATER)  # alone: due only max_wait after the first batch ends
    engine.gate.set()
    first.result(5)
    time.sleep(0.2)
    assert idle == [] and not queued.done()
    queued.result(5)
    deadline = time.monotonic() + 5
    while not idle and time.monotonic() < deadline:
        time.sleep(0.01)
    assert idle == [2]


def test_a_failing_on_idle_is_logged_and_the_worker_goes_on(caplog):
    def fail() -> None:
        raise RuntimeError("no trim today")

    batcher = _batcher(FakeEngine(), max_wait=0.001, on_idle=fail)
    with caplog.at_level("ERROR", logger="nmt.serve"):
        for value in (1, 2):
            assert batcher.submit([[value]], DECODE, LATER).result(5) == [([[value]], [1.0])]
            time.sleep(0.05)
    assert sum("on_idle failed" in r.message for r in caplog.records) == 2


@pytest.mark.parametrize("continuous", [False, True], ids=["batches", "continuous"])
def test_a_failing_on_batch_is_logged_and_every_sentence_answered(caplog, continuous):
    def fail(stats) -> None:
        raise RuntimeError("metrics are down")

    settings = {"max_wait": 0.001, "on_batch": fail}
    batcher = _continuous(FakeSearch(), **settings) if continuous else _batcher(FakeEngine(), **settings)
    with caplog.at_level("ERROR", logger="nmt.serve"):
        for value in (1, 2):  # the second after the first's failure: the worker is still there
            assert batcher.submit([[value, 3]], DECODE, LATER).result(5) == [([[3, value]], [2.0])]
    assert sum("on_batch failed" in r.message for r in caplog.records) >= 2


def test_requests_with_other_search_settings_never_share_a_batch():
    engine = FakeEngine()
    batcher = _batcher(engine)
    release = _hold(batcher)
    a = batcher.submit([[1], [2]], DecodeConfig(beam_size=1), LATER)
    b = batcher.submit([[3], [4]], DecodeConfig(beam_size=2), LATER)
    release.set()
    wait([a, b], 5)
    assert sorted(map(sorted, engine.batches)) == [[[1], [2]], [[3], [4]]]


def test_without_merging_each_batch_holds_one_request():
    engine = FakeEngine()
    batcher = _batcher(engine, merge_requests=False)
    release = _hold(batcher)
    futures = [batcher.submit([[i], [i, i]], DECODE, LATER) for i in range(1, 4)]
    release.set()
    wait(futures, 5)
    assert engine.batches == [[[1], [1, 1]], [[2], [2, 2]], [[3], [3, 3]]]


def test_a_full_queue_refuses_at_once_with_a_retry_estimate():
    engine = FakeEngine()
    batcher = _batcher(engine, max_queue_tokens=10)
    release = _hold(batcher)
    first = batcher.submit([[1] * 5], DECODE, LATER)  # 6 tokens with EOS
    started = time.perf_counter()
    with pytest.raises(QueueFull) as refused:
        batcher.submit([[2] * 5], DECODE, LATER)
    assert time.perf_counter() - started < 0.1 and refused.value.retry_after >= 1
    assert (batcher.queued_sentences, batcher.queued_tokens) == (1, 6)
    release.set()
    assert first.result(5)
    assert batcher.submit([[2] * 5], DECODE, LATER).result(5)  # room again


def test_a_late_request_fails_with_its_deadline_and_frees_the_queue():
    engine = FakeEngine()
    batcher = _batcher(engine)
    release = _hold(batcher)
    late = batcher.submit([[1, 2]], DECODE, time.monotonic() + 0.05)
    on_time = batcher.submit([[3, 4]], DECODE, LATER)
    time.sleep(0.1)
    release.set()
    with pytest.raises(DeadlineExceeded):
        late.result(5)
    assert on_time.result(5) == [([[4, 3]], [2.0])]
    assert [[3, 4]] in engine.batches and all([1, 2] not in b for b in engine.batches)
    assert batcher.queued_tokens == 0


def test_a_cancelled_request_is_dropped_from_the_queue():
    engine = FakeEngine()
    batcher = _batcher(engine)
    release = _hold(batcher)
    gone = batcher.submit([[9, 9, 9]], DECODE, LATER)
    batcher.cancel(gone)
    kept = batcher.submit([[1]], DECODE, LATER)
    release.set()
    assert kept.result(5)
    assert all([9, 9, 9] not in b for b in engine.batches) and batcher.queued_tokens == 0


def test_a_failing_batch_fails_its_requests_and_the_worker_goes_on():
    engine = FakeEngine()
    calls = {"n": 0}

    def flaky(srcs, cfg):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("out of memory")
        return engine(srcs, cfg)

    batcher = _batcher(flaky, max_wait=0.0)
    with pytest.raises(RuntimeError, match="out of memory"):
        batcher.submit([[1]], DECODE, LATER).result(5)
    assert batcher.submit([[2]], DECODE, LATER).result(5) == [([[2]], [1.0])]


def test_drain_finishes_what_is_queued_and_refuses_new_work():
    engine = FakeEngine()
    batcher = _batcher(engine)
    release = _hold(batcher)
    queued = [batcher.submit([[i]], DECODE, LATER) for i in range(5)]
    batcher.drain(grace=10)
    with pytest.raises(ShuttingDown):
        batcher.submit([[1]], DECODE, LATER)
    release.set()
    assert [f.result(5) for f in queued] == [[([[i]], [1.0])] for i in range(5)]
    assert batcher.join(5)


@pytest.mark.parametrize("held", [True, False])
def test_a_request_held_through_the_drain_may_still_use_the_worker(held):
    """The work a request accepted before the drain does after its translation (alignments, attention) still runs:
    the worker stays while a request holds it; without a hold it ends once the queue is empty."""
    batcher = _batcher(FakeEngine())
    hold = batcher.holding()
    if held:
        hold.__enter__()
    assert batcher.submit([[1, 2]], DECODE, LATER).result(5) == [([[2, 1]], [2.0])]
    batcher.drain(grace=10)
    if held:
        assert batcher.call(lambda: 42).result(5) == 42
        assert not batcher.join(0.2)  # still held
        hold.__exit__(None, None, None)
    assert batcher.join(5)
    with pytest.raises(ShuttingDown):
        batcher.call(lambda: 42)


def test_a_hold_keeps_the_worker_only_until_the_drain_deadline():
    batcher = _batcher(FakeEngine())
    with batcher.holding():
        batcher.drain(grace=0.1)
        assert batcher.join(5)
        with pytest.raises(ShuttingDown):
            batcher.call(lambda: 42)


def test_drain_answers_what_the_grace_period_leaves():
    engine = FakeEngine()
    engine.gate.clear()  # the engine hangs until released
    batcher = _batcher(engine)
    running = batcher.submit([[1]], DECODE, LATER)
    time.sleep(0.2)  # the worker has taken it and waits at the gate
    queued = batcher.submit([[2]], DECODE, LATER)
    batcher.drain(grace=0.1)
    time.sleep(0.2)
    engine.gate.set()
    assert running.result(5) == [([[1]], [1.0])]  # a batch already running finishes
    with pytest.raises(ShuttingDown):
        queued.result(5)
    assert batcher.join(5)


# ---- continuous batching ----


class FakeSearch:
    """A search that ends a sentence after as many steps as it has tokens, answering it reversed; records the
    sentences running at each step (`steps`) and `fail_at` makes that step raise."""

    def __init__(self, step_seconds: float = 0.0) -> None:
        self.running: dict = {}  # tag -> [source, steps left]
        self.steps: list[list[list[int]]] = []
        self.dropped: list = []  # the sources dropped, in order
        self.adds: list[tuple[int, list[list[int]]]] = []  # (steps run before, sources) of each group added
        self.step_seconds, self.fail_at = step_seconds, -1

    @property
    def sentences(self) -> int:
        return len(self.running)

    @property
    def width(self) -> int:
        return max((len(src) + 1 for src, *_ in self.running.values()), default=0)

    def add(self, srcs, tags, attend=None) -> None:
        if srcs:
            self.adds.append((len(self.steps), [list(src) for src in srcs]))
        for src, tag, attends in zip(srcs, tags, attend or [False] * len(srcs), strict=True):
            self.running[tag] = [list(src), len(src), attends]

    def drop(self, tags) -> None:
        for tag in tags:
            if tag in self.running:
                self.dropped.append(self.running.pop(tag)[0])

    def step(self):
        if len(self.steps) == self.fail_at:
            raise RuntimeError("out of memory")
        time.sleep(self.step_seconds)
        self.steps.append([src for src, *_ in self.running.values()])
        ended = []
        for tag, entry in list(self.running.items()):
            entry[1] -= 1
            if entry[1] == 0:
                del self.running[tag]
                attention = [f"attention of {entry[0]}"] if entry[2] else None
                ended.append((tag, ([entry[0][::-1]], [float(len(entry[0]))]), attention))
        return ended


def _continuous(search: FakeSearch, engine=None, **kwargs) -> Batcher:
    return _batcher(engine or FakeEngine(), continuous=lambda cfg: search if cfg.beam_size == 1 else None, **kwargs)


@pytest.mark.parametrize("continuous", [True, False])
def test_a_short_request_joins_a_running_search_and_ends_before_a_long_one(continuous):
    """With continuous batching a request sent while a long sentence is translated starts at the next step and
    is answered first; without, it waits for the whole batch."""
    search, engine = FakeSearch(step_seconds=0.01), FakeEngine()
    batcher = _continuous(search, engine, max_wait=0.0) if continuous else _batcher(engine, max_wait=0.0)
    long = batcher.submit([[5] * 40], DECODE, LATER)
    time.sleep(0.05)  # the long sentence is running
    short = batcher.submit([[1, 2]], DECODE, LATER)
    assert short.result(5) == [([[2, 1]], [2.0])]
    assert long.done() is not continuous
    assert long.result(5) == [([[5] * 40], [40.0])]
    if continuous:
        assert any([1, 2] in step and [5] * 40 in step for step in search.steps)
        assert engine.batches == []


def test_sentences_asking_for_attention_join_the_running_search_and_get_it():
    """A sentence that asks for its attention joins the search beside the others (no batch of its own) and gets
    the attention the search kept; the others get none."""
    search, engine, apart = FakeSearch(step_seconds=0.01), FakeEngine(), []
    batcher = _continuous(search, engine, max_wait=0.0, translate_attending=lambda srcs, cfg: apart.append(srcs))
    long = batcher.submit([[5] * 20], DECODE, LATER)
    time.sleep(0.05)  # the long sentence is running
    mixed = batcher.submit([[1], [2, 2]], DECODE, LATER, attend=[True, False])
    assert mixed.result(5) == ([([[1]], [1.0]), ([[2, 2]], [2.0])], [["attention of [1]"], None])
    assert long.result(5) == [([[5] * 20], [20.0])]
    assert any([1] in step and [5] * 20 in step for step in search.steps)
    assert engine.batches == [] and apart == []


def test_sentences_join_within_the_token_budget_and_the_sentence_cap():
    search = FakeSearch()
    batcher = _continuous(search, max_tokens=20, max_sentences=3)
    release = _hold(batcher)
    futures = [batcher.submit([[7] * n], DECODE, LATER) for n in (3, 3, 3, 3, 9, 1, 1, 4)]
    release.set()
    assert [f.result(5)[0][1] for f in futures] == [[float(n)] for n in (3, 3, 3, 3, 9, 1, 1, 4)]
    for running in search.steps:
        assert len(running) <= 3
        assert len(running) * max(len(s) + 1 for s in running) <= 20
    assert max(len(running) for running in search.steps) == 3  # sentences joined as others left


def _joined(search: FakeSearch, src: list[int]) -> tuple[int, list[list[int]]]:
    """The step count when `src` joined, and the group it joined with (waits for it)."""
    for _ in range(500):
        for steps, group in list(search.adds):
            if src in group:
                return steps, group
        time.sleep(0.01)
    raise AssertionError(f"{src} never joined")


@pytest.mark.parametrize("join_share", [0.0, 0.5])
def test_with_a_join_share_a_busy_search_takes_sentences_in_groups(join_share):
    """With `join_share`, a lone sentence waits (two steps at most) for others to join a busy search with it;
    enough of them join at the next step, together; without, each joins at the next step."""
    search = FakeSearch(step_seconds=0.02)
    batcher = _continuous(search, max_wait=0.0, max_tokens=1000, join_share=join_share)
    running = [batcher.submit([[5] * 40 + [i]], DECODE, LATER) for i in range(4)]
    _joined(search, [5] * 40 + [3])
    time.sleep(0.05)  # steps running
    before = len(search.steps)
    lone = batcher.submit([[1, 2]], DECODE, LATER)
    steps, group = _joined(search, [1, 2])
    assert group == [[1, 2]]
    assert (steps - before >= 2) if join_share else (steps - before <= 1)  # held back, or at the next step
    assert lone.result(5) == [([[2, 1]], [2.0])]
    before = len(search.steps)
    pair = [batcher.submit([[3, i]], DECODE, LATER) for i in (1, 2)]  # 2 of 5 running: half or more
    steps, group = _joined(search, [3, 1])
    assert steps - before <= 1 and group == ([[3, 1], [3, 2]] if join_share else group)
    assert [f.result(5) for f in pair] == [[([[1, 3]], [2.0])], [([[2, 3]], [2.0])]]
    batcher.drain(grace=0)
    for future in running:
        with pytest.raises(ShuttingDown):
            future.result(5)


def test_a_sentence_that_alone_fills_the_budget_joins_at_once_despite_the_join_share():
    search = FakeSearch(step_seconds=0.02)
    batcher = _continuous(search, max_wait=0.0, max_tokens=1000, join_share=0.5, max_sentences=5)
    for i in range(4):
        batcher.submit([[5] * 40 + [i]], DECODE, LATER)
    _joined(search, [5] * 40 + [3])
    time.sleep(0.05)
    before = len(search.steps)
    batcher.submit([[1, 2]], DECODE, LATER)  # the fifth: the cap, so no group could be larger
    steps, _ = _joined(search, [1, 2])
    assert steps - before <= 1


def test_other_settings_run_as_batches_between_steps():
    """Even settings a search would take: one search runs at a time, and it keeps its sentences."""
    searches, engine = [], FakeEngine()

    def continuous(cfg):
        searches.append(FakeSearch(step_seconds=0.01))
        return searches[-1]

    batcher = _batcher(engine, max_wait=0.0, continuous=continuous)
    long = batcher.submit([[5] * 30], DECODE, LATER)
    time.sleep(0.05)
    other = batcher.submit([[1, 2]], DecodeConfig(beam_size=2), LATER)
    assert other.result(5) == [([[2, 1]], [2.0])]
    assert not long.done()  # answered between two steps of the running search
    assert long.result(5) == [([[5] * 30], [30.0])]
    assert engine.batches == [[[1, 2]]] and len(searches) == 1


def test_a_failing_search_fails_its_requests_and_the_worker_goes_on():
    searches = [FakeSearch(), FakeSearch()]
    searches[0].fail_at = 2
    batcher = _batcher(FakeEngine(), max_wait=0.0, continuous=lambda cfg: searches.pop(0))
    release = _hold(batcher)
    running = [batcher.submit([[1] * n], DECODE, LATER) for n in (5, 6)]
    release.set()
    for future in running:
        with pytest.raises(RuntimeError, match="out of memory"):
            future.result(5)
    assert batcher.submit([[3, 4]], DECODE, LATER).result(5) == [([[4, 3]], [2.0])]  # the worker goes on


@pytest.mark.parametrize("give_up", [True, False])
def test_a_request_given_up_leaves_the_running_search(give_up):
    """A cancelled request's sentences are dropped before the next step, the others go on; one not given up runs
    to its end."""
    search = FakeSearch(step_seconds=0.01)
    batcher = _continuous(search, max_wait=0.0)
    first, second = batcher.submit([[5] * 30], DECODE, LATER), batcher.submit([[6] * 40], DECODE, LATER)
    time.sleep(0.05)  # both are running
    if give_up:
        batcher.cancel(first)
    assert second.result(5) == [([[6] * 40], [40.0])]
    assert search.dropped == ([[5] * 30] if give_up else [])
    assert first.cancelled() is give_up
    assert (first.result(5) if not give_up else None) in ([([[5] * 30], [30.0])], None)
    assert (sum([5] * 30 in step for step in search.steps) < 30) is give_up  # steps it was in


def test_a_search_whose_every_sentence_was_given_up_ends_without_a_step():
    search, stats = FakeSearch(step_seconds=0.01), []
    batcher = _continuous(search, max_wait=0.0, on_batch=stats.append)
    lone = batcher.submit([[5] * 30], DECODE, LATER)
    time.sleep(0.05)  # running
    batcher.cancel(lone)
    assert batcher.submit([[1, 2]], DECODE, LATER).result(5) == [([[2, 1]], [2.0])]  # a new search
    assert search.dropped == [[5] * 30]
    assert [] not in search.steps and all(batch.sentences > 0 for batch in stats)


def test_drain_answers_the_sentences_still_running_at_the_deadline():
    search = FakeSearch(step_seconds=0.01)
    batcher = _continuous(search, max_wait=0.0, max_tokens=2000)
    running = batcher.submit([[5] * 500], DECODE, LATER)
    short = batcher.submit([[1]], DECODE, LATER)
    assert short.result(5)
    batcher.drain(grace=0.1)
    with pytest.raises(ShuttingDown):
        running.result(5)
    assert batcher.join(5)


# ---- the real model: batch invariance ----


@pytest.fixture(scope="module")
def sentences():
    src = get_corpus(DataConfig(), "test").src
    # Mixed lengths, so that batches pad: single sentences and two or three joined.
    return [src[i] if i % 3 else " ".join(src[i : i + 2 + i % 2]) for i in range(40)]


@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "batches"])
@pytest.mark.parametrize("beam_size", [1, 5])
def test_concurrent_requests_get_their_offline_translation(model_path, sentences, one_thread, beam_size, continuous):
    decode = DecodeConfig(beam_size=beam_size, n_best=min(beam_size, 2))
    translator = Translator.from_checkpoint(model_path, decode, device="cpu")
    offline = translator.translate(sentences)
    sizes: list[int] = []
    batcher = _batcher(
        translator.engine.translate_ids,
        max_tokens=decode.max_tokens,
        max_wait=0.02,
        max_queue_tokens=10**6,
        on_batch=lambda stats: sizes.append(stats.sentences),
        continuous=translator.engine.continuous if continuous else None,
    )
    ids = translator.tokenizer.encode_src(sentences)
    # Requests of one, two and three sentences in turn, from eight client threads at once: batches mix requests.
    requests, start = [], 0
    while start < len(ids):
        size = 1 + len(requests) % 3
        requests.append(list(range(start, min(start + size, len(ids)))))
        start += size

    def client(request: list[int]):
        return batcher.submit([ids[i] for i in request], decode, LATER).result(60)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(client, requests))
    assert max(sizes) > 3, f"batches never mixed requests: {sizes}"
    for request, nbests in zip(requests, answers, strict=True):
        for i, (hyps, scores) in zip(request, nbests, strict=True):
            assert [translator.tokenizer.decode_tgt(h) for h in hyps] == offline[i].texts, sentences[i]
            assert scores == pytest.approx(offline[i].scores, abs=1e-4)


def test_requests_given_up_mid_search_leave_the_others_their_offline_translation(
    model_path, sentences, one_thread, monkeypatch
):
    """Every fourth request is given up after the search's first step: its sentence leaves the real search
    (`ContinuousSearch.drop`) and the others, which go on beside it and beside those that join, get their offline
    translation."""
    decode = DecodeConfig(beam_size=3)
    translator = Translator.from_checkpoint(model_path, decode, device="cpu")
    offline = translator.translate(sentences)
    dropped: list = []
    drop = ContinuousSearch.drop

    def spy(search, tags):
        dropped.extend(tag for tag in tags if search.running is not None and tag in search.running.tags)
        drop(search, tags)

    monkeypatch.setattr(ContinuousSearch, "drop", spy)
    futures: list = []

    def give_up_after_the_first_step(stats):
        if len(futures) == len(sentences) and not futures[1].done():
            for future in futures[1::4]:
                batcher.cancel(future)

    batcher = _batcher(
        translator.engine.translate_ids,
        max_tokens=300,  # a first batch of about half the sentences; the rest join as they leave
        max_wait=0.0,
        max_queue_tokens=10**6,
        on_batch=give_up_after_the_first_step,
        continuous=translator.engine.continuous,
    )
    release = _hold(batcher)
    futures.extend(batcher.submit([src], decode, LATER) for src in translator.tokenizer.encode_src(sentences))
    release.set()
    for i, future in enumerate(futures):
        if i % 4 == 1:
            with pytest.raises(CancelledError):
                future.result(60)
        else:
            [(hyps, scores)] = future.result(60)
            assert [translator.tokenizer.decode_tgt(h) for h in hyps] == offline[i].texts, sentences[i]
    assert dropped, "no request was given up while its sentence ran in the search"
