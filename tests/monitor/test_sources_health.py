from __future__ import annotations

import json
import sqlite3
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from prometheus_client import CollectorRegistry

from exporters.notification import Notification
from monitor.config.model import Config, KPIConfig, SourceConfig
from monitor.errors import SourceError
from monitor.health import (
    SOURCE_ALERT,
    SourceAlerts,
    SourceHealth,
    SourceHealthCollector,
)
from monitor.secrets import Secret
from monitor.series import Sample, SeriesKey
from monitor.sources.base import Source, SourceContext, SourceSettings
from monitor.sources.http_json import (
    HttpJsonQuery,
    HttpJsonSettings,
    HttpJsonSource,
    PaginationSettings,
)
from monitor.sources.prometheus import (
    PrometheusQuery,
    PrometheusSettings,
    PrometheusSource,
)
from monitor.sources.timestamps import parse_timestamp, time_zone
from monitor.store import Store


def make_context(tmp_path: Path, last: dict[str, float] | None = None) -> SourceContext:
    return SourceContext(
        config=Config(path=tmp_path / "config.yaml"),
        session=requests.Session(),
        meta_get=lambda _: None,
        meta_set=lambda _key, _value: None,
        last_timestamps=dict(last or {}),
    )


class ScriptedSource(Source):
    """Return the samples a test queues, or raise the error it queues."""

    settings_class = SourceSettings
    query_class = SourceSettings

    def __init__(
        self, tmp_path: Path, context: SourceContext | None = None, **settings: Any
    ) -> None:
        config = SourceConfig(
            name="scripted",
            type="scripted",
            interval=timedelta(seconds=60),
            settings=SourceSettings(**settings),
        )
        super().__init__(
            config,
            [KPIConfig(name="orders", source="scripted")],
            context or make_context(tmp_path),
        )
        self.next: list[Sample] | SourceError = []

    def fetch(self, kpi: KPIConfig, now: float) -> list[Sample]:
        if isinstance(self.next, SourceError):
            raise self.next
        return list(self.next)


def point(timestamp: float, value: float) -> Sample:
    return Sample(SeriesKey("orders"), timestamp, value)


def test_delay_holds_closing_period_until_it_closes(tmp_path: Path) -> None:
    source = ScriptedSource(tmp_path, delay=timedelta(hours=1))
    day = 86_400.0
    source.next = [point(0.0, 100.0), point(day, 40.0)]
    first = source.poll(day + 600)
    assert [s.value for s in first.samples] == [100.0]
    assert first.held_back == 1

    # The open day grows; the newer read replaces the held sample.
    source.next = [point(day, 90.0)]
    assert source.poll(day + 1800).samples == []
    source.next = []
    released = source.poll(day + 3600)
    assert [(s.timestamp, s.value) for s in released.samples] == [(day, 90.0)]
    assert released.held_back == 0


def store_context(tmp_path: Path, store: Store) -> SourceContext:
    return SourceContext(
        config=Config(path=tmp_path / "config.yaml"),
        session=requests.Session(),
        meta_get=store.meta_get,
        meta_set=store.meta_set,
    )


def test_delay_held_samples_survive_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "krwatch.db")
    before = ScriptedSource(
        tmp_path, store_context(tmp_path, store), delay=timedelta(hours=1)
    )
    before.next = [point(0.0, 100.0), point(3000.0, 40.0)]
    assert before.poll(3600.0).held_back == 1
    store.close()

    store = Store(tmp_path / "krwatch.db")
    after = ScriptedSource(
        tmp_path, store_context(tmp_path, store), delay=timedelta(hours=1)
    )
    released = after.poll(7200.0)
    store.close()

    assert [(s.key, s.timestamp, s.value) for s in released.samples] == [
        (SeriesKey("orders"), 3000.0, 40.0)
    ]
    assert released.held_back == 0


def test_delay_unreadable_held_samples_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "krwatch.db")
    store.meta_set("source_held:scripted", '[["orders", [], "soon"]]')

    source = ScriptedSource(
        tmp_path, store_context(tmp_path, store), delay=timedelta(hours=1)
    )
    result = source.poll(7200.0)
    store.close()

    assert result.samples == []
    assert result.held_back == 0
    assert "held-back samples are unreadable" in caplog.text


def test_delay_zero_passes_future_samples(tmp_path: Path) -> None:
    source = ScriptedSource(tmp_path)
    source.next = [point(2000.0, 1.0)]
    assert [s.value for s in source.poll(1000.0).samples] == [1.0]


def test_duplicate_timestamps_keep_last_and_warn(tmp_path: Path) -> None:
    source = ScriptedSource(tmp_path)
    source.next = [point(10.0, 1.0), point(10.0, 2.0), point(20.0, 3.0)]
    result = source.poll(100.0)
    assert [(s.timestamp, s.value) for s in result.samples] == [
        (10.0, 2.0),
        (20.0, 3.0),
    ]
    assert [e.reason for e in result.errors] == ["duplicate_timestamp"]
    assert not result.failed


def test_failing_for_defaults_to_three_intervals(tmp_path: Path) -> None:
    assert ScriptedSource(tmp_path).failing_for_seconds == 180.0
    custom = ScriptedSource(tmp_path, failing_for=timedelta(minutes=10))
    assert custom.failing_for_seconds == 600.0


@pytest.mark.parametrize(
    ("raw", "zone", "expected"),
    [
        ("2024-03-31T02:30:00", "Europe/Berlin", "2024-03-31T01:30:00+00:00"),
        ("2024-10-27T02:30:00", "Europe/Berlin", "2024-10-27T00:30:00+00:00"),
        ("2024-10-27T02:30:00+01:00", "Europe/Berlin", "2024-10-27T01:30:00+00:00"),
        (1_700_000_000_123, "UTC", "2023-11-14T22:13:20.123000+00:00"),
        ("1700000000123", "UTC", "2023-11-14T22:13:20.123000+00:00"),
        (datetime(2024, 7, 1, 12), "America/New_York", "2024-07-01T16:00:00+00:00"),
    ],
    ids=[
        "spring-gap",
        "autumn-ambiguous-first",
        "autumn-explicit-offset",
        "epoch-ms",
        "epoch-ms-string",
        "naive-datetime",
    ],
)
def test_parse_timestamp_zones_and_dst(raw: object, zone: str, expected: str) -> None:
    seconds = parse_timestamp(raw, "t", time_zone(zone, "test"))
    assert datetime.fromtimestamp(seconds, UTC).isoformat() == expected


# Source alert lifecycle against a real store and the outbox enqueue contract.


class Outbox:
    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def enqueue(
        self, connection: sqlite3.Connection, notification: Notification
    ) -> None:
        assert isinstance(connection, sqlite3.Connection)
        self.sent.append(notification)


def fail(health: SourceHealth, now: float) -> None:
    health.record_failure(now, "timeout", "Source 'shop' timed out after 10s.")


def test_source_alert_fires_once_after_failing_for(tmp_path: Path) -> None:
    store = Store(tmp_path / "krwatch.db")
    outbox = Outbox()
    alerts = SourceAlerts(store, outbox.enqueue, "http://127.0.0.1:9464")
    health = SourceHealth(name="shop", type="http_json")
    for poll in range(6):
        fail(health, 1000.0 + 60 * poll)
        alerts.update(health, 180.0)
        expected = "pending" if poll < 3 else "firing"
        assert health.alert_state == expected, poll
    assert [n.state for n in outbox.sent] == ["firing"]
    firing = outbox.sent[0]
    assert firing.alert == SOURCE_ALERT
    assert dict(firing.labels)["source"] == "shop"
    assert firing.active_at == datetime.fromtimestamp(1000.0, UTC)
    assert "timed out" in firing.annotations["description"]

    health.record_success(1400.0, inserted=1)
    alerts.update(health, 180.0)
    assert [n.state for n in outbox.sent] == ["firing", "resolved"]
    assert alerts.states == {}
    store.close()


def test_source_alert_state_survives_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "krwatch.db")
    outbox = Outbox()
    health = SourceHealth(name="shop", type="sql")
    alerts = SourceAlerts(store, outbox.enqueue, "http://127.0.0.1:9464")
    fail(health, 1000.0)
    alerts.update(health, 180.0)

    restarted = SourceAlerts(store, outbox.enqueue, "http://127.0.0.1:9464")
    assert restarted.states["shop"].active_at == 1000.0
    fail(health, 1180.0)
    restarted.update(health, 180.0)
    assert [n.state for n in outbox.sent] == ["firing"]

    again = SourceAlerts(store, outbox.enqueue, "http://127.0.0.1:9464")
    fail(health, 1240.0)
    again.update(health, 180.0)
    assert [n.state for n in outbox.sent] == ["firing"]
    store.close()


def test_source_alert_short_failure_sends_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "krwatch.db")
    outbox = Outbox()
    alerts = SourceAlerts(store, outbox.enqueue, "http://127.0.0.1:9464")
    health = SourceHealth(name="shop", type="csv")
    fail(health, 1000.0)
    alerts.update(health, 180.0)
    health.record_success(1060.0, inserted=0)
    alerts.update(health, 180.0)
    assert outbox.sent == []
    assert alerts.states == {}
    store.close()


def test_source_alert_retire_resolves_removed_source(tmp_path: Path) -> None:
    store = Store(tmp_path / "krwatch.db")
    outbox = Outbox()
    alerts = SourceAlerts(store, outbox.enqueue, "http://127.0.0.1:9464")
    health = SourceHealth(name="shop", type="csv")
    for poll in range(4):
        fail(health, 1000.0 + 60 * poll)
        alerts.update(health, 180.0)
    assert alerts.retire(["shop"]) == 1
    assert [n.state for n in outbox.sent] == ["firing", "resolved"]
    store.close()


def test_health_collector_exports_failing_since() -> None:
    registry = CollectorRegistry()
    failing = SourceHealth(name="shop", type="sql")
    failing.record_failure(1234.0, "timeout", "timed out")
    failing.record_failure(1294.0, "timeout", "timed out")
    healthy = SourceHealth(name="crm", type="jira")
    healthy.record_success(1300.0, inserted=3)
    registry.register(SourceHealthCollector(lambda: [failing, healthy]))
    labels = {"source": "shop", "type": "sql"}
    since = registry.get_sample_value(
        "krwatch_source_failing_since_timestamp_seconds", labels
    )
    assert since == 1234.0
    assert (
        registry.get_sample_value("krwatch_source_consecutive_failures", labels) == 2.0
    )
    assert (
        registry.get_sample_value(
            "krwatch_source_failing_since_timestamp_seconds",
            {"source": "crm", "type": "jira"},
        )
        is None
    )


def test_health_to_dict_lists_failure_fields() -> None:
    health = SourceHealth(name="shop", type="sql")
    health.record_failure(50.0, "query_failed", "KPI 'x': the query failed.")
    record = health.to_dict()
    assert record["up"] is False
    assert record["failing_since"] == 50.0
    assert record["last_error_reason"] == "query_failed"
    assert record["consecutive_failures"] == 1
    assert record["last_success"] is None


# http_json pagination and auth, prometheus backfill.


def http_source(
    tmp_path: Path, url: str, query: HttpJsonQuery, **settings: Any
) -> HttpJsonSource:
    config = SourceConfig(
        name="api",
        type="http_json",
        settings=HttpJsonSettings(url=Secret(url), **settings),
    )
    kpi = KPIConfig(name="orders", source="api", query=query)
    return HttpJsonSource(config, [kpi], make_context(tmp_path))


ITEMS = HttpJsonQuery(items="data", value="n", labels={"shop": "shop"})


def test_http_json_follows_next_links(tmp_path: Path, local_server) -> None:
    local_server.json(
        "/p1", {"data": [{"shop": "a", "n": 1}], "links": {"next": "/p2"}}
    )
    local_server.json(
        "/p2",
        {"data": [{"shop": "b", "n": 2}], "links": {"next": local_server.url + "/p3"}},
    )
    local_server.json("/p3", {"data": [{"shop": "c", "n": 3}], "links": {"next": None}})
    source = http_source(
        tmp_path,
        local_server.url + "/p1",
        ITEMS,
        pagination=PaginationSettings(next_url="links.next"),
    )
    result = source.poll(0.0)
    assert result.errors == []
    assert [s.value for s in result.samples] == [1.0, 2.0, 3.0]


def test_http_json_page_parameter_stops_at_empty(tmp_path: Path, local_server) -> None:
    def page(request: dict[str, Any]) -> tuple[int, str, bytes]:
        number = int(request["path"].split("page=")[1])
        data = [{"shop": f"s{number}", "n": number}] if number <= 3 else []
        return 200, "application/json", json.dumps({"data": data}).encode()

    local_server.replies["/list"] = page
    source = http_source(
        tmp_path,
        local_server.url + "/list",
        ITEMS,
        pagination=PaginationSettings(page_parameter="page", page_items="data"),
    )
    assert [s.value for s in source.poll(0.0).samples] == [1.0, 2.0, 3.0]
    assert len(local_server.requests) == 4


def test_http_json_page_limit_keeps_read_pages(tmp_path: Path, local_server) -> None:
    local_server.json("/loop", {"data": [{"shop": "a", "n": 1}], "next": "/loop2"})
    local_server.json("/loop2", {"data": [{"shop": "b", "n": 2}], "next": "/loop3"})
    source = http_source(
        tmp_path,
        local_server.url + "/loop",
        ITEMS,
        pagination=PaginationSettings(next_url="next", max_pages=2),
    )
    result = source.poll(0.0)
    assert [s.value for s in result.samples] == [1.0, 2.0]
    assert [e.reason for e in result.errors] == ["page_limit"]
    assert not result.failed


def test_pagination_needs_exactly_one_mode() -> None:
    with pytest.raises(ValueError, match="exactly one of pagination.next_url"):
        PaginationSettings()
    with pytest.raises(ValueError, match="needs pagination.page_items"):
        PaginationSettings(page_parameter="page")


@pytest.mark.parametrize(
    ("settings", "header"),
    [
        ({"bearer_token": Secret("tok")}, "Bearer tok"),
        ({"username": "svc", "password": Secret("pw")}, "Basic c3ZjOnB3"),
    ],
    ids=["bearer", "basic"],
)
def test_http_json_sends_auth(
    tmp_path: Path, local_server, settings: dict[str, Any], header: str
) -> None:
    local_server.json("/v", {"value": 1})
    http_source(
        tmp_path, local_server.url + "/v", HttpJsonQuery(value="value"), **settings
    ).poll(0.0)
    assert local_server.requests[0]["headers"]["Authorization"] == header


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 whose certificate a private CA signed."""

    def run(*args: str) -> None:
        subprocess.run(
            ["openssl", *args], check=True, capture_output=True, cwd=tmp_path
        )

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=krwatch test CA",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (tmp_path / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"value": 7}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}/v", tmp_path / "ca.pem"
    httpd.shutdown()
    httpd.server_close()


def test_http_json_trusts_ca_file(tmp_path: Path, tls_server: tuple[str, Path]) -> None:
    url, ca = tls_server
    query = HttpJsonQuery(value="value")
    untrusted = http_source(tmp_path, url, query).poll(0.0)
    assert [e.reason for e in untrusted.errors] == ["tls"]
    trusted = http_source(tmp_path, url, query, ca_file=Path(ca.name)).poll(0.0)
    assert trusted.errors == []
    assert [s.value for s in trusted.samples] == [7.0]


def test_prometheus_backfill_then_instant(tmp_path: Path, local_server) -> None:
    now = 1_000_000.0
    range_calls: list[dict[str, str]] = []

    def query_range(request: dict[str, Any]) -> tuple[int, str, bytes]:
        params = dict(parse_qsl(urlsplit(request["path"]).query))
        range_calls.append(params)
        start, end, step = (
            float(params["start"]),
            float(params["end"]),
            float(params["step"]),
        )
        values = []
        t = start
        while t <= end:
            values.append([t, str(t / 1000)])
            t += step
        body = {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [{"metric": {"job": "shop"}, "values": values}],
            },
        }
        return 200, "application/json", json.dumps(body).encode()

    local_server.replies["/api/v1/query_range"] = query_range
    local_server.json(
        "/api/v1/query",
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": {"job": "shop"}, "value": [now + 60, "5"]}],
            },
        },
    )
    settings = PrometheusSettings(
        url=local_server.url, backfill=timedelta(hours=1), step=timedelta(minutes=5)
    )
    config = SourceConfig(name="prom", type="prometheus", settings=settings)
    kpi = KPIConfig(
        name="orders", source="prom", query=PrometheusQuery(promql="sum(orders)")
    )
    # The store already contains samples up to 20 minutes ago.
    source = PrometheusSource(
        config, [kpi], make_context(tmp_path, {"orders": now - 1200})
    )
    first = source.poll(now)
    assert [s.timestamp for s in first.samples] == [
        now - 900,
        now - 600,
        now - 300,
        now,
    ]
    assert range_calls[0]["step"] == "300"
    second = source.poll(now + 60)
    assert [s.value for s in second.samples] == [5.0]
    assert len(range_calls) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "html_response"),
        (
            b'{"status": "success", "data": {"resultType": "vector", "result": [',
            "invalid_json",
        ),
        (
            b'{"status": "success", "data": {"resultType": "vector", "result": []}}',
            "empty_result",
        ),
        (
            b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}}',
            "invalid_value",
        ),
        (
            b'{"status": "error", "errorType": "bad_data", "error": "parse error"}',
            "query_failed",
        ),
    ],
    ids=["html", "truncated", "empty", "nan", "query-error"],
)
def test_prometheus_rejects_bad_responses(
    tmp_path: Path, local_server, body: bytes, reason: str
) -> None:
    local_server.raw("/api/v1/query", 200, "application/json", body)
    config = SourceConfig(
        name="prom",
        type="prometheus",
        settings=PrometheusSettings(url=local_server.url),
    )
    kpi = KPIConfig(name="orders", source="prom", query=PrometheusQuery(promql="up"))
    result = PrometheusSource(config, [kpi], make_context(tmp_path)).poll(0.0)
    assert result.failed
    assert [e.reason for e in result.errors] == [reason]
