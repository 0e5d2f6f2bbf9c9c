"""`nmt-serve` as people run it: the console script, its config errors, and a real server on 127.0.0.1 that is
sent SIGTERM while under load: every request it accepted is answered (200, or 503 with Retry-After once the grace
period is over), none is dropped, and the process exits.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="nmt-serve needs the `serve` extra: pip install 'nmt-toolkit[serve]'")
httpx = pytest.importorskip("httpx", reason="the server tests call it with httpx (the `dev` extra)")

from nmt.config import DataConfig  # noqa: E402
from nmt.data.sources import get_corpus  # noqa: E402

SCRIPT = Path(sys.executable).parent / "nmt-serve"
REQUESTS = 32  # of 30 lines each, sent at once: seconds of work for the tiny model on one thread


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_help_lists_the_server_options(tmp_path):
    out = _run(["--help"], tmp_path).stdout
    for option in ("host=127.0.0.1", "port=5000", "max_queue_tokens=", "shutdown_grace=", "api_keys=[]"):
        assert option in out


def test_config_and_checkpoint_errors_are_one_line(tmp_path, model_path):
    bad = _run([f"ckpt={model_path}", "max_alternatives=9", "port=70000"], tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "`max_alternatives` must be in [0, `max_beam_size`) (8)" in bad.stderr and "`port` must be" in bad.stderr
    missing = _run([f"ckpt={tmp_path / 'none.pt'}"], tmp_path)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr and "none.pt" in missing.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(model_path: Path, cwd: Path, *settings: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    args = [f"ckpt={model_path}", f"port={port}", "num_threads=1", "device=cpu", *settings]
    proc = subprocess.Popen([str(SCRIPT), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"nmt-serve did not become ready:\n{proc.communicate()[1]}")


def _metric(url: str, name: str) -> float:
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    return next(float(line.split()[1]) for line in metrics.splitlines() if line.startswith(name + " "))


@pytest.mark.parametrize("grace,all_translated", [(30, True), (0.1, False)], ids=["within-grace", "grace-over"])
def test_sigterm_under_load_answers_every_accepted_request(model_path, tmp_path, grace, all_translated):
    lines = get_corpus(DataConfig(), "test").src[:30]
    proc, url = _start(model_path, tmp_path, f"shutdown_grace={grace}", "decode.beam_size=5", "max_queue_tokens=64000")
    body = {"texts": ["\n".join(lines)]}

    def client(_: int) -> int | str:
        try:
            response = httpx.post(f"{url}/api/translate", json=body, timeout=60)
        except httpx.TransportError as err:
            return f"connection error: {err!r}"
        if response.status_code == 503:
            assert int(response.headers["retry-after"]) >= 1
            assert "shut down before this request was translated" in response.json()["error"]
        return response.status_code

    with ThreadPoolExecutor(REQUESTS) as pool:
        answers = [pool.submit(client, i) for i in range(REQUESTS)]
        deadline = time.monotonic() + 30
        while _metric(url, "nmt_accepted_sentences_total") < REQUESTS * 30 and time.monotonic() < deadline:
            time.sleep(0.02)  # until every request is in the queue
        assert _metric(url, "nmt_queue_sentences") > 0, "the queue drained before SIGTERM: give it more work"
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        statuses = [a.result() for a in answers]
    _, stderr = proc.communicate(timeout=grace + 30)
    assert time.monotonic() - sent < grace + 15
    assert all(s in (200, 503) for s in statuses), statuses  # no connection error, no request lost
    assert (statuses.count(200) == REQUESTS) == all_translated, statuses
    assert proc.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM), stderr
    assert "Traceback" not in stderr
    with pytest.raises(httpx.TransportError):  # and it no longer listens
        httpx.get(f"{url}/health", timeout=2)


def test_a_running_server_answers_curl_style_requests(model_path, tmp_path):
    proc, url = _start(model_path, tmp_path, "decode.beam_size=2")
    try:
        form = httpx.post(
            f"{url}/translate",
            data={"q": "the children buy twenty-one red apples.", "source": "en", "target": "de"},
            timeout=30,
        )
        assert form.status_code == 200 and form.json()["translatedText"]
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "static/app.js" in page.text
        assert httpx.get(f"{url}/static/app.js", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    logged = [line for line in stderr.splitlines() if line.startswith("{")]
    assert any('"path": "/translate", "status": 200' in line for line in logged), stderr
