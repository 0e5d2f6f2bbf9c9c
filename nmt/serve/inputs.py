"""Reading a request: its body within the byte limit, as strict UTF-8 JSON, or as LibreTranslate reads parameters
(a JSON object, else the query string and the form body); the limits on text a request may carry; its texts as
HTML.

Every problem becomes a `RequestError` with a message that names the field, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from nmt.documents.formats import Skeleton
from nmt.documents.formats.html_tree import html_skeleton
from nmt.documents.segment import DocumentError
from nmt.serve.errors import RequestError

JSON_TYPES = ("application/json",)
T = TypeVar("T")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused with 413 once it passes `max_bytes` (by its Content-Length, or as it streams in)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), max_bytes)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(size, max_bytes)
            chunks.append(chunk)
    except ClientDisconnect:  # nobody to answer; logged as 499, as nginx does, not as a server error
        raise RequestError(499, "the client closed the connection before its request was read.") from None
    return b"".join(chunks)


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result, or a 499 once the client has gone (its queued and running sentences are then given up:
    the work is cancelled). Call it after the body has been read."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if not task.cancelled():
        return task.result()
    raise RequestError(499, "the client closed the connection before its translation was ready.")  # logged only


async def _disconnect(request: Request) -> None:
    """Returns once the client has disconnected."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _too_large(size: int, max_bytes: int) -> RequestError:
    return RequestError(
        413,
        f"Invalid request: the body has {size} bytes or more, past this server's limit of "
        f"{max_bytes}; send the text in smaller requests.",
    )


def decode_utf8(data: bytes, what: str) -> str:
    """`data` as UTF-8, or a 400 naming the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(
            400, f"Invalid request: {what} is not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})."
        ) from None


def parse_json(body: bytes) -> Any:
    """The JSON value of a body, or a 400 saying where it breaks."""
    text = decode_utf8(body, "the body")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RequestError(
            400, f"Invalid request: the body is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})."
        ) from None
    except RecursionError:
        raise RequestError(400, "Invalid request: the body's JSON is nested too deeply.") from None
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise RequestError(400, f"Invalid request: the body is not usable JSON: {err}.") from None


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (LibreTranslate's "Invalid JSON format" for anything else)."""
    value = parse_json(body)
    if not isinstance(value, dict):
        raise RequestError(400, f"Invalid JSON format: the body must be a JSON object, not {_json_type(value)}.")
    return value


def parse_query(query: bytes | str, what: str) -> dict[str, str]:
    """URL-encoded `a=1&b=2` parameters (the first value of a repeated name wins, as in LibreTranslate)."""
    text = decode_utf8(query, what) if isinstance(query, bytes) else query
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as err:
        message = f"Invalid request: {what} is not valid UTF-8 once percent-decoded ({err.reason})."
        raise RequestError(400, message) from None
    values: dict[str, str] = {}
    for key, value in pairs:
        values.setdefault(key, value)
    return values


async def libretranslate_values(request: Request, max_bytes: int) -> dict[str, Any]:
    """Parameters as LibreTranslate reads them: a JSON object for a JSON body; else the query string, then the
    form body (URL-encoded or multipart), the query string winning where both give a name."""
    body = await read_body(request, max_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in JSON_TYPES or content_type.endswith("+json"):
        return json_object(body)
    values: dict[str, Any] = {}
    if content_type == "application/x-www-form-urlencoded":
        values = parse_query(body, "the form body")
    elif content_type == "multipart/form-data":
        values = await _multipart(request, body)
    values.update(parse_query(request.scope.get("query_string", b""), "the query string"))
    return values


async def _multipart(request: Request, body: bytes) -> dict[str, Any]:
    """The text fields of a multipart form body (files are not read)."""

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except Exception as err:  # noqa: BLE001 - python-multipart's errors: a malformed body
        raise RequestError(400, f"Invalid request: the multipart form body cannot be read ({err}).") from None
    return {key: value for key, value in form.multi_items() if isinstance(value, str)}


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def text_list(value: Any, name: str) -> tuple[list[str], bool]:
    """A string or a list of strings as a list, and whether it was a list; anything else is a 400."""
    if isinstance(value, str):
        return [value], False
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value), True
    raise RequestError(
        400, f"Invalid request: `{name}` must be a string or a list of strings, but is {_json_type(value)}."
    )


def check_text_limits(texts: list[str], name: str, max_chars: int, max_lines: int) -> None:
    """Refuse texts with more characters or lines (over all texts) than the server takes."""
    chars = sum(len(t) for t in texts)
    if chars > max_chars:
        raise RequestError(
            400,
            f"Invalid request: `{name}` has {chars} characters, more than this server's limit of {max_chars}.",
            reason="limit",
        )
    lines = sum(t.count("\n") + 1 for t in texts)
    if lines > max_lines:
        raise RequestError(
            400,
            f"Invalid request: `{name}` has {lines} lines, more than this server's limit of {max_lines}.",
            reason="limit",
        )
    for index, text in enumerate(texts):
        if "\x00" in text:
            raise RequestError(400, f"Invalid request: text {index} of `{name}` contains a NUL character.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # JSON's "\ud800": a lone surrogate, no character
            raise RequestError(400, f"Invalid request: text {index} of `{name}` has an unpaired surrogate.") from None


def text_format(value: Any) -> str:
    """`text` (the default) or `html`; anything else is a 400 with LibreTranslate's "xx format is not supported"."""
    if value is None or value == "":
        return "text"
    if not isinstance(value, str):
        raise RequestError(400, f"Invalid request: `format` must be text or html, but is {_json_type(value)}.")
    if value not in ("text", "html"):
        raise RequestError(400, f"{value} format is not supported")
    return value


def html_texts(texts: list[str], name: str) -> list[Skeleton]:
    """Each text read as HTML (a fragment or a whole page, `nmt.documents.formats.html_tree`); malformed HTML (an end
    tag missing, stray or closing the wrong element) is a 400 naming the text and the line."""
    documents = []
    for index, text in enumerate(texts):
        where = f"the HTML of `{name}`" if len(texts) == 1 else f"the HTML of text {index} of `{name}`"
        try:
            documents.append(html_skeleton(text, where))
        except DocumentError as err:
            raise RequestError(400, f"Invalid request: {err}") from None
    return documents


def integer(value: Any, name: str, low: int, high: int, default: int) -> int:
    """An integer option in [low, high] (a JSON number or a decimal string, as form values are)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int | str) or (isinstance(value, str) and not _is_int(value)):
        raise RequestError(400, f"Invalid request: `{name}` parameter is not a number: {value!r:.40}.")
    number = int(value)
    if not low <= number <= high:
        raise RequestError(400, f"Invalid request: `{name}` must be in [{low}, {high}], but is {number}.")
    return number


def number(value: Any, name: str, low: float, high: float, default: float) -> float:
    """A float option in [low, high]."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(400, f"Invalid request: `{name}` must be a number, but is {_json_type(value)}.")
    if not low <= value <= high:  # NaN fails this too
        raise RequestError(400, f"Invalid request: `{name}` must be in [{low:g}, {high:g}], but is {value!r:.40}.")
    return float(value)


def boolean(value: Any, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(400, f"Invalid request: `{name}` must be true or false, but is {_json_type(value)}.")
    return value


def _is_int(text: str) -> bool:
    """A decimal integer of at most 18 digits, as `int` reads it: an optional sign, ASCII digits."""
    return re.fullmatch(r"\s*[+-]?[0-9]{1,18}\s*", text) is not None
