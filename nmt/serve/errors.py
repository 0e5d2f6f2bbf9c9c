"""The one error a request can end in: an HTTP status, a message for the client, and any headers to send; and
the error of each way the batcher refuses a request."""

from __future__ import annotations

from nmt.serve.jobs import QueueFull, Refused, ShuttingDown


class RequestError(Exception):
    """A request the server answers with `status` and `{"error": message}` (LibreTranslate's error shape).

    Args:
        status: 400 bad input, 403 a refused API key, 413 a body too large, 503 busy or shutting down, 504 late.
        message: what went wrong and what to change, naming the request field.
        retry_after: seconds, sent as `Retry-After` (with 503).
        reason: why it was refused, for the `nmt_refused` metric: queue_full, shutdown, timeout, limit (a request
            past a size limit), auth, invalid (any other 400), disconnected (the client left before its answer).
    """

    def __init__(self, status: int, message: str, retry_after: float | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after
        self.reason = reason or {400: "invalid", 403: "auth", 413: "limit", 499: "disconnected", 504: "timeout"}.get(
            status
        )

    @property
    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after)))}


def refusal_error(err: Refused, timeout: float) -> RequestError:
    """The HTTP answer to the batcher's refusal: 503 with Retry-After when busy or shutting down, 504 when late."""
    if isinstance(err, QueueFull):
        message = f"Server busy: {err} Retry after {err.retry_after:.0f} s."
        return RequestError(503, message, err.retry_after, "queue_full")
    if isinstance(err, ShuttingDown):
        return RequestError(503, f"Server unavailable: {err}", err.retry_after, "shutdown")
    return RequestError(504, f"The translation did not finish within this server's request timeout ({timeout:g} s).")
