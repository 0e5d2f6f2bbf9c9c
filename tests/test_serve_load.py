"""The load generator of the serve benchmark (`nmt.serve.load`) against a small HTTP server in the test: what it
sends, how it counts answers, and that the open loop keeps its rate whatever the answers."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from nmt.serve.load import Pool, Tally, closed_loop, open_loop, percentile, soak

SENTENCES = ["a b", "c d e", "busy", "slow", "wrong"]
EXPECTED = {s: " ".join(reversed(s.split())) for s in SENTENCES}


class FakeServer:
    """LibreTranslate's /translate over keep-alive HTTP/1.1: answers each sentence reversed; "busy" gets a 503
    (with Retry-After unless `bare_503`), "slow" waits 50 ms, "wrong" is mistranslated; records every request."""

    def __init__(self, bare_503: bool = False) -> None:
        self.bare_503, self.requests, self.connections = bare_503, [], 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                length = int(
                    next(h.split(": ")[1] for h in head.split("\r\n") if h.lower().startswith("content-length"))
                )
                body = json.loads(await reader.readexactly(length))
                self.requests.append((head.split("\r\n")[0], body))
                q = body["q"]
                if q == "slow":
                    await asyncio.sleep(0.05)
                if q == "busy":
                    status, extra, payload = (
                        "503 Service Unavailable",
                        "" if self.bare_503 else "Retry-After: 1\r\n",
                        {},
                    )
                else:
                    status, extra = "200 OK", ""
                    payload = {"translatedText": "no" if q == "wrong" else EXPECTED[q]}
                data = json.dumps(payload).encode()
                writer.write(f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def _run(coroutine_of, bare_503: bool = False):
    """Run `coroutine_of(pool, server)` against a fresh fake server; its result and the server."""
    fake = FakeServer(bare_503)

    async def main():
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await coroutine_of(Pool(f"http://127.0.0.1:{port}", "de"), fake)

    return asyncio.run(main()), fake


def test_percentile_takes_the_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 100.0
    assert percentile([3.0, 1.0, 2.0], 0.0) == 1.0
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN


def test_a_request_is_libretranslates_and_the_tally_checks_each_answer():
    tally = Tally(EXPECTED)

    async def each(pool, fake):
        for sentence in SENTENCES:
            answer = await pool.post(sentence)
            tally.add(sentence, answer, 0.01)

    _, fake = _run(each)
    assert [line for line, _ in fake.requests] == ["POST /translate HTTP/1.1"] * len(SENTENCES)
    assert [body for _, body in fake.requests] == [{"q": s, "source": "auto", "target": "de"} for s in SENTENCES]
    assert fake.connections == 1  # one keep-alive connection for requests one after another
    summary = tally.summary(1.0)
    assert summary["answers"] == {200: 4, 503: 1}
    assert summary["mismatches"] == 1 and summary["503_without_retry_after"] == 0
    assert summary["throughput_per_s"] == 4.0 and summary["connection_errors"] == 0


def test_a_503_without_retry_after_is_counted():
    tally = Tally(EXPECTED)

    async def busy(pool, fake):
        tally.add("busy", await pool.post("busy"), 0.0)

    _run(busy, bare_503=True)
    assert tally.summary(1.0)["503_without_retry_after"] == 1


@pytest.mark.parametrize("clients", [1, 4])
def test_closed_loop_clients_each_wait_for_their_answer(clients):
    """Each client has one request in flight: with the slow sentence only, `clients` x 50 ms answers take
    about as long as one client's 50 ms each."""
    tally = Tally(EXPECTED)
    seconds, fake = _run(lambda pool, fake: closed_loop(pool, ["slow"], clients, 0.5, tally))
    answered = tally.statuses[200]
    assert answered == len(fake.requests)
    assert 0.5 <= seconds < 1.0
    assert 8 * clients <= answered <= 11 * clients  # 0.5 s / 50 ms per client, give or take one each
    assert fake.connections == clients


def test_the_open_loop_keeps_its_rate_whatever_the_answers():
    """40 requests/s for 0.5 s of slow answers: all 20 sent on time (latency counted from when each was due),
    on several connections at once, since none waits for the one before."""
    tally = Tally(EXPECTED)
    started = time.perf_counter()
    seconds, fake = _run(lambda pool, fake: open_loop(pool, ["slow"], 40.0, 0.5, tally))
    assert len(fake.requests) == 20 and tally.statuses == {200: 20}
    assert seconds < 0.5 + 0.25 and time.perf_counter() - started < 2.0
    assert all(0.05 <= latency < 0.3 for latency in tally.latencies)


def test_a_refused_connection_is_a_connection_error_not_an_exception():
    async def refused():
        pool = Pool("http://127.0.0.1:9", "de")  # discard port: nothing listens
        return await pool.post("a b"), pool.failures

    answer, failures = asyncio.run(refused())
    assert answer is None and sum(failures.values()) == 1


def test_the_soak_reads_memory_and_measures_its_growth_after_the_first_tenth():
    readings = iter(range(100, 200, 10))
    tally = Tally(EXPECTED)

    async def short_soak(pool, fake):
        return await soak(pool, lambda: float(next(readings)), ["a b"], 20.0, 1.0, tally, every=0.25)

    found, _ = _run(short_soak)
    times, resident = zip(*found["rss_mb"], strict=True)
    assert len(times) >= 4 and times[0] == 0.0 and times[-1] >= 0.95  # every 0.25 s, and when the last answer came
    assert list(resident) == [100.0 + 10 * k for k in range(len(resident))]  # each reading once, in order
    warm = next(mb for t, mb in found["rss_mb"] if t >= 0.1)  # the first reading past the first tenth
    assert warm == 110.0
    assert found["growth_after_warm_up_pct"] == pytest.approx(100 * (resident[-1] / warm - 1), abs=0.01)
    assert tally.statuses == {200: 20}
