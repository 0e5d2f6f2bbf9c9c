"""The ASGI application: routes, error answers, CORS, and one log line and metric sample per request.

Every error is answered as `{"error": message}` (LibreTranslate's shape) with its status: 4xx for what the
client can fix, 503 with `Retry-After` when busy, 504 when late, 500 (without a traceback) for a bug.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nmt.serve import libretranslate, native
from nmt.serve.errors import RequestError
from nmt.serve.metrics import CONTENT_TYPE
from nmt.serve.state import ServerState

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("nmt.serve")


def create_app(state: ServerState) -> Starlette:
    """The app of one server; `state.service` must be started by whoever runs it (see `nmt.serve.server`)."""
    cfg = state.cfg
    middleware = [Middleware(AccessLog, state=state)]
    if cfg.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cfg.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=86400,
            )
        )
    middleware.append(Middleware(Shed, state=state))
    app = Starlette(
        routes=_routes(cfg.page),
        middleware=middleware,
        exception_handlers={RequestError: _request_error, HTTPException: _http_error, Exception: _server_error},
    )
    app.state.server = state
    return app


def _routes(page: bool) -> list[Route | Mount]:
    routes: list[Route | Mount] = [
        Route("/api/translate", native.translate, methods=["POST"]),
        Route("/api/info", native.info, methods=["GET"]),
        Route("/translate", libretranslate.translate, methods=["POST"]),
        Route("/languages", libretranslate.languages, methods=["GET"]),
        Route("/detect", libretranslate.detect, methods=["POST"]),
        Route("/frontend/settings", libretranslate.frontend_settings, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if page:
        routes += [Route("/", index, methods=["GET"]), Mount("/static", StaticFiles(directory=STATIC), name="static")]
    return routes


async def health(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> JSONResponse:
    """Readiness: the model is loaded and warmed up, and the server is not draining (else 503)."""
    service = request.app.state.server.service
    if service.ready:
        return JSONResponse({"status": "ready"})
    status = "draining" if not service.batcher.accepting else "warming up"
    return JSONResponse({"status": status}, status_code=503, headers={"Retry-After": "1"})


async def metrics(request: Request) -> Response:
    return Response(request.app.state.server.metrics.text(), media_type=CONTENT_TYPE)


async def index(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html")


async def _request_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestError)
    request.state.refused, request.state.error = err.reason, err.message
    return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)


async def _http_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, HTTPException)
    request.state.error = err.detail
    return JSONResponse({"error": err.detail}, status_code=err.status_code, headers=err.headers)


async def _server_error(request: Request, err: Exception) -> JSONResponse:
    log.exception("internal error on %s", request.url.path, exc_info=err)
    return JSONResponse({"error": f"Internal error: {type(err).__name__}"}, status_code=500)


TRANSLATE_PATHS = ("/translate", "/api/translate")


class Shed:
    """Pure ASGI middleware: while the queue is full (`Batcher.shedding`), translation requests are answered 503
    with Retry-After before their body is read or parsed, so refusing costs little when it matters most."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.batcher = app, state.service.batcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in TRANSLATE_PATHS or not self.batcher.shedding:
            await self.app(scope, receive, send)
            return
        retry = self.batcher.retry_after()
        err = RequestError(503, f"Server busy: the translation queue is full. Retry after {retry:.0f} s.", retry)
        scope.setdefault("state", {}).update(refused="queue_full", error=err.message)
        response = JSONResponse({"error": err.message}, status_code=503, headers=err.headers)
        await response(scope, receive, send)


class AccessLog:
    """Pure ASGI middleware: after each HTTP request, one JSON log line and the request metrics.

    The line has time, client, method, path, status, milliseconds, the sentences translated and the error
    message, if any (handlers put those on `request.state`).
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state
        self.routes = {route.path for route in _routes(True) if isinstance(route, Route)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        info = scope.get("state", {})
        path = scope["path"]
        route = path if path in self.routes else "/static" if path.startswith("/static/") else "other"
        self.state.metrics.observe_request(route, status, seconds, info.get("refused"))
        if "sentences" in info:
            self.state.metrics.request_sentences.observe(info["sentences"])
        if not self.state.cfg.log_requests:
            return
        client = scope.get("client") or ("-", 0)
        line = {
            "time": round(time.time(), 3),
            "client": client[0],
            "method": scope["method"],
            "path": path,
            "status": status,
            "ms": round(seconds * 1000, 1),
            "sentences": info.get("sentences"),
            "error": info.get("error"),
        }
        log.info(json.dumps({k: v for k, v in line.items() if v is not None}, ensure_ascii=False))
