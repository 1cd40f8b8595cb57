from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from monitor.config.model import Config, KPIConfig, SourceConfig
from monitor.errors import SourceError
from monitor.secrets import Secret
from monitor.sources import SourceContext
from monitor.sources.base import check_value
from monitor.sources.csv import CsvQuery, CsvSettings, CsvSource, ReplaySettings
from monitor.sources.http_json import HttpJsonQuery, HttpJsonSettings, HttpJsonSource
from monitor.sources.prometheus import (
    PrometheusQuery,
    PrometheusSettings,
    PrometheusSource,
)
from monitor.sources.timestamps import parse_timestamp


def make_context(tmp_path: Path, clock: float = 1_000_000.0) -> SourceContext:
    meta: dict[str, str] = {}
    return SourceContext(
        config=Config(path=tmp_path / "config.yaml"),
        session=requests.Session(),
        meta_get=meta.get,
        meta_set=meta.__setitem__,
        clock=lambda: clock,
    )


def csv_source(
    tmp_path: Path,
    settings: CsvSettings,
    query: CsvQuery,
    context: SourceContext | None = None,
) -> CsvSource:
    config = SourceConfig(name="file", type="csv", settings=settings)
    kpi = KPIConfig(name="orders", source="file", query=query)
    return CsvSource(config, [kpi], context or make_context(tmp_path))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(3, 3.0), ("2.5", 2.5), (" 7 ", 7.0), (-1e3, -1000.0)],
    ids=["int", "numeric-string", "padded-string", "negative"],
)
def test_check_value_accepts_numbers(raw: object, expected: float) -> None:
    assert check_value(raw, "v") == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "is null"),
        ("N/A", "is the string 'N/A'"),
        (True, "is a boolean"),
        (float("nan"), "not a finite number"),
        ("inf", "not a finite number"),
        ({"a": 1}, "is a dict"),
    ],
    ids=["null", "text", "bool", "nan", "inf-string", "object"],
)
def test_check_value_rejects_non_numbers(raw: object, message: str) -> None:
    with pytest.raises(SourceError, match=message) as caught:
        check_value(raw, "v")
    assert caught.value.reason == "invalid_value"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1_700_000_000, 1_700_000_000.0),
        (1_700_000_000_000, 1_700_000_000.0),
        ("2024-03-31T01:30:00Z", datetime(2024, 3, 31, 1, 30, tzinfo=UTC).timestamp()),
        (
            "2024-03-31T03:30:00+02:00",
            datetime(2024, 3, 31, 1, 30, tzinfo=UTC).timestamp(),
        ),
        ("2024-03-31 01:30:00", datetime(2024, 3, 31, 1, 30, tzinfo=UTC).timestamp()),
    ],
    ids=["epoch-seconds", "epoch-milliseconds", "iso-z", "iso-offset", "iso-naive-utc"],
)
def test_parse_timestamp_forms(raw: object, expected: float) -> None:
    assert parse_timestamp(raw, "t") == expected


def test_csv_reads_rows_up_to_now_once(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        "timestamp,value\n2024-01-01 00:00:00,5\n2024-01-01 01:00:00,6\n2030-01-01 00:00:00,7\n"
    )
    source = csv_source(tmp_path, CsvSettings(path=path), CsvQuery())
    now = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    first = source.poll(now)
    second = source.poll(now)
    assert [s.value for s in first.samples] == [5.0, 6.0]
    assert first.samples[0].timestamp == datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    assert second.samples == []


def test_csv_naive_times_use_source_timezone_across_dst(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("timestamp,value\n2024-03-31 01:00:00,1\n2024-03-31 03:00:00,2\n")
    settings = CsvSettings(path=path, timezone="Europe/Berlin")
    samples = csv_source(tmp_path, settings, CsvQuery()).poll(2e9).samples
    assert samples[1].timestamp - samples[0].timestamp == 3600.0


def test_csv_label_columns_give_series(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("timestamp,region,orders\n1700000000,eu,5\n1700000000,us,7\n")
    samples = (
        csv_source(
            tmp_path,
            CsvSettings(path=path),
            CsvQuery(value_column="orders", label_columns=("region",)),
        )
        .poll(2e9)
        .samples
    )
    assert {s.key.labels: s.value for s in samples} == {
        (("region", "eu"),): 5.0,
        (("region", "us"),): 7.0,
    }


def test_csv_rejects_bad_values_but_keeps_good_rows(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        "timestamp,value\n1700000000,5\n1700000060,N/A\n1700000120,inf\n1700000180,8\n"
    )
    result = csv_source(tmp_path, CsvSettings(path=path), CsvQuery()).poll(2e9)
    assert [s.value for s in result.samples] == [5.0, 8.0]
    assert [e.reason for e in result.errors] == ["invalid_value", "invalid_value"]
    assert "rejected 2 rows" in str(result.errors[0])
    assert "line 3 of" in str(result.errors[0])
    assert "line 4 of" in str(result.errors[0])


def test_csv_missing_column_names_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("timestamp,amount\n1700000000,5\n")
    result = csv_source(tmp_path, CsvSettings(path=path), CsvQuery()).poll(2e9)
    assert result.samples == []
    assert "has no column 'value'; its columns are ['timestamp', 'amount']" in str(
        result.errors[0]
    )


def test_csv_missing_file_is_a_poll_error(tmp_path: Path) -> None:
    result = csv_source(
        tmp_path, CsvSettings(path=tmp_path / "nope.csv"), CsvQuery()
    ).poll(2e9)
    assert result.errors[0].reason == "file_unreadable"


def test_csv_replay_maps_history_onto_present(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        "timestamp,value\n2014-07-01 00:00:00,1\n2014-07-01 00:30:00,2\n2014-07-01 01:00:00,3\n"
    )
    start = datetime(2014, 7, 1, 0, 30, tzinfo=UTC)
    context = make_context(tmp_path, clock=5000.0)
    settings = CsvSettings(
        path=path,
        timestamp_format="%Y-%m-%d %H:%M:%S",
        replay=ReplaySettings(start=start, speed=60),
    )
    source = csv_source(tmp_path, settings, CsvQuery(), context)
    early = source.poll(5000.0).samples
    assert [(s.timestamp, s.value) for s in early] == [
        (5000.0 - 30.0, 1.0),
        (5000.0, 2.0),
    ]
    later = source.poll(5030.0).samples
    assert [(s.timestamp, s.value) for s in later] == [(5030.0, 3.0)]


def test_csv_replay_anchor_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("timestamp,value\n2014-07-01 00:00:00,1\n2014-07-01 01:00:00,2\n")
    settings = CsvSettings(
        path=path, replay=ReplaySettings(start=datetime(2014, 7, 1, tzinfo=UTC))
    )
    context = make_context(tmp_path, clock=100.0)
    csv_source(tmp_path, settings, CsvQuery(), context).poll(100.0)
    restarted = SourceContext(
        config=context.config,
        session=context.session,
        meta_get=context.meta_get,
        meta_set=context.meta_set,
        clock=lambda: 9999.0,
    )
    samples = (
        csv_source(tmp_path, settings, CsvQuery(), restarted)
        .poll(100.0 + 3600.0)
        .samples
    )
    assert [s.timestamp for s in samples] == [100.0, 3700.0]


def http_source(
    url: str, query: HttpJsonQuery, timeout: float = 2.0, **settings: object
) -> HttpJsonSource:
    config = SourceConfig(
        name="api",
        type="http_json",
        timeout=timedelta(seconds=timeout),
        settings=HttpJsonSettings(url=Secret(url), **settings),  # type: ignore[arg-type]
    )
    return HttpJsonSource(
        config,
        [KPIConfig(name="orders", source="api", query=query)],
        make_context(Path(".")),
    )


def test_http_json_reads_items_labels_and_timestamps(local_server) -> None:
    local_server.json(
        "/kpis",
        {
            "data": [
                {"r": "eu", "n": 5, "at": "2024-01-01T00:00:00Z"},
                {"r": "us", "n": "7", "at": 1704067200000},
            ]
        },
    )
    query = HttpJsonQuery(
        items="data", value="n", timestamp="at", labels={"region": "r"}
    )
    samples = http_source(local_server.url + "/kpis", query).poll(0.0).samples
    assert [(dict(s.key.labels)["region"], s.value, s.timestamp) for s in samples] == [
        ("eu", 5.0, 1704067200.0),
        ("us", 7.0, 1704067200.0),
    ]


def test_http_json_sends_headers_and_post_body(local_server) -> None:
    local_server.json("/q", {"value": 1})
    source = http_source(
        local_server.url + "/q",
        HttpJsonQuery(value="value"),
        method="POST",
        headers={"Authorization": Secret("Bearer t0k")},
        body={"period": "current"},
    )
    assert source.poll(0.0).errors == []
    request = local_server.requests[-1]
    assert request["method"] == "POST"
    assert request["headers"]["Authorization"] == "Bearer t0k"
    assert request["body"] == b'{"period": "current"}'


@pytest.mark.parametrize(
    ("status", "kind", "body", "reason"),
    [
        (200, "text/html", b"<html>login</html>", "html_response"),
        (200, "application/json", b'{"value": ', "invalid_json"),
        (503, "application/json", b'{"value": 1}', "http_status"),
        (200, "application/json", b'{"value": null}', "invalid_value"),
        (200, "application/json", b'{"value": "N/A"}', "invalid_value"),
        (200, "application/json", b'{"value": NaN}', "invalid_value"),
        (200, "application/json", b'{"value": Infinity}', "invalid_value"),
        (200, "application/json", b'{"data": []}', "empty_result"),
        (200, "application/json", b"[" * 200_000 + b"]" * 200_000, "invalid_json"),
        (200, "application/json", b"", "invalid_json"),
    ],
    ids=[
        "html",
        "truncated",
        "status-503",
        "null",
        "string",
        "nan",
        "inf",
        "empty",
        "deep-nesting",
        "empty-body",
    ],
)
def test_http_json_rejects_bad_responses(
    local_server, status: int, kind: str, body: bytes, reason: str
) -> None:
    local_server.raw("/bad", status, kind, body)
    query = (
        HttpJsonQuery(items="data", value="value")
        if reason == "empty_result"
        else HttpJsonQuery(value="value")
    )
    result = http_source(local_server.url + "/bad", query).poll(0.0)
    assert result.samples == []
    assert [e.reason for e in result.errors] == [reason]


def test_http_json_times_out(local_server) -> None:
    def slow(_: dict) -> tuple[int, str, bytes]:
        local_server.release.wait(5)
        return 200, "application/json", b'{"value": 1}'

    local_server.replies["/slow"] = slow
    result = http_source(
        local_server.url + "/slow", HttpJsonQuery(value="value"), timeout=0.3
    ).poll(0.0)
    local_server.release.set()
    assert [e.reason for e in result.errors] == ["timeout"]


def test_http_json_rejects_oversized_response(local_server) -> None:
    local_server.raw(
        "/big", 200, "application/json", b'{"value": 1, "pad": "' + b"x" * 5000 + b'"}'
    )
    result = http_source(
        local_server.url + "/big", HttpJsonQuery(value="value"), max_response_bytes=1000
    ).poll(0.0)
    assert [e.reason for e in result.errors] == ["response_too_large"]


def test_http_json_error_hides_url_token(local_server) -> None:
    result = http_source(
        "http://127.0.0.1:1/k?token=s3cret", HttpJsonQuery(value="v"), timeout=0.5
    ).poll(0.0)
    assert result.errors
    assert "s3cret" not in str(result.errors[0])


def prometheus_source(url: str) -> PrometheusSource:
    config = SourceConfig(
        name="prom", type="prometheus", settings=PrometheusSettings(url=url)
    )
    kpi = KPIConfig(
        name="errors", source="prom", query=PrometheusQuery(promql="sum by (job) (up)")
    )
    return PrometheusSource(config, [kpi], make_context(Path(".")))


def test_prometheus_vector_gives_one_series_per_label_set(local_server) -> None:
    local_server.json(
        "/api/v1/query",
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [
                    {
                        "metric": {"__name__": "up", "job": "a"},
                        "value": [1700000000.5, "1"],
                    },
                    {"metric": {"job": "b"}, "value": [1700000000.5, "NaN"]},
                ],
            },
        },
    )
    result = prometheus_source(local_server.url).poll(1700000000.5)
    assert [(s.key.labels, s.value) for s in result.samples] == [((("job", "a"),), 1.0)]
    assert [e.reason for e in result.errors] == ["invalid_value"]
    assert "query=sum+by+%28job%29+%28up%29" in local_server.requests[-1]["path"]


def test_prometheus_error_status_is_reported(local_server) -> None:
    local_server.json(
        "/api/v1/query",
        {"status": "error", "errorType": "bad_data", "error": "parse error at char 4"},
        status=400,
    )
    result = prometheus_source(local_server.url).poll(0.0)
    assert [e.reason for e in result.errors] == ["http_status"]
