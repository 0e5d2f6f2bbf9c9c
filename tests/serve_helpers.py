"""Helpers that the server's test modules share: an app over a model, called in process through httpx's ASGI
transport, and the check of a refused request's answer."""

from __future__ import annotations

import asyncio
import threading

import httpx

from nmt.config import DecodeConfig, ServeConfig, check
from nmt.serve.server import build_app, load_state

DECODE = DecodeConfig(beam_size=4)


class Server:
    """An app over the tiny model with its worker started, called through httpx's ASGI transport."""

    def __init__(self, model_path, **settings) -> None:
        self.cfg = check(ServeConfig(ckpt=str(model_path), device="cpu", decode=DECODE, **settings))
        self.state = load_state(self.cfg)
        self.app = build_app(self.state)
        self.state.service.start()
        assert self.state.service.batcher.ready.wait(30)

    def many(self, calls: list[tuple[str, str, dict]]) -> list[httpx.Response]:
        """The requests, sent at once."""

        async def run():
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                return await asyncio.gather(*(client.request(method, url, **kw) for method, url, kw in calls))

        return asyncio.run(run())

    def get(self, url: str, **kw) -> httpx.Response:
        return self.many([("GET", url, kw)])[0]

    def post(self, url: str, **kw) -> httpx.Response:
        return self.many([("POST", url, kw)])[0]

    def hold(self) -> threading.Event:
        """Keep the worker busy until the returned event is set."""
        release, busy = threading.Event(), threading.Event()
        self.state.service.batcher.call(lambda: (busy.set(), release.wait(30)))
        assert busy.wait(10)
        return release

    def close(self) -> None:
        self.state.service.batcher.drain(grace=0)
        self.state.service.batcher.join(10)


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    """The error message of a refused request, checked: its status, LibreTranslate's shape, and no traceback."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and "Traceback" not in body["error"]
    for fragment in fragments:
        assert fragment in body["error"]
    return body["error"]
