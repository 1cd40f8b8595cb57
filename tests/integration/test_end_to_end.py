"""krwatch as a subprocess with a real Prometheus, a KPI API and a webhook."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration._processes import (
    REPOSITORY,
    Krwatch,
    Prometheus,
    Recorder,
    free_port,
    get_text,
    recorder,
    require_binary,
    wait_for,
)

pytestmark = pytest.mark.integration

RULES = """
groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: OpenOrdersHigh
        expr: kpi("open_orders") > 100
        labels: {severity: warning}
        annotations:
          summary: "Open orders in {{ labels.region }} are {{ value }}."
      - alert: RidershipForecastMiss
        key_results: [weekly_passengers]
        attainment_below: 0.5
        labels: {severity: critical}
        annotations:
          summary: "P(attain) is {{ key_result.attainment_probability | percent }}."
"""


def write_config(
    work: Path, port: int, kpi_api: str, webhook: str, prometheus: str
) -> Path:
    taxi = REPOSITORY / "examples" / "data" / "nyc_taxi.csv"
    config = f"""
server:
  listen: 127.0.0.1:{port}
storage:
  path: {work / "krwatch.db"}
evaluation:
  interval: 1s
sources:
  - name: kpi_api
    type: http_json
    interval: 1s
    timeout: 2s
    url: {kpi_api}/kpis
  - name: prom
    type: prometheus
    interval: 1s
    timeout: 2s
    url: {prometheus}
  - name: taxi
    type: csv
    interval: 1s
    path: {taxi}
    timestamp_format: "%Y-%m-%d %H:%M:%S"
    replay:
      start: "2015-01-12T00:00:00"
kpis:
  - name: open_orders
    source: kpi_api
    query:
      items: "data"
      value: "open"
      labels: {{region: "region"}}
  - name: krwatch_scrape_up
    source: prom
    query:
      promql: 'up{{job="krwatch"}}'
  - name: taxi_trips
    source: taxi
objectives:
  - name: ridership
    owner: mobility
    key_results:
      - name: weekly_passengers
        kpi: taxi_trips
        measure: cumulative
        direction: increase
        baseline: 0
        target: 9000000
        period: week
receivers:
  - name: hook
    type: webhook
    url: {webhook}/hook
    timeout: 2s
route:
  receiver: hook
  group_wait: 0s
  group_by: ["..."]
rule_files: [rules.yaml]
"""
    (work / "rules.yaml").write_text(RULES)
    path = work / "krwatch.yaml"
    path.write_text(config)
    return path


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    require_binary("prometheus")
    port = free_port()
    with recorder() as kpi_api, recorder() as webhook:
        kpi_api.payload = {
            "data": [{"region": "eu", "open": 150}, {"region": "us", "open": 50}]
        }
        prometheus = Prometheus(tmp_path, f"127.0.0.1:{port}")
        prometheus.start()
        config = write_config(tmp_path, port, kpi_api.url, webhook.url, prometheus.url)
        krwatch = Krwatch(config, port, tmp_path / "krwatch.log")
        try:
            krwatch.start()
            yield {
                "krwatch": krwatch,
                "prometheus": prometheus,
                "webhook": webhook,
                "kpi_api": kpi_api,
                "config": config,
            }
        finally:
            krwatch.stop()
            prometheus.stop()


def forecast_miss(webhook: Recorder) -> dict[str, Any] | None:
    for body in webhook.json_bodies():
        for notification in body["notifications"]:
            if notification["alert"] == "RidershipForecastMiss":
                return dict(notification)
    return None


def test_kpi_and_key_result_series_reach_prometheus(stack: dict[str, Any]) -> None:
    prometheus: Prometheus = stack["prometheus"]
    orders = wait_for(
        lambda: prometheus.query('krwatch_kpi_value{kpi="open_orders"}'),
        60,
        "open_orders in Prometheus",
    )
    assert {r["metric"]["region"]: float(r["value"][1]) for r in orders} == {
        "eu": 150.0,
        "us": 50.0,
    }
    probability = wait_for(
        lambda: prometheus.query(
            'krwatch_key_result_attainment_probability{key_result="weekly_passengers"}'
        ),
        60,
        "the key result's attainment probability in Prometheus",
    )
    assert 0.0 <= float(probability[0]["value"][1]) < 0.5
    # Scrapes before krwatch listens give up == 0, so wait for a successful one.
    scrape = wait_for(
        lambda: prometheus.query('krwatch_kpi_value{kpi="krwatch_scrape_up"} == 1'),
        60,
        "the prometheus source's KPI to read a successful scrape",
    )
    assert scrape[0]["metric"]["kpi"] == "krwatch_scrape_up"
    firing = wait_for(
        lambda: prometheus.query(
            'krwatch_alerts{alertstate="firing",alertname="OpenOrdersHigh"}'
        ),
        60,
        "the firing alert",
    )
    assert [r["metric"]["region"] for r in firing] == ["eu"]


def test_webhook_receives_forecast_miss(stack: dict[str, Any]) -> None:
    notification = wait_for(
        lambda: forecast_miss(stack["webhook"]), 60, "the forecast-miss webhook"
    )
    assert notification["state"] == "firing"
    assert notification["labels"]["key_result"] == "weekly_passengers"
    assert notification["labels"]["severity"] == "critical"
    context = notification["key_result"]
    assert context["target"] == 9000000
    assert context["attainment_probability"] < 0.5
    assert context["shortfall"] > 0
    assert context["forecast"] < context["target"]
    assert notification["annotations"]["summary"].startswith("P(attain) is ")
    body = stack["webhook"].json_bodies()[0]
    assert body["version"] == "1"


def test_threshold_alert_fires_only_for_matching_series(stack: dict[str, Any]) -> None:
    def high_orders() -> list[dict[str, Any]]:
        return [
            n
            for body in stack["webhook"].json_bodies()
            for n in body["notifications"]
            if n["alert"] == "OpenOrdersHigh"
        ]

    notifications = wait_for(high_orders, 60, "the OpenOrdersHigh webhook")
    assert [n["labels"]["region"] for n in notifications] == ["eu"]
    assert notifications[0]["annotations"]["summary"] == "Open orders in eu are 150.0."


def test_metrics_pass_promtool(stack: dict[str, Any]) -> None:
    promtool = require_binary("promtool")
    krwatch: Krwatch = stack["krwatch"]
    wait_for(
        lambda: "krwatch_key_result_forecast{" in get_text(krwatch.url + "/metrics"),
        60,
        "key result metrics",
    )
    text = get_text(krwatch.url + "/metrics")
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def test_bad_kpi_responses_keep_daemon_serving(stack: dict[str, Any]) -> None:
    kpi_api: Recorder = stack["kpi_api"]
    krwatch: Krwatch = stack["krwatch"]
    kpi_api.payload = {"data": [{"region": "eu", "open": "N/A"}]}
    wait_for(
        lambda: (
            'krwatch_source_errors_total{reason="invalid_value",source="kpi_api"}'
            in get_text(krwatch.url + "/metrics")
        ),
        30,
        "the rejected-value counter",
    )
    kpi_api.status = 500
    wait_for(
        lambda: (
            'krwatch_source_errors_total{reason="http_status",source="kpi_api"}'
            in get_text(krwatch.url + "/metrics")
        ),
        30,
        "the HTTP status counter",
    )
    assert get_text(krwatch.url + "/-/healthy")
    sources = {
        s["name"]: s
        for s in __import__("json").loads(get_text(krwatch.url + "/api/v1/sources"))[
            "data"
        ]["sources"]
    }
    assert sources["kpi_api"]["up"] is False
    assert sources["kpi_api"]["last_error_reason"] == "http_status"
    assert sources["taxi"]["up"] is True
