"""The server's HTTP contract, in process: the native API and LibreTranslate's, each parameter and each error,
bad input answered with 4xx and a message (never a traceback), limits, API keys, CORS, busy (503) and late (504)
answers, health, readiness, metrics and the per-request log line. Uses the session's tiny model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from dataclasses import replace

import pytest

pytest.importorskip("starlette", reason="nmt-serve needs the `serve` extra: pip install 'nmt-toolkit[serve]'")
httpx = pytest.importorskip("httpx", reason="the API tests call the app with httpx (the `dev` extra)")

from serve_helpers import DECODE, Server, assert_error  # noqa: E402

from nmt.config import ConfigError, DataConfig, DecodeConfig, ServeConfig, check  # noqa: E402
from nmt.data.sources import get_corpus  # noqa: E402
from nmt.decode.translator import Translator  # noqa: E402
from nmt.serve.errors import RequestError  # noqa: E402
from nmt.serve.inputs import parse_json  # noqa: E402
from nmt.serve.server import load_state  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def server(model_path):
    server = Server(model_path, max_chars=400, max_lines=12, max_body_bytes=4000)
    yield server
    server.close()


@pytest.fixture(scope="module")
def offline(model_path):
    translator = Translator.from_checkpoint(model_path, replace(DECODE, n_best=3), device="cpu")
    return lambda lines: translator.translate(lines)


@pytest.fixture(scope="module")
def sentences():
    return get_corpus(DataConfig(), "test").src[:6]


# ---- native API ----


def test_native_answers_every_line_of_every_text_as_offline(server, offline, sentences):
    texts = [sentences[0], f"{sentences[1]}\n\n  {sentences[2]}  \r\n{sentences[3]}", ""]
    response = server.post("/api/translate", json={"texts": texts})
    assert response.status_code == 200
    answer = response.json()["translations"]
    expected = offline([sentences[0], sentences[1], "", sentences[2], sentences[3], ""])
    assert answer[0]["text"] == expected[0].best
    assert answer[1]["text"] == "\n".join(t.best for t in expected[1:5])
    assert answer[2] == {"text": "", "lines": [{"source": "", "hypotheses": []}]}
    assert [line["source"] for line in answer[1]["lines"]] == [sentences[1], "", sentences[2], sentences[3]]


def test_native_n_best_comes_with_scores_best_first(server, offline, sentences):
    response = server.post("/api/translate", json={"text": sentences[0], "n_best": 3})
    hyps = response.json()["translations"][0]["lines"][0]["hypotheses"]
    expected = offline([sentences[0]])[0]
    assert [h["text"] for h in hyps] == expected.texts
    assert [h["score"] for h in hyps] == pytest.approx(expected.scores, abs=1e-3)
    assert [h["score"] for h in hyps] == sorted((h["score"] for h in hyps), reverse=True)


def test_native_decode_options_change_the_search(server, model_path, sentences):
    greedy = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=1), device="cpu").translate(sentences[:3])
    response = server.post("/api/translate", json={"texts": sentences[:3], "beam_size": 1, "length_penalty": 0.5})
    assert [t["text"] for t in response.json()["translations"]] == [t.best for t in greedy]


def test_native_alignments_link_the_words(server, sentences):
    response = server.post("/api/translate", json={"text": sentences[0], "n_best": 2, "alignments": True})
    for hyp in response.json()["translations"][0]["lines"][0]["hypotheses"]:
        links = [tuple(map(int, pair.split("-"))) for pair in hyp["alignment"].split()]
        assert links and all(0 <= i < len(sentences[0].split()) for i, _ in links)
        assert {j for _, j in links} == set(range(len(hyp["text"].split())))  # every target word linked


def test_native_attention_of_one_sentence(server, sentences):
    body = {"texts": ["", f"{sentences[0]}\n{sentences[1]}"], "attention": {"text": 1, "line": 1}}
    attention = server.post("/api/translate", json=body).json()["attention"]
    assert (attention["text"], attention["line"]) == (1, 1)
    assert attention["layer"] == server.state.decoder_layers - 1  # align_layer=-1: the top layer
    assert attention["source"][-1] == attention["target"][-1] == "</s>"
    assert "".join(attention["source"][:-1]).replace("\u2581", " ").strip() == sentences[1]
    weights = attention["weights"]
    assert len(weights) == len(attention["target"]) and {len(row) for row in weights} == {len(attention["source"])}
    assert [sum(row) for row in weights] == pytest.approx([1.0] * len(weights), abs=1e-2)  # softmax rows
    empty = server.post("/api/translate", json={"texts": [""], "attention": {}}).json()
    assert empty["attention"] is None


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({"texts": ["a"], "beam_size": 99}, "`beam_size` must be in [1, 8]"),
        ({"texts": ["a"], "beam_size": "five"}, "`beam_size` parameter is not a number"),
        ({"texts": ["a"], "beam_size": 2, "n_best": 3}, "`n_best` must be <= `beam_size` (2)"),
        ({"texts": ["a"], "n_best": 9}, "`n_best` must be in [1, 5]"),
        ({"texts": ["a"], "length_penalty": "long"}, "`length_penalty` must be a number"),
        ({"texts": ["a"], "length_penalty": 9.0}, "`length_penalty` must be in [0, 5]"),
        ({"texts": ["a"], "length_penalty": 10**400}, "`length_penalty` must be in [0, 5], but is 1000"),
        ({"texts": ["a"], "beam_size": "+-1"}, "`beam_size` parameter is not a number"),
        ({"texts": [], "attention": True}, "`attention` needs a text to attend"),
        ({"texts": ["a"], "alignments": "yes"}, "`alignments` must be true or false"),
        ({"texts": ["a"], "attention": {"line": 3}}, "`attention.line` must be in [0, 0]"),
        ({"texts": ["a"], "attention": [0, 1]}, "`attention` must be an object"),
        ({"texts": ["a"], "sampling": True}, "unknown field `sampling`"),
        ({"texts": "a"}, "`texts` must be a list of strings"),
        ({"text": ["a"]}, "`text` must be a string"),
        ({"texts": ["a", 5]}, "`texts` must be a string or a list of strings"),
        ({"text": "a", "texts": ["b"]}, "give `texts`"),
        ({}, "give `texts`"),
    ],
)
def test_native_refuses_bad_parameters_naming_them(server, body, fragment):
    assert_error(server.post("/api/translate", json=body), 400, fragment)


def test_native_info_tells_the_pair_the_search_and_the_limits(server):
    info = server.get("/api/info").json()
    assert info["source"] == {"code": "en", "name": "English"} and info["target"] == {"code": "de", "name": "German"}
    assert info["ready"] is True and info["decode"]["beam_size"] == 4 and info["key_required"] is False
    assert info["limits"]["max_chars"] == 400 and info["limits"]["max_n_best"] == 5


# ---- LibreTranslate's API ----


def test_libretranslate_translates_a_string_from_json_form_query_and_multipart(server, offline, sentences):
    expected = offline([sentences[0]])[0].best
    params = {"q": sentences[0], "source": "en", "target": "de"}
    answers = server.many(
        [
            ("POST", "/translate", {"json": params}),
            ("POST", "/translate", {"data": params}),
            ("POST", "/translate", {"params": params}),
            ("POST", "/translate", {"files": {k: (None, v) for k, v in params.items()}}),
            ("POST", "/translate", {"data": {"q": sentences[0]}, "params": {"source": "en", "target": "de"}}),
        ]
    )
    for response in answers:
        assert response.status_code == 200, response.text
        assert response.json() == {"translatedText": expected}


def test_libretranslate_translates_a_list_and_multiline_text(server, offline, sentences):
    q = [sentences[0], f"{sentences[1]}\n{sentences[2]}"]
    response = server.post("/translate", json={"q": q, "source": "en", "target": "de"})
    best = [t.best for t in offline(sentences[:3])]
    assert response.json() == {"translatedText": [best[0], f"{best[1]}\n{best[2]}"]}


def test_libretranslate_auto_source_reports_the_detected_language(server, sentences):
    one = server.post("/translate", json={"q": sentences[0], "source": "auto", "target": "de"}).json()
    assert one["detectedLanguage"] == {"confidence": 100.0, "language": "en"}
    many = server.post("/translate", json={"q": sentences[:2], "source": "auto", "target": "de"}).json()
    assert many["detectedLanguage"] == [{"confidence": 100.0, "language": "en"}] * 2


def test_libretranslate_alternatives_are_other_hypotheses(server, offline, sentences):
    expected = offline([sentences[0]])[0]
    response = server.post("/translate", json={"q": sentences[0], "source": "en", "target": "de", "alternatives": 2})
    answer = response.json()
    assert answer["translatedText"] == expected.best
    assert answer["alternatives"] == [t for t in expected.texts[1:3] if t != expected.best][:2]
    listed = server.post("/translate", data={"q": sentences[0], "source": "en", "target": "de", "alternatives": "1"})
    assert len(listed.json()["alternatives"]) == 1
    batch = server.post("/translate", json={"q": sentences[:2], "source": "en", "target": "de", "alternatives": 1})
    assert [len(a) for a in batch.json()["alternatives"]] == [1, 1]


@pytest.mark.parametrize(
    ("value", "count"), [(-1, 0), ("-2", 0), (1.0, 1), (1.5, 1), (-1.5, 0), (True, 1), (" 2 ", 2), (False, 0)]
)
def test_libretranslate_reads_alternatives_as_it_does(server, sentences, value, count):
    """LibreTranslate reads `alternatives` as `max(0, int(value))`: its clients may send -1, 1.0 or true."""
    answer = server.post("/translate", json={"q": sentences[0], "source": "en", "target": "de", "alternatives": value})
    assert answer.status_code == 200, answer.text
    assert len(answer.json().get("alternatives", [])) == count


@pytest.mark.parametrize(
    "params,status,fragment",
    [
        ({"source": "en", "target": "de"}, 400, "Invalid request: missing q parameter"),
        ({"q": "", "source": "en", "target": "de"}, 400, "Invalid request: missing q parameter"),
        ({"q": "a", "target": "de"}, 400, "Invalid request: missing source parameter"),
        ({"q": "a", "source": "en"}, 400, "Invalid request: missing target parameter"),
        ({"q": "a", "source": "fr", "target": "de"}, 400, "fr is not supported"),
        ({"q": "a", "source": "en", "target": "es"}, 400, "es is not supported"),
        ({"q": "a", "source": "en", "target": "de", "format": "xml"}, 400, "xml format is not supported"),
        (
            {"q": "a", "source": "en", "target": "de", "alternatives": "x"},
            400,
            "`alternatives` parameter is not a number",
        ),
        ({"q": "a", "source": "en", "target": "de", "alternatives": 5}, 400, "`alternatives` must be in [0, 4]"),
        ({"q": "a", "source": "en", "target": "de", "alternatives": "+-1"}, 400, "parameter is not a number"),
        ({"q": "a", "source": "en", "target": "de", "alternatives": "²"}, 400, "parameter is not a number"),
        ({"q": "a", "source": "en", "target": "de", "alternatives": "9" * 30}, 400, "parameter is not a number"),
        ({"q": ["a", 1], "source": "en", "target": "de"}, 400, "`q` must be a string or a list of strings"),
        ({"q": "a" * 401, "source": "en", "target": "de"}, 400, "`q` has 401 characters, more than"),
        ({"q": "a\n" * 12, "source": "en", "target": "de"}, 400, "`q` has 13 lines, more than"),
        ({"q": "a\x00b", "source": "en", "target": "de"}, 400, "NUL character"),
    ],
)
def test_libretranslate_refuses_bad_parameters_with_its_messages(server, params, status, fragment):
    assert_error(server.post("/translate", json=params), status, fragment)


def test_libretranslate_languages_detect_and_frontend_settings(server):
    assert server.get("/languages").json() == [
        {"code": "en", "name": "English", "targets": ["de"]},
        {"code": "de", "name": "German", "targets": []},
    ]
    assert server.post("/detect", data={"q": "hello"}).json() == [{"confidence": 100.0, "language": "en"}]
    assert_error(server.post("/detect", json={}), 400, "missing q parameter")
    settings = server.get("/frontend/settings").json()
    assert settings["charLimit"] == 400 and settings["keyRequired"] is False
    assert settings["language"] == {
        "source": {"code": "en", "name": "English"},
        "target": {"code": "de", "name": "German"},
    }


# ---- bad input ----


@pytest.mark.parametrize("path", ["/translate", "/api/translate"])
@pytest.mark.parametrize(
    "body,fragment",
    [
        (b'{"q": "a", ', "is not valid JSON"),
        (b"\xff\xfe{}", "is not valid UTF-8 (byte 0xff at offset 0)"),
        (b'["a"]', "Invalid JSON format: the body must be a JSON object, not an array"),
        (b'{"q": "\\ud800", "texts": ["\\ud800"], "source": "en", "target": "de"}', "unpaired surrogate"),
        (b'{"q": ' + b"[" * 1500 + b"]" * 1500 + b"}", "nested too deeply"),  # within max_body_bytes (4000)
    ],
)
def test_bad_json_bodies_get_400_with_a_message(server, path, body, fragment):
    if path == "/api/translate" and b"\\ud800" in body:
        body = b'{"texts": ["\\ud800"]}'
    assert_error(server.post(path, content=body, headers={"content-type": "application/json"}), 400, fragment)


def test_json_with_an_integer_python_will_not_read_is_a_400():
    """An integer of more digits than Python converts (4,300) makes `json.loads` raise ValueError: a 400 too."""
    with pytest.raises(RequestError) as err:
        parse_json(b'{"q": "a", "n_best": ' + b"9" * 5000 + b"}")
    assert err.value.status == 400 and "not usable JSON" in err.value.message


def test_bad_utf8_in_form_and_query_gets_400(server):
    form = {
        "content": b"q=%ff%fe&source=en&target=de",
        "headers": {"content-type": "application/x-www-form-urlencoded"},
    }
    assert_error(server.post("/translate", **form), 400, "the form body is not valid UTF-8")
    assert_error(server.post("/translate?q=%C3%28&source=en&target=de"), 400, "the query string is not valid UTF-8")


def test_oversize_bodies_get_413_whether_declared_or_streamed(server):
    big = json.dumps({"q": "a " * 3000, "source": "en", "target": "de"}).encode()
    assert_error(server.post("/translate", content=big, headers={"content-type": "application/json"}), 413, "4000")

    async def chunks():
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    streamed = server.post("/api/translate", content=chunks(), headers={"content-type": "application/json"})
    assert_error(streamed, 413, "past this server's limit of 4000")


def test_a_line_longer_than_the_model_takes_is_refused_naming_it_when_translated_whole(model_path, sentences):
    server = Server(model_path)
    try:
        long = " ".join([sentences[0]] * 200)  # n-best lists translate a line whole (sentence by sentence, it is cut)
        refused = server.post("/api/translate", json={"texts": [f"ok\n{long}"], "n_best": 2})
        assert_error(refused, 400, "line 2 of `texts` has")
    finally:
        server.close()


def test_unknown_routes_and_methods_answer_json(server):
    assert_error(server.get("/nowhere"), 404)
    assert_error(server.get("/translate"), 405)


@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "batches"])
def test_a_bug_is_a_500_without_a_traceback(model_path, sentences, monkeypatch, continuous):
    server = Server(model_path)
    try:

        def broken(*args):
            raise RuntimeError("kaputt")

        batcher = server.state.service.batcher
        assert batcher.continuous is not None  # the default
        monkeypatch.setattr(batcher, "continuous", broken if continuous else None)
        monkeypatch.setattr(batcher, "translate", broken)
        assert assert_error(server.post("/api/translate", json={"texts": [sentences[0]]}), 500) == (
            "Internal error: RuntimeError"
        )
    finally:
        server.close()


# ---- keys, CORS ----


def test_api_keys_are_required_when_configured(model_path, sentences):
    server = Server(model_path, api_keys=["k1", "k2"])
    try:
        params = {"q": sentences[0], "source": "en", "target": "de"}
        assert_error(
            server.post("/translate", json=params), 400, "Please contact the server operator to get an API key"
        )
        assert_error(server.post("/translate", json={**params, "api_key": "nope"}), 403, "Invalid API key")
        assert server.post("/translate", json={**params, "api_key": "k2"}).status_code == 200
        assert server.post("/translate", data={**params, "api_key": "k1"}).status_code == 200
        bearer = {"Authorization": "Bearer k1"}
        assert server.post("/api/translate", json={"texts": ["a"]}, headers=bearer).status_code == 200
        assert_error(server.post("/api/translate", json={"texts": ["a"]}), 400, "API key")
        assert server.get("/languages").status_code == 200  # open, as in LibreTranslate
        assert server.get("/frontend/settings").json()["keyRequired"] is True
    finally:
        server.close()


def test_api_keys_file_is_read_and_a_missing_one_is_a_clear_error(model_path, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# operators\nalpha\n\n beta \n", encoding="utf-8")
    server = Server(model_path, api_keys_file=str(keys))
    try:
        assert server.state.keys == {"alpha", "beta"}
    finally:
        server.close()
    with pytest.raises(Exception, match="api_keys_file .* cannot be read"):
        load_state(ServeConfig(ckpt=str(model_path), device="cpu", api_keys_file=str(tmp_path / "missing")))


def test_cors_headers_only_for_configured_origins(server, model_path):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin" not in server.many([("OPTIONS", "/translate", {"headers": preflight})])[0].headers
    )
    cors = Server(model_path, cors_origins=["https://app.example"])
    try:
        answer = cors.many([("OPTIONS", "/translate", {"headers": preflight})])[0]
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "https://app.example"
    finally:
        cors.close()


# ---- busy, late, operations ----


def test_a_full_queue_answers_503_with_retry_after_at_once(model_path, sentences):
    probe = Server(model_path)
    tokens = [len(ids) + 1 for ids in probe.state.service.tokenizer.encode_src(sentences[:2])]
    probe.close()
    server = Server(model_path, max_queue_tokens=max(tokens) + 1)  # room for either sentence, not for both
    try:
        release = server.hold()
        first = threading.Thread(
            target=server.post, args=("/api/translate",), kwargs={"json": {"texts": [sentences[0]]}}
        )
        first.start()
        while server.state.service.batcher.queued_sentences == 0:
            pass
        busy = server.post("/translate", json={"q": sentences[1], "source": "en", "target": "de"})
        assert_error(busy, 503, "Server busy")
        assert int(busy.headers["retry-after"]) >= 1
        release.set()
        first.join(30)
        assert server.post("/translate", json={"q": sentences[1], "source": "en", "target": "de"}).status_code == 200
        assert_error(server.post("/api/translate", json={"texts": [sentences[0]] * 5}), 400, "smaller requests")
        assert 'nmt_refused_total{reason="queue_full"} 1.0' in server.get("/metrics").text
    finally:
        server.close()


def test_a_request_past_its_deadline_answers_504_and_leaves_the_queue(model_path, sentences):
    server = Server(model_path, request_timeout=0.3)
    try:
        release = server.hold()
        assert_error(server.post("/api/translate", json={"texts": sentences[:3]}), 504, "request timeout (0.3 s)")
        assert server.state.service.batcher.queued_sentences == 0  # dropped, not translated later
        release.set()
        assert server.post("/api/translate", json={"texts": sentences[:1]}).status_code == 200
    finally:
        server.close()


def _asgi_post(app, path: str, body: bytes, sent: list, leave: asyncio.Event):
    """POST `body` to `path` of `app` as uvicorn would, the client leaving (`http.disconnect`) once `leave` is set."""
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http"}
    scope |= {"path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers}
    return app(scope | {"client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 5000)}, receive, send)


@pytest.mark.parametrize("path", ["/translate", "/api/translate"])
@pytest.mark.parametrize("leaves", [True, False])
def test_a_client_that_leaves_gives_up_its_queued_sentences(server, sentences, path, leaves):
    """A client gone while its sentences wait: they leave the queue (never translated), and the request ends 499;
    a client that stays gets its answer."""
    params = {"q": sentences[0], "source": "en", "target": "de"} if path == "/translate" else {"texts": sentences[:3]}
    batcher, sent = server.state.service.batcher, []

    async def run() -> None:
        leave = asyncio.Event()
        call = asyncio.ensure_future(_asgi_post(server.app, path, json.dumps(params).encode(), sent, leave))
        while batcher.queued_sentences == 0:
            await asyncio.sleep(0.01)
        if leaves:
            leave.set()
            await asyncio.wait_for(call, 10)
            assert batcher.queued_sentences == 0  # given up while the worker was still busy
        release.set()
        await asyncio.wait_for(call, 30)

    release = server.hold()
    try:
        asyncio.run(run())
    finally:
        release.set()
    assert sent[0]["status"] == (499 if leaves else 200)


def test_health_readiness_and_draining(model_path):
    server = Server(model_path)
    try:
        assert server.get("/health").json() == {"status": "ok"}
        assert server.get("/health/ready").json() == {"status": "ready"}
        server.state.service.batcher.drain(grace=5)
        assert server.get("/health").status_code == 200
        not_ready = server.get("/health/ready")
        assert not_ready.status_code == 503 and not_ready.json() == {"status": "draining"}
        assert_error(server.post("/api/translate", json={"texts": ["a"]}), 503, "shutting down")
    finally:
        server.close()


def _counter(text: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


def test_metrics_count_requests_batches_queue_and_memory(server, sentences):
    before = server.get("/metrics").text
    server.many([("POST", "/api/translate", {"json": {"texts": [s]}}) for s in sentences])
    text = server.get("/metrics").text
    translated, accepted = (
        _counter(text, name) - _counter(before, name)
        for name in ("nmt_translated_sentences_total", "nmt_accepted_sentences_total")
    )
    assert translated == accepted >= len(sentences)  # each sentence counted once, not once per search step
    for name in (
        'nmt_requests_total{route="/api/translate",status="200"}',
        "nmt_request_seconds_bucket",
        "nmt_request_sentences_bucket",
        "nmt_batch_sentences_bucket",
        "nmt_batch_tokens_bucket",
        "nmt_queue_sentences 0.0",
        "nmt_queue_tokens 0.0",
        "nmt_ready 1.0",
        "process_resident_memory_bytes",
    ):
        assert name in text, name


def test_refusals_are_counted_by_their_reason(server):
    """A malformed request is `invalid`, one past a size limit `limit`: the two are told apart."""

    def refused(text: str, reason: str) -> float:
        found = re.search(rf'^nmt_refused_total{{reason="{reason}"}} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    before = server.get("/metrics").text
    server.post("/translate", json={"q": ""})  # missing q
    server.post("/api/translate", content=b'{"texts": [')  # bad JSON
    server.post("/translate", json={"q": "a" * 401, "source": "en", "target": "de"})  # past max_chars
    after = server.get("/metrics").text
    assert refused(after, "invalid") - refused(before, "invalid") == 2
    assert refused(after, "limit") - refused(before, "limit") == 1


def test_one_json_log_line_per_request(server, caplog):
    with caplog.at_level(logging.INFO, logger="nmt.serve"):
        server.post("/api/translate", json={"texts": ["a\nb"]})
        server.post("/translate", json={"q": ""})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "nmt.serve"]
    assert [(line["path"], line["status"]) for line in lines] == [("/api/translate", 200), ("/translate", 400)]
    assert lines[0]["sentences"] == 2 and lines[0]["method"] == "POST" and lines[0]["ms"] >= 0
    assert lines[1]["error"] == "Invalid request: missing q parameter"


def test_serve_config_rules(model_path):
    with pytest.raises(ConfigError) as err:
        check(
            ServeConfig(
                ckpt="m.pt",
                max_alternatives=8,
                max_beam_size=8,
                decode=DecodeConfig(sampling=True),
                switch_interval_ms=0,
            )
        )
    assert "`max_alternatives` must be in [0, `max_beam_size`) (8)" in str(err.value)
    assert "`switch_interval_ms` must be > 0, but is 0 instead." in str(err.value)
    assert "`decode.sampling` must be false for nmt-serve" in str(err.value)
