"""The web page of `nmt-serve` in a real headless browser (Debian's chromium and chromium-driver, via selenium):
translation as you type (debounced), alternatives on demand, and the attention heatmap of a chosen sentence.

Skipped, with the reason printed, where Chromium or its driver is not installed (`.ci/run` installs both).
Set NMT_SCREENSHOT=path.png to keep the screenshot (docs/serve.png is made that way).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="nmt-serve needs the `serve` extra: pip install 'nmt-toolkit[serve]'")
pytest.importorskip("selenium", reason="the page test drives Chromium with selenium (the `dev` extra)")

import uvicorn  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from nmt.config import DataConfig, DecodeConfig, ServeConfig  # noqa: E402
from nmt.data.sources import get_corpus  # noqa: E402
from nmt.decode.translator import Translator  # noqa: E402
from nmt.serve.server import build_app, load_state, uvicorn_config  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no Chromium here: apt-get install chromium chromium-driver (Debian) to run the page test",
)
DECODE = DecodeConfig(beam_size=4)


@pytest.fixture(scope="module")
def server(model_path):
    """nmt-serve's app under uvicorn on a free 127.0.0.1 port, in a thread of this process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = ServeConfig(ckpt=str(model_path), device="cpu", decode=DECODE, port=port, log_requests=False)
    state = load_state(cfg)
    uv = uvicorn.Server(uvicorn_config(build_app(state), cfg))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    assert state.service.batcher.ready.wait(60)
    while not uv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", state
    uv.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1650"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    yield driver
    driver.quit()


def _requests(state) -> float:
    return sum(
        sample.value
        for metric in state.metrics.requests.collect()
        for sample in metric.samples
        if sample.name == "nmt_requests_total" and sample.labels["route"] == "/api/translate"
    )


def test_the_page_translates_as_you_type_and_draws_the_attention(server, browser, model_path, tmp_path):
    url, state = server
    lines = get_corpus(DataConfig(), "test").src[:2]
    expected = [t.best for t in Translator.from_checkpoint(model_path, DECODE, device="cpu").translate(lines)]
    wait = WebDriverWait(browser, 30)
    browser.get(url)
    wait.until(lambda d: d.find_element(By.ID, "pair").text == "English → German")

    # Typed key by key, fast: the debounce sends a handful of requests, not one per key.
    before = _requests(state)
    source = browser.find_element(By.ID, "source")
    text = "\n".join(lines)
    for char in text:
        source.send_keys(char)
    output = browser.find_element(By.ID, "translation")
    wait.until(lambda d: output.get_attribute("data-source") == text)
    assert output.text.split("\n") == expected
    assert _requests(state) - before <= len(text) / 10, "typing sent a request per key: no debounce"

    browser.find_element(By.ID, "nbest-button").click()
    wait.until(lambda d: d.find_element(By.ID, "nbest").is_displayed())
    lists = browser.find_elements(By.CSS_SELECTOR, "#nbest ol")
    assert len(lists) == 2 and all(len(ol.find_elements(By.TAG_NAME, "li")) >= 2 for ol in lists)
    assert lists[0].find_elements(By.TAG_NAME, "li")[0].text.startswith(expected[0])

    Select(browser.find_element(By.ID, "line-select")).select_by_value("1")
    browser.find_element(By.ID, "attention-button").click()
    canvas = browser.find_element(By.ID, "heatmap")
    wait.until(lambda d: canvas.get_attribute("data-rows"))
    pieces = state.service.tokenizer.encode_src([lines[1]])[0]
    assert int(canvas.get_attribute("data-columns")) == len(pieces) + 1  # source pieces and EOS
    coloured = browser.execute_script(
        "const c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200 && d[i + 2] > 200) n++; return n;",
        canvas,
    )
    assert coloured > 500, "the heatmap has no coloured cells"
    assert not browser.find_element(By.ID, "error").is_displayed()

    shot = Path(os.environ.get("NMT_SCREENSHOT", tmp_path / "serve.png"))
    assert browser.save_screenshot(str(shot))
