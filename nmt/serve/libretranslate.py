"""LibreTranslate's API, so its clients and integrations work unchanged: `POST /translate`, `GET /languages`,
`POST /detect` and `GET /frontend/settings`, with its parameters, response shapes and error messages.

Parameters come from a JSON object, or else from the query string and the form body, as LibreTranslate reads
them. `q` is a string or, in JSON, a list of strings; `source` is the model's source language or `auto`; `target`
its target language; `format` `text` (each line translated sentence by sentence, `nmt.serve.service`) or `html` (an
HTML fragment or page: its blocks' text translated, its tags placed back and its attributes untouched);
`alternatives` asks for that many other translations (from the beam's n-best list; each line is then translated
whole; with `format=html` none, an empty list, as LibreTranslate answers).
"""

from __future__ import annotations

import math
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from nmt.serve.errors import RequestError
from nmt.serve.inputs import (
    check_text_limits,
    html_texts,
    integer,
    libretranslate_values,
    text_format,
    text_list,
    unless_disconnected,
)
from nmt.serve.results import Line
from nmt.serve.state import ServerState

CONFIDENCE = 100.0  # the server has one source language: "detection" answers it


async def translate(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.server
    values = await libretranslate_values(request, state.cfg.max_body_bytes)
    state.check_key(request, values.get("api_key"))
    for name in ("q", "source", "target"):
        if not values.get(name):
            raise RequestError(400, f"Invalid request: missing {name} parameter")
    texts, batch = text_list(values["q"], "q")
    texts = [t.replace("\r\n", "\n").replace("\r", "\n") for t in texts]  # CRLF and CR line ends count as LF
    alternatives = _alternatives_asked(values.get("alternatives"), state.cfg.max_alternatives)
    check_text_limits(texts, "q", state.cfg.max_chars, state.cfg.max_lines)
    source, target = _pair(state, values["source"], values["target"])
    html = text_format(values.get("format")) == "html"
    request.state.sentences = sum(t.count("\n") + 1 for t in texts)
    with state.service.request():
        best, results = await unless_disconnected(request, _translated(state, texts, html, alternatives))
    answer: dict[str, Any] = {"translatedText": best if batch else best[0]}
    if values["source"] == "auto":
        detected = {"confidence": CONFIDENCE, "language": source}
        answer["detectedLanguage"] = [detected] * len(texts) if batch else detected
    if alternatives:
        others = [_alternatives(lines, text, alternatives) for lines, text in zip(results, best, strict=True)]
        answer["alternatives"] = others if batch else others[0]
    return JSONResponse(answer)


async def _translated(
    state: ServerState, texts: list[str], html: bool, alternatives: int
) -> tuple[list[str], list[list[Line]]]:
    """Each text's translation, and its lines with their hypotheses (none with HTML, which has no alternatives in
    LibreTranslate: an empty list of them)."""
    base, n_best = state.cfg.decode, alternatives + 1
    if html:
        documents = await state.service.translate_html(html_texts(texts, "q"), base, "q")
        return [document.text for document in documents], [[] for _ in texts]
    decode = state.service.decode_config(n_best=n_best, beam_size=max(base.beam_size, n_best))
    results = await state.service.translate(texts, decode if alternatives else base, "q")
    return ["\n".join(line.best for line in lines) for lines in results], results


def _alternatives_asked(value: Any, limit: int) -> int:
    """LibreTranslate's `alternatives`, read as its `max(0, int(value))` reads it (-1 is 0; JSON 1.5 and true are
    1), at most `limit`."""
    if isinstance(value, bool) or (isinstance(value, float) and math.isfinite(value)):
        value = int(value)
    if (isinstance(value, int) and value < 0) or (isinstance(value, str) and re.fullmatch(r"\s*-[0-9]+\s*", value)):
        value = 0
    return integer(value, "alternatives", 0, limit, 0)


async def languages(request: Request) -> JSONResponse:
    """The source language with its one target, and the target language (which translates into nothing here)."""
    state: ServerState = request.app.state.server
    source, target = state.languages
    return JSONResponse([{**source, "targets": [target["code"]]}, {**target, "targets": []}])


async def detect(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.server
    values = await libretranslate_values(request, state.cfg.max_body_bytes)
    state.check_key(request, values.get("api_key"))
    if not values.get("q"):
        raise RequestError(400, "Invalid request: missing q parameter")
    text_list(values["q"], "q")
    return JSONResponse([{"confidence": CONFIDENCE, "language": state.languages[0]["code"]}])


async def frontend_settings(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.server
    source, target = state.languages
    return JSONResponse(
        {
            "charLimit": state.cfg.max_chars,
            "frontendTimeout": 500,
            "apiKeys": bool(state.keys),
            "keyRequired": bool(state.keys),
            "suggestions": False,
            "filesTranslation": False,
            "supportedFilesFormat": [],
            "language": {"source": source, "target": target},
        }
    )


def _pair(state: ServerState, source: Any, target: Any) -> tuple[str, str]:
    """The model's pair, when the request asks for it (source `auto` stands for the model's source)."""
    src, tgt = state.languages[0]["code"], state.languages[1]["code"]
    if source not in ("auto", src):
        raise RequestError(400, f"{source} is not supported")
    if target != tgt:
        raise RequestError(400, f"{target} is not supported")
    return src, tgt


def _alternatives(lines: list[Line], best: str, count: int) -> list[str]:
    """Up to `count` other translations of a text, unique and unlike the best: the k-th hypothesis of every line
    (a line with fewer keeps its best)."""
    depth = max((len(line.hypotheses) for line in lines), default=0)
    found: list[str] = []
    for k in range(1, depth):
        text = "\n".join(
            line.hypotheses[min(k, len(line.hypotheses) - 1)].text if line.hypotheses else "" for line in lines
        )
        if text != best and text not in found:
            found.append(text)
    return found[:count]
