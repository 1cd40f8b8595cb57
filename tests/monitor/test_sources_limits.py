"""Whole-request deadlines and oversized JSON numbers of the HTTP sources."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from monitor.config.model import Config, KPIConfig, SourceConfig
from monitor.errors import SourceError
from monitor.secrets import Secret
from monitor.sources._http import HttpReply, decode_json
from monitor.sources.base import Source, SourceContext
from monitor.sources.http_json import HttpJsonQuery, HttpJsonSettings, HttpJsonSource
from monitor.sources.jira import JiraQuery, JiraSettings, JiraSource
from monitor.sources.prometheus import (
    PrometheusQuery,
    PrometheusSettings,
    PrometheusSource,
)
from monitor.sources.spreadsheet import (
    SpreadsheetQuery,
    SpreadsheetSettings,
    SpreadsheetSource,
)

TIMEOUT_SECONDS = 0.5
MAX_POLL_SECONDS = 2.5
"""A bounded poll ends within the timeout plus one socket wait and slack;
the slow servers below keep sending for about five seconds."""


class SlowServer:
    """An HTTP server on 127.0.0.1 that sends its body in small timed pieces.

    Every reply carries ``body`` as JSON content, written ``piece`` bytes at a
    time with ``pause`` seconds between pieces. Sending stops when the client
    closes the connection or the test ends.
    """

    def __init__(self, body: bytes, piece: int, pause: float) -> None:
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for start in range(0, len(body), piece):
                        self.wfile.write(body[start : start + piece])
                        self.wfile.flush()
                        if server.stop.wait(pause):
                            return
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def padded_json(size: int) -> bytes:
    """A valid JSON document of ``size`` bytes whose ``value`` is 1."""
    head, tail = b'{"value": 1, "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.fixture
def drip() -> Iterator[SlowServer]:
    """One byte every 50 ms: about five seconds for the whole body."""
    server = SlowServer(padded_json(100), piece=1, pause=0.05)
    yield server
    server.close()


def make_context() -> SourceContext:
    meta: dict[str, str] = {}
    return SourceContext(
        config=Config(path=Path("config.yaml")),
        session=requests.Session(),
        meta_get=meta.get,
        meta_set=meta.__setitem__,
    )


def build_source(kind: str, url: str, **options: Any) -> Source:
    """Build a source of ``kind`` with one KPI that reads ``url``."""
    settings: Any
    query: Any
    source_class: type[Source]
    if kind == "http_json":
        settings = HttpJsonSettings(url=Secret(url), **options)
        query, source_class = HttpJsonQuery(value="value"), HttpJsonSource
    elif kind == "prometheus":
        settings = PrometheusSettings(url=url, **options)
        query, source_class = PrometheusQuery(promql="up"), PrometheusSource
    elif kind == "jira":
        settings = JiraSettings(url=url, **options)
        query, source_class = JiraQuery(jql="project = OPS"), JiraSource
    else:
        settings = SpreadsheetSettings(url=Secret(url + "/table.csv"), **options)
        query, source_class = SpreadsheetQuery(), SpreadsheetSource
    config = SourceConfig(
        name="slow",
        type=kind,
        timeout=timedelta(seconds=TIMEOUT_SECONDS),
        settings=settings,
    )
    kpi = KPIConfig(name="orders", source="slow", query=query)
    return source_class(config, [kpi], make_context())


def timed_poll(source: Source) -> tuple[list[SourceError], float]:
    started = time.monotonic()
    result = source.poll(time.time())
    return result.errors, time.monotonic() - started


SOURCE_KINDS = ["http_json", "prometheus", "jira", "spreadsheet"]


@pytest.mark.parametrize("kind", SOURCE_KINDS, ids=SOURCE_KINDS)
def test_http_sources_deadline_bounds_dripping_body(
    drip: SlowServer, kind: str
) -> None:
    errors, elapsed = timed_poll(build_source(kind, drip.url))
    assert elapsed < MAX_POLL_SECONDS
    assert [error.reason for error in errors] == ["timeout"]
    message = str(errors[0])
    assert "Source 'slow'" in message
    assert "timed out: the request and its body took longer than 0.5s" in message
    assert "raise the timeout of the source" in message


def test_http_json_deadline_bounds_large_steady_body() -> None:
    # 64 KiB every 50 ms is fast enough for any per-read timeout, but the
    # whole 6.5 MB body would take about five seconds.
    server = SlowServer(padded_json(100 * 65536), piece=65536, pause=0.05)
    try:
        source = build_source(
            "http_json", server.url, max_response_bytes=100 * 1024 * 1024
        )
        errors, elapsed = timed_poll(source)
    finally:
        server.close()
    assert elapsed < MAX_POLL_SECONDS
    assert [error.reason for error in errors] == ["timeout"]


def test_http_json_body_within_deadline_is_read() -> None:
    server = SlowServer(padded_json(400), piece=100, pause=0.01)
    try:
        result = build_source("http_json", server.url).poll(123.0)
    finally:
        server.close()
    assert result.errors == []
    assert [sample.value for sample in result.samples] == [1.0]


def reply_of(body: bytes) -> HttpReply:
    return HttpReply(
        status=200, headers={"Content-Type": "application/json"}, body=body
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"value": ' + b"7" * 5001 + b"}",
        b"[" + b"1" * 4301 + b"]",
        b'{"value": -' + b"9" * 10000 + b"}",
    ],
    ids=["5001-digits", "just-over-limit", "negative-10000-digits"],
)
def test_decode_json_rejects_integer_over_digit_limit(body: bytes) -> None:
    with pytest.raises(
        SourceError, match=r"integer of more than 4300 digits"
    ) as raised:
        decode_json(reply_of(body), "Source 'api'")
    assert raised.value.reason == "invalid_json"
    message = str(raised.value)
    assert message.startswith("Source 'api' returned JSON")
    assert "set_int_max_str_digits" not in message
    assert "\n" not in message


def test_decode_json_reads_integer_at_digit_limit() -> None:
    assert decode_json(reply_of(b"[" + b"1" * 4300 + b"]"), "x") == [int("1" * 4300)]


def test_http_json_huge_integer_is_invalid_json(local_server: Any) -> None:
    local_server.raw(
        "/big", 200, "application/json", b'{"value": ' + b"1" * 5001 + b"}"
    )
    source = build_source("http_json", local_server.url + "/big")
    result = source.poll(0.0)
    assert result.failed
    assert [error.reason for error in result.errors] == ["invalid_json"]
    assert "Source 'slow'" in str(result.errors[0])


def test_decode_json_still_names_truncated_document() -> None:
    with pytest.raises(SourceError, match="is truncated"):
        decode_json(reply_of(b'{"a": 1'), "x")
