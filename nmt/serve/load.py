"""Load for a translation server over HTTP/1.1 (LibreTranslate's `POST /translate`, one sentence per request):
a lean asyncio client, closed-loop clients, an open-loop generator and a soak, and the tally of their answers
against the translations expected. Used by `scripts/benchmark_serve.py`; it needs nothing beyond the standard
library, so that the load generator leaves the CPU to the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

TIMEOUT = 30.0  # seconds a client waits for one answer


def percentile(values: list[float], q: float) -> float:
    """The value below which a share `q` of `values` lies (nearest rank); NaN for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Tally:
    """Answers of one scenario: statuses, latencies of the 200s, translations unlike the `expected` one of their
    sentence (e.g. offline `nmt-translate`'s), connection errors, and 503s without Retry-After."""

    def __init__(self, expected: dict[str, str]) -> None:
        self.expected, self.latencies, self.statuses = expected, [], {}
        self.mismatches = self.errors = self.no_retry_after = 0

    def add(self, sentence: str, answer: tuple[int, dict, bytes] | None, seconds: float) -> None:
        status = "connection error" if answer is None else answer[0]
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if answer is None:
            self.errors += 1
        elif answer[0] == 200:
            self.latencies.append(seconds)
            self.mismatches += json.loads(answer[2])["translatedText"] != self.expected[sentence]
        elif answer[0] == 503 and "retry-after" not in answer[1]:
            self.no_retry_after += 1

    def summary(self, seconds: float) -> dict:
        ok = len(self.latencies)
        return {
            "seconds": round(seconds, 1),
            "answers": self.statuses,
            "throughput_per_s": round(ok / seconds, 1),
            "p50_ms": round(1000 * percentile(self.latencies, 0.5), 1),
            "p99_ms": round(1000 * percentile(self.latencies, 0.99), 1),
            "mismatches": self.mismatches,
            "connection_errors": self.errors,
            "503_without_retry_after": self.no_retry_after,
        }


class Pool:
    """Keep-alive HTTP/1.1 connections to one server, opened as needed: a lean client, so that the load
    generator leaves the CPU to the server (a general client such as httpx costs a core at a few hundred
    requests per second)."""

    def __init__(self, url: str, target: str, connections: int = 1024) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port, self.target, self.idle = host, int(port), target, []
        self.connections = connections  # at most this many open at once: a request waits for one beyond
        self.slots: asyncio.Semaphore | None = None
        self.failures: dict[str, int] = {}  # connection errors by kind

    async def post(self, sentence: str) -> tuple[int, dict, bytes] | None:
        """LibreTranslate's /translate for one sentence: (status, headers, body), or None on a connection error."""
        body = json.dumps({"q": sentence, "source": "auto", "target": self.target}).encode()
        head = f"POST /translate HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
        request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.slots = self.slots or asyncio.Semaphore(self.connections)
        async with self.slots:
            reused = bool(self.idle)
            answer = await self._post(request)
            if answer is None and reused:  # the server closed an idle connection first: retry on a new one
                answer = await self._post(request, fresh=True)
            return answer

    async def _post(self, request: bytes, fresh: bool = False) -> tuple[int, dict, bytes] | None:
        try:
            if self.idle and not fresh:
                reader, writer = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(request)
            lines = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)).decode().split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            payload = await reader.readexactly(int(headers.get("content-length", 0)))
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as err:
            if fresh or not isinstance(err, asyncio.IncompleteReadError):
                kind = f"{type(err).__name__}: {err}"[:80]
                self.failures[kind] = self.failures.get(kind, 0) + 1
            return None
        if headers.get("connection") == "close":
            writer.close()
        else:
            self.idle.append((reader, writer))
        return int(lines[0].split()[1]), headers, payload

    def close(self) -> None:
        """Close the idle connections (each scenario runs in an event loop of its own)."""
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()
        self.slots, self.failures = None, {}


async def one(pool: Pool, sentence: str, tally: Tally, scheduled: float | None = None) -> bool:
    """One request, its latency counted from when it was due (`scheduled`), so waiting for a connection counts;
    whether it was answered."""
    started = scheduled or time.perf_counter()
    answer = await pool.post(sentence)
    tally.add(sentence, answer, time.perf_counter() - started)
    return answer is not None


async def closed_loop(
    pool: Pool, sentences: list[str], clients: int, seconds: float, tally: Tally, until_refused: bool = False
) -> float:
    """`clients` clients, each sending its next sentence when the last is answered, for `seconds` (with
    `until_refused`, a client also stops at its first connection error)."""
    stop = time.perf_counter() + seconds

    async def client_loop(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            if not await one(pool, sentences[i % len(sentences)], tally) and until_refused:
                return
            i += clients

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(k) for k in range(clients)))
    pool.close()
    return time.perf_counter() - started


async def open_loop(pool: Pool, sentences: list[str], rate: float, seconds: float, tally: Tally) -> float:
    """Requests sent at `rate` per second for `seconds`, whatever the answers; waits for the last answer."""
    count = int(rate * seconds)
    started = time.perf_counter()
    tasks = []
    for i in range(count):
        due = started + i / rate
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        tasks.append(asyncio.create_task(one(pool, sentences[i % len(sentences)], tally, due)))
    sent = time.perf_counter() - started
    await asyncio.gather(*tasks)
    print(f"  open loop: {count} requests sent in {sent:.1f} s ({count / sent:.0f}/s; asked {rate:.0f}/s)")
    if pool.failures:
        print(f"  connection errors: {pool.failures}")
    pool.close()
    return time.perf_counter() - started  # until the last answer: what was delivered in that time


async def soak(
    pool: Pool,
    resident_mb: Callable[[], float],
    sentences: list[str],
    rate: float,
    seconds: float,
    tally: Tally,
    every: float = 60.0,
) -> dict:
    """Requests at `rate` for `seconds` (open loop), the server's resident memory (`resident_mb`, read in a thread)
    every `every` seconds and at the end; its growth from the first reading past the first tenth to the last."""
    samples: list[tuple[float, float]] = []
    started = time.perf_counter()

    async def watch() -> None:
        while time.perf_counter() - started < seconds:
            at = round(time.perf_counter() - started, 1)
            samples.append((at, round(await asyncio.to_thread(resident_mb), 1)))
            await asyncio.sleep(every)

    watcher = asyncio.create_task(watch())
    elapsed = await open_loop(pool, sentences, rate, seconds, tally)
    watcher.cancel()
    samples.append((round(elapsed, 1), round(resident_mb(), 1)))
    warm = next(mb for t, mb in samples if t >= seconds / 10)
    return {
        "seconds": elapsed,
        "rss_mb": samples,
        "growth_after_warm_up_pct": round(100 * (samples[-1][1] / warm - 1), 2),
    }
