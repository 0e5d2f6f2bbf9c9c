"""Prometheus metrics of one server: requests, latency, batches, queue depth, refusals and memory.

Each server has its own registry (so tests can build several), exposed at `/metrics` in the text format.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from nmt.serve.jobs import BatchStats

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768)


class Metrics:
    """The server's counters, histograms and gauges.

    Args:
        queue: reads (queued sentences, queued tokens) when scraped.
        ready: reads whether the model is loaded and warmed up.
    """

    def __init__(self, queue: Callable[[], tuple[int, int]], ready: Callable[[], bool]) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        ProcessCollector(registry=reg)  # process_resident_memory_bytes, CPU seconds, open files
        self.requests = Counter("nmt_requests", "HTTP requests answered", ["route", "status"], registry=reg)
        self.latency = Histogram(
            "nmt_request_seconds", "Time from request to answer", ["route"], buckets=LATENCY_BUCKETS, registry=reg
        )
        self.request_sentences = Histogram(
            "nmt_request_sentences", "Sentences (lines) per translation request", buckets=COUNT_BUCKETS, registry=reg
        )
        self.accepted = Counter("nmt_accepted_sentences", "Sentences taken into the queue", registry=reg)
        self.translated = Counter("nmt_translated_sentences", "Sentences the worker translated", registry=reg)
        self.batch_sentences = Histogram(
            "nmt_batch_sentences",
            "Sentences per batch (or per step of the continuous search)",
            buckets=COUNT_BUCKETS,
            registry=reg,
        )
        self.batch_tokens = Histogram(
            "nmt_batch_tokens", "Padded source tokens per batch (or step)", buckets=TOKEN_BUCKETS, registry=reg
        )
        self.batch_seconds = Histogram(
            "nmt_batch_seconds", "Time to translate one batch (or run one step)", buckets=LATENCY_BUCKETS, registry=reg
        )
        self.refused = Counter(
            "nmt_refused",
            "Requests refused: queue_full, shutdown, timeout, limit, auth, invalid, disconnected",
            ["reason"],
            registry=reg,
        )
        Gauge("nmt_queue_sentences", "Sentences waiting for the worker", registry=reg).set_function(lambda: queue()[0])
        Gauge("nmt_queue_tokens", "Source tokens waiting for the worker", registry=reg).set_function(lambda: queue()[1])
        Gauge("nmt_ready", "1 once the model is loaded and warmed up, 0 while draining", registry=reg).set_function(
            lambda: float(ready())
        )
        if torch.cuda.is_available():
            Gauge("nmt_cuda_memory_allocated_bytes", "CUDA memory held by tensors", registry=reg).set_function(
                torch.cuda.memory_allocated
            )

    def observe_batch(self, stats: BatchStats) -> None:
        self.translated.inc(stats.finished)
        self.batch_sentences.observe(stats.sentences)
        self.batch_tokens.observe(stats.tokens)
        self.batch_seconds.observe(stats.seconds)

    def observe_request(self, route: str, status: int, seconds: float, refused: str | None = None) -> None:
        """One answered request; `refused` names why it was refused, if it was."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if refused is not None:
            self.refused.labels(refused).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


CONTENT_TYPE = CONTENT_TYPE_LATEST  # of `/metrics`
