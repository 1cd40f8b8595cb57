"""The status page in real headless Chromium, against krwatch on the example data.

krwatch runs as a subprocess on a copy of config.example.yaml. Chromium is
driven over the DevTools protocol: the test collects console messages,
uncaught exceptions and browser log entries (failed loads, CSP violations),
and saves screenshots under test-artifacts/.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
import yaml

from tests.integration._processes import (
    REPOSITORY,
    Krwatch,
    free_port,
    get_json,
    wait_for,
)

pytestmark = pytest.mark.integration

ARTIFACTS = REPOSITORY / "test-artifacts"
EXAMPLE_CONFIG = REPOSITORY / "config.example.yaml"
BROWSER_START_SECONDS = 30.0
CALL_TIMEOUT_SECONDS = 30.0
PAGE_TIMEOUT_SECONDS = 30.0
LAPTOP = {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


def require_chromium() -> str:
    """Return the Chromium binary, or skip (fail in CI) when it is missing."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    message = "chromium is not installed; run apt-get install chromium chromium-driver."
    if os.environ.get("KRWATCH_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


def example_config(folder: Path, port: int) -> Path:
    """Copy the example config onto ``port`` with its store in ``folder``.

    The evaluation interval drops to 1s, so the page refreshes at its
    shortest interval and the test can watch a refresh happen.
    """
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    document["server"]["listen"] = f"127.0.0.1:{port}"
    document["storage"]["path"] = str(folder / "krwatch.db")
    document["evaluation"]["interval"] = "1s"
    for source in document["sources"]:
        if "path" in source:
            source["path"] = str(REPOSITORY / source["path"])
    for receiver in document["receivers"]:
        if receiver.get("path") not in (None, "stdout"):
            receiver["path"] = str(folder / receiver["path"])
    document["rule_files"] = [str(REPOSITORY / glob) for glob in document["rule_files"]]
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class DevTools:
    """A minimal DevTools protocol client over one browser WebSocket."""

    def __init__(self, url: str) -> None:
        self.socket = websocket.create_connection(
            url, timeout=CALL_TIMEOUT_SECONDS, suppress_origin=True
        )
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str = ""
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method}
        message["params"] = params or {}
        if session:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + CALL_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            reply = json.loads(self.socket.recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise AssertionError(f"{method} failed: {reply['error']}")
                return dict(reply.get("result", {}))
            if "method" in reply:
                self.events.append(reply)
        raise AssertionError(f"{method} got no reply in {CALL_TIMEOUT_SECONDS}s.")

    def close(self) -> None:
        self.socket.close()


class Page:
    """One browser tab attached through a flat DevTools session."""

    def __init__(self, tools: DevTools) -> None:
        self.tools = tools
        target = tools.call("Target.createTarget", {"url": "about:blank"})
        attached = tools.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self.session = str(attached["sessionId"])
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.tools.call(method, params, self.session)

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression} raised {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str) -> Any:
        return wait_for(lambda: self.evaluate(expression), PAGE_TIMEOUT_SECONDS, what)

    def screenshot(self, path: Path) -> None:
        shot = self.call(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    def problems(self) -> list[str]:
        """Return console errors and warnings, exceptions and browser log errors."""
        found = []
        for event in self.tools.events:
            if event.get("sessionId") != self.session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif event["method"] == "Runtime.consoleAPICalled" and params.get(
                "type"
            ) in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] in (
                "error",
                "warning",
            ):
                entry = params["entry"]
                found.append(
                    f"log {entry['level']}: {entry.get('text')} {entry.get('url', '')}"
                )
        return found


@pytest.fixture(scope="module")
def krwatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Krwatch]:
    folder = tmp_path_factory.mktemp("statuspage")
    port = free_port()
    process = Krwatch(example_config(folder, port), port, folder / "krwatch.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    binary = require_chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = (profile.parent / "chromium.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    active = profile / "DevToolsActivePort"
    try:
        lines = wait_for(
            lambda: active.exists() and active.read_text().split(),
            BROWSER_START_SECONDS,
            "Chromium's DevToolsActivePort file",
        )
        tools = DevTools(f"ws://127.0.0.1:{lines[0]}{lines[1]}")
        try:
            yield tools
        finally:
            tools.close()
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def evaluated_key_results(krwatch: Krwatch) -> list[dict[str, Any]]:
    """Wait until every configured key result is evaluated on data, then return them.

    The first evaluation may run before the first poll has loaded the
    example history, so a key result counts once its chart has samples.
    """
    expected = sum(
        len(objective["key_results"])
        for objective in yaml.safe_load(EXAMPLE_CONFIG.read_text())["objectives"]
    )

    def ready() -> list[dict[str, Any]] | None:
        data = get_json(krwatch.url + "/api/v1/key_results")["data"]["key_results"]
        loaded = [result for result in data if result["chart"]["actual"]]
        return data if len(loaded) == expected else None

    return list(wait_for(ready, 60, "every key result to be evaluated"))


def open_page(browser: DevTools, krwatch: Krwatch, viewport: dict[str, Any]) -> Page:
    page = Page(browser)
    page.call("Emulation.setDeviceMetricsOverride", viewport)
    page.call("Page.navigate", {"url": krwatch.url + "/"})
    page.wait_for(
        "document.readyState === 'complete' && document.body.dataset.renderedAt",
        "the page to render",
    )
    return page


CARDS = "Array.from(document.querySelectorAll('article.card'))"


def test_status_page_cards_charts_and_order(
    browser: DevTools, krwatch: Krwatch
) -> None:
    results = evaluated_key_results(krwatch)
    page = open_page(browser, krwatch, LAPTOP)
    names = page.evaluate(f"{CARDS}.map((card) => card.dataset.keyResult)")
    charts = page.evaluate(
        f"{CARDS}.map((card) => ["
        "card.querySelectorAll('svg.chart').length,"
        "card.querySelectorAll('svg.chart path.glide').length,"
        "card.querySelectorAll('svg.chart line.target').length,"
        "card.querySelectorAll('svg.chart path.actual').length])"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(ARTIFACTS / "status-page.png")
    shown = page.evaluate(
        f"{CARDS}.map((card) => card.querySelector('.probability').textContent)"
    )
    assert sorted(names) == sorted(result["name"] for result in results)
    # The page and the API may come from different evaluation cycles, so the
    # order is checked against the probabilities the page itself shows.
    percents = [int(text.rstrip("%")) for text in shown if text != "–"]
    assert percents == sorted(percents)
    assert shown[len(percents) :] == ["–"] * (len(shown) - len(percents))
    for name, (svg, glide, target, actual) in zip(names, charts, strict=True):
        assert svg == 1, name
        assert glide == 1, name
        assert target == 1, name
        assert actual == 1, name
    assert page.problems() == []


def test_status_page_draws_forecast_bands(browser: DevTools, krwatch: Krwatch) -> None:
    results = evaluated_key_results(krwatch)
    page = open_page(browser, krwatch, LAPTOP)
    bands = page.evaluate(
        f"Object.fromEntries({CARDS}.map((card) => [card.dataset.keyResult, ["
        "card.querySelectorAll('path.band-80').length,"
        "card.querySelectorAll('path.band-95').length,"
        "card.querySelectorAll('path.forecast').length,"
        "card.querySelector('.probability').textContent]]))"
    )
    for result in results:
        if result["forecast"] is None:
            continue
        band_80, band_95, forecast, probability = bands[result["name"]]
        assert band_80 == 1, result["name"]
        assert band_95 == 1, result["name"]
        assert forecast == 1, result["name"]
        assert re.fullmatch(r"\d{1,3}%", probability), probability
    assert page.problems() == []


def test_status_page_facts_never_show_negative_gap(
    browser: DevTools, krwatch: Krwatch
) -> None:
    evaluated_key_results(krwatch)
    page = open_page(browser, krwatch, LAPTOP)
    facts = page.evaluate(
        f"{CARDS}.map((card) => Array.from(card.querySelectorAll('.facts dt'))"
        ".map((term) => [term.textContent, term.nextElementSibling.textContent]))"
    )

    terms = {term for card in facts for term, _ in card}
    gaps = [
        value
        for card in facts
        for term, value in card
        if term in ("Shortfall", "Ahead of target by", "Room per day")
    ]
    assert {"Current", "Target", "Forecast"} <= terms
    assert gaps
    assert [value for value in gaps if value.lstrip().startswith(("-", "−"))] == []
    assert page.problems() == []


def test_status_page_lists_alerts_and_sources(
    browser: DevTools, krwatch: Krwatch
) -> None:
    evaluated_key_results(krwatch)
    page = open_page(browser, krwatch, LAPTOP)
    sources = page.evaluate(
        "Array.from(document.querySelectorAll('#sources tr'))"
        ".map((row) => row.cells[0].textContent)"
    )
    blast = page.evaluate(
        "document.querySelectorAll('#alerts td.blast').length"
        " === document.querySelectorAll('#alerts tr').length"
        " || document.querySelector('#alerts td.empty') !== null"
    )
    assert sources == ["taxi_feed", "ad_exchange", "brand_mentions"]
    assert blast is True
    assert page.problems() == []


def test_status_page_fits_phone_width(browser: DevTools, krwatch: Krwatch) -> None:
    evaluated_key_results(krwatch)
    page = open_page(browser, krwatch, PHONE)
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth,"
        f" Math.max(...{CARDS}.map((card) => card.getBoundingClientRect().right))]"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(ARTIFACTS / "status-page-phone.png")
    scroll_width, viewport_width, card_right = widths
    assert scroll_width <= viewport_width
    assert card_right <= viewport_width
    assert page.problems() == []


def test_status_page_refreshes_without_reload(
    browser: DevTools, krwatch: Krwatch
) -> None:
    evaluated_key_results(krwatch)
    page = open_page(browser, krwatch, LAPTOP)
    page.evaluate("window.loadMarker = 'still here'; true")
    first = page.evaluate("document.body.dataset.renderedAt")
    page.wait_for(
        f"document.body.dataset.renderedAt !== {json.dumps(first)}",
        "the page to fetch the API again",
    )
    marker = page.evaluate("window.loadMarker")
    updated = page.evaluate("document.getElementById('updated').className")
    assert marker == "still here"
    assert "stale" not in updated
    assert page.problems() == []


def test_page_problems_report_console_errors(
    browser: DevTools, krwatch: Krwatch
) -> None:
    page = open_page(browser, krwatch, LAPTOP)
    page.evaluate("console.error('probe message'); true")
    page.evaluate("fetch('/static/missing.js'); true")

    def reported(text: str) -> bool:
        page.evaluate("true")
        return any(text in problem for problem in page.problems())

    assert wait_for(lambda: reported("probe message"), 10, "the console error")
    assert wait_for(lambda: reported("missing.js"), 10, "the failed load")
