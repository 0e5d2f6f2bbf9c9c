"""Running a server: load the model, build the app, serve it with uvicorn, and shut down gracefully.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections and lets the requests in flight finish; the batcher
stops taking work at once (readiness turns 503, so a load balancer moves on) and translates what is queued for
up to `shutdown_grace` seconds, then answers what is left with 503. Every accepted request gets an answer; then
the process exits (with the signal's status, 143 for SIGTERM, as uvicorn does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from nmt.checkpoint import load_checkpoint
from nmt.config import ServeConfig
from nmt.decode.translator import Translator
from nmt.device import resolve_device
from nmt.serve.app import create_app
from nmt.serve.metrics import Metrics
from nmt.serve.service import TranslationService
from nmt.serve.state import ServerState, language, read_keys

MARGIN = 2.0  # seconds uvicorn waits past the grace, so the requests refused at its end are answered


def load_state(cfg: ServeConfig) -> ServerState:
    """The model of `cfg.ckpt` (loaded safely), its service and metrics; the worker is not started yet."""
    ckpt = load_checkpoint(cfg.ckpt)
    translator = Translator.from_loaded(ckpt, cfg.decode, resolve_device(cfg.device), cfg.ckpt)
    metrics: list[Metrics] = []  # the service reports batches to the metrics, which read the service's queue
    service = TranslationService(
        translator,
        cfg,
        on_batch=lambda stats: metrics[0].observe_batch(stats),
        on_accept=lambda sentences: metrics[0].accepted.inc(sentences),
    )
    metrics.append(
        Metrics(lambda: (service.batcher.queued_sentences, service.batcher.queued_tokens), lambda: service.ready)
    )
    languages = (language(ckpt.src_lang), language(ckpt.tgt_lang))
    return ServerState(service, cfg, metrics[0], languages, read_keys(cfg), len(translator.model.decoder))


def build_app(state: ServerState) -> Starlette:
    """The app, whose lifespan starts the worker (warm-up included) and drains it at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.service.start()
        yield
        state.service.batcher.drain(state.cfg.shutdown_grace)
        await asyncio.to_thread(state.service.batcher.join, state.cfg.shutdown_grace + MARGIN)

    app = create_app(state)
    app.router.lifespan_context = lifespan
    return app


class GracefulServer(uvicorn.Server):
    """uvicorn's server, which also starts the batcher's drain as soon as the signal arrives."""

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.state.service.batcher.drain(self.state.cfg.shutdown_grace)


def uvicorn_config(app: Starlette, cfg: ServeConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        log_level="warning",
        access_log=False,  # AccessLog writes one JSON line per request instead
        timeout_graceful_shutdown=cfg.shutdown_grace + MARGIN,
        timeout_keep_alive=int(cfg.keep_alive),
        lifespan="on",
    )


def serve(cfg: ServeConfig) -> None:
    """Load the model and serve it until SIGTERM or Ctrl-C."""
    setup_logging()
    sys.setswitchinterval(cfg.switch_interval_ms / 1000)
    state = load_state(cfg)
    source, target = (lang["code"] for lang in state.languages)
    print(f"nmt-serve: {source}->{target} from {cfg.ckpt} on http://{cfg.host}:{cfg.port}", file=sys.stderr)
    server = GracefulServer(uvicorn_config(build_app(state), cfg), state)
    server.run()


def setup_logging() -> None:
    """Request lines (JSON) and errors of `nmt.serve` on stderr, one per line."""
    logger = logging.getLogger("nmt.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
