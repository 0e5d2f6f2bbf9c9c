"""Load benchmark of `nmt-serve` on 127.0.0.1: throughput against offline `nmt-translate` and against the same
server with batching off, latency at half load, a 10x open-loop overload; with --soak, a long run at half load
and, with --sigterm, a SIGTERM under load.

    python scripts/benchmark_serve.py --ckpt /tmp/serve-model/model.pt --duration 20 --output docs/benchmark_serve.json
    python scripts/benchmark_serve.py --ckpt runs/multi30k_en_de/model.pt --variant continuous=false --output ab.json
    python scripts/benchmark_serve.py --ckpt runs/multi30k_en_de/model.pt --latency 42 --variant continuous=false
    python scripts/benchmark_serve.py --ckpt runs/multi30k_en_de/model.pt --soak 1800 --output soak.json
    python scripts/benchmark_serve.py --ckpt runs/multi30k_en_de/model.pt --sigterm --output sigterm.json

Every request carries one sentence of the test split (the built-in corpus, or `--sentences FILE`). Scenarios:
offline (nmt-translate of all the sentences, its own timing line); closed loop (`--clients` clients, each sending
its next request when the last is answered) with batching on and off; idle (one client); half load (requests at
half the peak rate, whatever the answers: open loop); overload (10x the peak rate, open loop): every request must
be answered 200 or 503 with Retry-After, without connection errors, and the server must be ready afterwards.
With --soak SECONDS, instead: the peak, then half load for that long (resident memory read every minute, growth
counted from the end of the first tenth). With --sigterm, instead: SIGTERM sent to a server under closed-loop
load after 5 s (each client stops at its first refused connection), the translation requests of its log
compared with what the clients received: every request it accepted must be answered. With --variant SETTING
(repeatable), the idle, peak and half-load scenarios run again on a server with that setting, in the same run.
With --latency RATE, instead: --rounds rounds of idle latency and open-loop latency at that rate, the default
server and each variant in turn within every round.
Answers are checked against the offline translation. Each scenario runs at most `--duration` seconds (<= 60);
the server and `nmt-translate` get `--threads` threads; the load generator is one asyncio process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from nmt.serve.load import Pool, Tally, closed_loop, open_loop, soak

BIN = Path(sys.executable).parent


def offline(ckpt: str, sentences: list[str], threads: int, beam: int) -> tuple[float, list[str]]:
    """nmt-translate's own sentences/s (model loading excluded) and its translations."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.txt", Path(tmp) / "out.txt"
        src.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        args = [f"ckpt={ckpt}", f"input={src}", f"output={out}", f"num_threads={threads}", "device=cpu"]
        args += [f"decode.beam_size={beam}", "progress=false"]
        proc = subprocess.run([str(BIN / "nmt-translate"), *args], capture_output=True, text=True, check=True)
        rate = float(re.search(r"([\d.]+) sentences/s", proc.stderr).group(1))
        return rate, out.read_text(encoding="utf-8").splitlines()


def start_server(
    ckpt: str, threads: int, beam: int, *settings: str, log: Path | None = None
) -> tuple[subprocess.Popen, str]:
    """A server on a free port, ready; with `log`, its request lines (JSON) go to that file."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [f"ckpt={ckpt}", f"port={port}", f"num_threads={threads}", "device=cpu", f"decode.beam_size={beam}"]
    args += [f"log_requests={log is not None}", *settings]
    stderr = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen([str(BIN / "nmt-serve"), *args], stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("nmt-serve did not become ready within 60 s")


def rss_mb(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return float(re.search(r"^process_resident_memory_bytes (\S+)", text, re.M).group(1)) / 2**20


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(60)


def sigterm(args: argparse.Namespace, sentences: list[str], target: str, expected: dict[str, str]) -> dict:
    """SIGTERM to a server under closed-loop load after 5 s; its request log against what the clients got."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "requests.log"
        proc, url = start_server(args.ckpt, args.threads, args.beam, f"max_queue_tokens={args.queue_tokens}", log=log)
        pool, tally = Pool(url, target), Tally(expected)

        async def load() -> float:
            asyncio.get_running_loop().call_later(5, proc.send_signal, signal.SIGTERM)
            return await closed_loop(pool, sentences, args.clients, 5 + args.duration, tally, until_refused=True)

        seconds = asyncio.run(load())
        exit_status = proc.wait(120)
        logged = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        logged = [line for line in logged if line["path"] == "/translate"]  # not the readiness probes
    served: dict = {}
    for line in logged:
        served[line["status"]] = served.get(line["status"], 0) + 1
    received = {status: n for status, n in tally.statuses.items() if isinstance(status, int)}
    return {
        **tally.summary(seconds),
        "server_answered": served,
        "clients_received": received,
        "accepted_but_unanswered": sum(served.values()) - sum(received.values()),
        "exit_status": exit_status,
    }


def run_soak(args: argparse.Namespace, sentences: list[str]) -> dict:
    """The peak, then a soak at half of it."""
    _, translations = offline(args.ckpt, sentences, args.threads, args.beam)
    expected = dict(zip(sentences, translations, strict=True))
    proc, url = start_server(args.ckpt, args.threads, args.beam, f"max_queue_tokens={args.queue_tokens}")
    target = httpx.get(f"{url}/languages", timeout=10).json()[0]["targets"][0]
    api = Pool(url, target)
    tally = Tally(expected)
    peak = tally.summary(asyncio.run(closed_loop(api, sentences, args.clients, args.duration, tally)))
    print(f"peak: {json.dumps(peak)}")
    tally = Tally(expected)
    found = asyncio.run(soak(api, lambda: rss_mb(url), sentences, peak["throughput_per_s"] / 2, args.soak, tally))
    results = {"peak": peak, "soak": {**tally.summary(found.pop("seconds")), **found}}
    print(f"soak: {json.dumps(results['soak'])}")
    stop(proc)
    return results


def run_latency(args: argparse.Namespace, sentences: list[str]) -> dict:
    """Rounds of idle latency then open-loop latency at `--latency` requests/s, alternating the default server and
    each `--variant` within every round, so that both see the same machine."""
    _, translations = offline(args.ckpt, sentences, args.threads, args.beam)
    expected, rounds = dict(zip(sentences, translations, strict=True)), []
    for round_ in range(args.rounds):
        for variant in ["default", *args.variant]:
            settings = [f"max_queue_tokens={args.queue_tokens}"] + ([] if variant == "default" else [variant])
            proc, url = start_server(args.ckpt, args.threads, args.beam, *settings)
            api = Pool(url, httpx.get(f"{url}/languages", timeout=10).json()[0]["targets"][0])
            idle, loaded = Tally(expected), Tally(expected)
            idle_summary = idle.summary(asyncio.run(closed_loop(api, sentences, 1, min(args.duration, 10), idle)))
            summary = loaded.summary(asyncio.run(open_loop(api, sentences, args.latency, args.duration, loaded)))
            stop(proc)
            found = {"round": round_ + 1, "server": variant, "idle_p50_ms": idle_summary["p50_ms"], **summary}
            found |= {
                f"{q}_over_idle_p50": round(summary[f"{q}_ms"] / idle_summary["p50_ms"], 2) for q in ("p50", "p99")
            }
            rounds.append(found)
            print(f"latency: {json.dumps(found)}")
    return {"latency_rounds": rounds}


def run_sigterm(args: argparse.Namespace, sentences: list[str]) -> dict:
    """SIGTERM under load, its answers checked against offline translation."""
    from nmt.checkpoint import trained_on

    _, translations = offline(args.ckpt, sentences, args.threads, args.beam)
    target = trained_on(args.ckpt).tgt_lang
    results = {"sigterm": sigterm(args, sentences, target, dict(zip(sentences, translations, strict=True)))}
    print(f"sigterm: {json.dumps(results['sigterm'])}")
    return results


def run(args: argparse.Namespace, sentences: list[str]) -> dict:
    offline_rate, translations = offline(args.ckpt, sentences, args.threads, args.beam)
    expected = dict(zip(sentences, translations, strict=True))
    print(f"offline nmt-translate: {offline_rate:.1f} sentences/s")
    results: dict = {"offline_sentences_per_s": offline_rate}

    def scenario(name: str, coroutine_of) -> dict:
        tally = Tally(expected)
        seconds = asyncio.run(coroutine_of(tally))
        results[name] = tally.summary(seconds)
        print(f"{name}: {json.dumps(results[name])}")
        return results[name]

    queue = f"max_queue_tokens={args.queue_tokens}"
    proc, url = start_server(args.ckpt, args.threads, args.beam, queue, "merge_requests=false")
    target = httpx.get(f"{url}/languages", timeout=10).json()[0]["targets"][0]
    api = Pool(url, target)
    scenario("batching_off", lambda t: closed_loop(api, sentences, args.clients, args.duration, t))
    stop(proc)

    proc, url = start_server(args.ckpt, args.threads, args.beam, queue)
    api = Pool(url, target)
    scenario("idle", lambda t: closed_loop(api, sentences, 1, min(args.duration, 10), t))
    peak = scenario("peak", lambda t: closed_loop(api, sentences, args.clients, args.duration, t))
    rate = peak["throughput_per_s"]
    rss_before = rss_mb(url)
    scenario("half_load", lambda t: open_loop(api, sentences, rate / 2, args.duration, t))
    scenario("overload_10x", lambda t: open_loop(api, sentences, rate * 10, args.duration, t))
    results["ready_after_overload"] = httpx.get(f"{url}/health/ready", timeout=10).status_code == 200
    results["rss_mb"] = {"after_peak": round(rss_before, 1), "after_overload": round(rss_mb(url), 1)}
    stop(proc)
    for variant in args.variant:  # the same idle, peak and half-load scenarios with one setting changed
        proc, url = start_server(args.ckpt, args.threads, args.beam, queue, variant)
        api = Pool(url, target)
        scenario(f"{variant}: idle", lambda t, api=api: closed_loop(api, sentences, 1, min(args.duration, 10), t))
        peak = scenario(
            f"{variant}: peak", lambda t, api=api: closed_loop(api, sentences, args.clients, args.duration, t)
        )
        half = peak["throughput_per_s"] / 2
        scenario(
            f"{variant}: half_load", lambda t, api=api, half=half: open_loop(api, sentences, half, args.duration, t)
        )
        stop(proc)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="the checkpoint to serve (model.pt)")
    parser.add_argument("--sentences", help="one sentence per line; default: the built-in corpus's test split")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients of the closed-loop scenarios")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per scenario (at most 60)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server and of nmt-translate")
    parser.add_argument("--beam", type=int, default=5, help="decode.beam_size of both")
    parser.add_argument("--queue-tokens", type=int, default=8000, help="the server's max_queue_tokens")
    parser.add_argument("--soak", type=float, help="instead: a soak of this many seconds at half load")
    parser.add_argument("--sigterm", action="store_true", help="instead: SIGTERM to a server under load")
    parser.add_argument("--output", help="write the figures as JSON here")
    parser.add_argument("--latency", type=float, help="instead: rounds of idle and open-loop latency at this rate")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --latency")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="also run the idle, peak and half-load scenarios with this server setting (e.g. continuous=false), "
        "after the default server's, in the same run; repeatable",
    )
    args = parser.parse_args()
    args.duration = min(args.duration, 60.0)
    if args.sentences:
        sentences = Path(args.sentences).read_text(encoding="utf-8").splitlines()
    else:
        from nmt.config import DataConfig
        from nmt.data.sources import get_corpus

        sentences = get_corpus(DataConfig(), "test").src
    sentences = list(dict.fromkeys(s.strip() for s in sentences if s.strip()))  # unique: one expected answer each
    if args.soak:
        results = run_soak(args, sentences)
    elif args.sigterm:
        results = run_sigterm(args, sentences)
    elif args.latency:
        results = run_latency(args, sentences)
    else:
        results = run(args, sentences)
    results["setup"] = {k: v for k, v in vars(args).items() if k != "output"} | {"sentences": len(sentences)}
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.soak or args.sigterm or args.latency:
        return
    speedup = results["peak"]["throughput_per_s"]
    print(
        f"\npeak / offline: {speedup / results['offline_sentences_per_s']:.2f}x; "
        f"peak / batching off: {speedup / max(results['batching_off']['throughput_per_s'], 1e-9):.2f}x"
    )
    for prefix in ["", *(f"{variant}: " for variant in args.variant)]:
        idle, half = results[f"{prefix}idle"]["p50_ms"], results[f"{prefix}half_load"]
        ratios = f"p50 {half['p50_ms'] / idle:.2f}x, p99 {half['p99_ms'] / idle:.2f}x"
        print(f"{prefix or 'default: '}half load / idle p50: {ratios}")


if __name__ == "__main__":
    main()
