"""The native JSON API: `POST /api/translate` (texts, n-best with scores, alignments, one sentence's attention) and
`GET /api/info` (the language pair, the default search and the server's limits).

Request body of `/api/translate` (a JSON object; only `texts` is required):

    {"texts": ["A line.", "Two\\nlines."],   # or "text": "one text"
     "format": "text",                        # or "html": each text an HTML fragment or page
     "beam_size": 5, "n_best": 3, "length_penalty": 1.0, "no_repeat_ngram": 0,   # within the server's bounds
     "alignments": true,                      # Pharaoh word links of every hypothesis
     "attention": {"text": 1, "line": 0},     # the cross-attention matrix of that line's best hypothesis
     "api_key": "..."}

Answer: `{"translations": [{"text": best lines joined, "lines": [{"source", "hypotheses": [{"text", "score",
"alignment"?}]}]}], "attention"?: {"text", "line", "layer", "source", "target", "weights"}}`.

A line is translated sentence by sentence (one hypothesis, `nmt.serve.service`); with `n_best` > 1 or `alignments`
each line is translated whole, as `nmt-translate` does. With `"format": "html"`, `text` is the HTML written back and
`lines` are its segments (a block's text, as HTML); n-best lists and alignments are for text only.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from nmt.config import DecodeConfig
from nmt.documents.formats import Skeleton
from nmt.serve.errors import RequestError
from nmt.serve.inputs import (
    boolean,
    check_text_limits,
    html_texts,
    integer,
    json_object,
    number,
    read_body,
    text_format,
    text_list,
    unless_disconnected,
)
from nmt.serve.results import Line
from nmt.serve.service import TranslationService, whole_lines
from nmt.serve.state import ServerState

FIELDS = ("texts", "text", "format", "beam_size", "n_best", "length_penalty", "no_repeat_ngram", "alignments")
FIELDS += ("attention", "api_key")


async def translate(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.server
    body = json_object(await read_body(request, state.cfg.max_body_bytes))
    state.check_key(request, body.get("api_key"))
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise RequestError(400, f"Invalid request: unknown field `{unknown[0]}`; the fields are {', '.join(FIELDS)}.")
    texts, name = _texts(body)
    check_text_limits(texts, name, state.cfg.max_chars, state.cfg.max_lines)
    decode = _decode(state, body)
    alignments = boolean(body.get("alignments"), "alignments")
    html = text_format(body.get("format")) == "html"
    if html and whole_lines(decode, alignments):
        raise RequestError(400, "Invalid request: `n_best` > 1 and `alignments` are given for text only, not html.")
    documents = html_texts(texts, name) if html else None
    counts = [len(d.segments) for d in documents] if documents is not None else [t.count("\n") + 1 for t in texts]
    where = _attention_index(body.get("attention"), counts)
    request.state.sentences = sum(t.count("\n") + 1 for t in texts)
    with state.service.request():
        answer = await unless_disconnected(
            request, _answer(state.service, texts, name, decode, alignments, documents, where)
        )
    return JSONResponse(answer)


async def _answer(
    service: TranslationService,
    texts: list[str],
    name: str,
    decode: DecodeConfig,
    alignments: bool,
    documents: list[Skeleton] | None,
    where: tuple[int, int] | None,
) -> dict[str, Any]:
    """The translations (and the attention matrix at `where`) as the native API's JSON."""
    if documents is not None:
        found = await service.translate_html(documents, decode, name)
        result = [document.lines for document in found]
        answer: dict[str, Any] = {"translations": [_text_json(d.lines, d.text) for d in found]}
    else:
        result = await service.translate(texts, decode, name, alignments)
        answer = {"translations": [_text_json(lines, "\n".join(line.best for line in lines)) for lines in result]}
    if where is not None:
        lines = result[where[0]]
        attention = await service.attention(lines[where[1]]) if lines else None
        answer["attention"] = None if attention is None else {"text": where[0], "line": where[1], **vars(attention)}
    return answer


async def info(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.server
    cfg, decode = state.cfg, state.cfg.decode
    return JSONResponse(
        {
            "source": state.languages[0],
            "target": state.languages[1],
            "ready": state.service.ready,
            "decode": {"beam_size": decode.beam_size, "n_best": decode.n_best, "length_penalty": decode.length_penalty},
            "limits": {
                "max_chars": cfg.max_chars,
                "max_lines": cfg.max_lines,
                "max_body_bytes": cfg.max_body_bytes,
                "max_beam_size": cfg.max_beam_size,
                "max_n_best": cfg.max_alternatives + 1,
                "max_src_tokens": state.service.max_src_len,
                "max_sentence_tokens": state.service.documents.options.max_len,  # longer ones are cut (null: never)
            },
            "key_required": bool(state.keys),
            "decoder_layers": state.decoder_layers,
        }
    )


def _texts(body: dict[str, Any]) -> tuple[list[str], str]:
    if ("texts" in body) == ("text" in body):
        raise RequestError(400, "Invalid request: give `texts` (a list of strings) or `text` (a string), one of them.")
    name = "texts" if "texts" in body else "text"
    texts, is_list = text_list(body[name], name)
    if is_list != (name == "texts"):
        kind = "a list of strings" if name == "texts" else "a string"
        raise RequestError(400, f"Invalid request: `{name}` must be {kind}.")
    return [t.replace("\r\n", "\n").replace("\r", "\n") for t in texts], name


def _decode(state: ServerState, body: dict[str, Any]):
    """The search a request asks for, checked against the server's bounds."""
    cfg, base = state.cfg, state.cfg.decode
    beam = integer(body.get("beam_size"), "beam_size", 1, cfg.max_beam_size, base.beam_size)
    n_best = integer(body.get("n_best"), "n_best", 1, cfg.max_alternatives + 1, min(base.n_best, beam))
    if n_best > beam:
        raise RequestError(400, f"Invalid request: `n_best` must be <= `beam_size` ({beam}), but is {n_best}.")
    penalty = number(body.get("length_penalty"), "length_penalty", 0.0, 5.0, base.length_penalty)
    no_repeat = integer(body.get("no_repeat_ngram"), "no_repeat_ngram", 0, 10, base.no_repeat_ngram)
    return state.service.decode_config(beam_size=beam, n_best=n_best, length_penalty=penalty, no_repeat_ngram=no_repeat)


def _attention_index(value: Any, counts: list[int]) -> tuple[int, int] | None:
    """(text, line) whose attention matrix is asked for, checked against the number of lines of each text."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not counts:
        raise RequestError(400, "Invalid request: `attention` needs a text to attend in `texts`.")
    if not isinstance(value, dict) or set(value) - {"text", "line"}:
        raise RequestError(400, 'Invalid request: `attention` must be an object like {"text": 0, "line": 0}.')
    text = integer(value.get("text"), "attention.text", 0, len(counts) - 1, 0)
    return text, integer(value.get("line"), "attention.line", 0, max(counts[text], 1) - 1, 0)


def _text_json(lines: list[Line], text: str) -> dict[str, Any]:
    return {
        "text": text,
        "lines": [
            {
                "source": line.source,
                "hypotheses": [
                    {"text": h.text, "score": round(h.score, 4)}
                    | ({} if h.alignment is None else {"alignment": h.alignment})
                    for h in line.hypotheses
                ],
            }
            for line in lines
        ],
    }
