"""The HTTP API of a running Daemon, checked against its OpenAPI document."""

from __future__ import annotations

import json
import math
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi
from prometheus_client import CollectorRegistry
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from monitor.api import blast_radius, build_routes, downstream_kpis
from monitor.config.model import (
    Config,
    KeyResultConfig,
    KPIConfig,
    KPIEdgeConfig,
    ObjectiveConfig,
)
from monitor.daemon import Daemon
from monitor.server import Response, Routes
from rules.lifecycle import AlertState

OPENAPI_PATH = (
    Path(__file__).resolve().parents[2] / "monitor" / "static" / "openapi.json"
)
OPENAPI_URN = "urn:krwatch:openapi"
TOKEN = "test-token-3f9a"
HOUR_SECONDS = 3600.0
WAIT_SECONDS = 20.0


def write_config(folder: Path, *, token: bool = False) -> Path:
    """Write a config with one hourly KPI and three key results around it.

    ``orders_total`` is a cumulative key result far above what the series
    books, so it is forecast to miss. ``orders_level`` is a level key result
    that the series already meets. ``orders_unknown`` selects a series that
    does not exist.
    """
    now = time.time()
    rows = ["timestamp,value"]
    for hour in range(24 * 9, 0, -1):
        moment = now - hour * HOUR_SECONDS
        value = 100.0 + 10.0 * math.sin(hour / 24.0 * 2.0 * math.pi) + hour % 5
        rows.append(f"{moment:.0f},{value:.3f}")
    (folder / "orders.csv").write_text("\n".join(rows) + "\n")
    start = datetime.fromtimestamp(now, UTC) - timedelta(days=4)
    due = start + timedelta(days=7)
    period = f'start: "{start.isoformat()}"\n        due: "{due.isoformat()}"'
    (folder / "rules.yaml").write_text(
        """
groups:
  - name: orders
    interval: 1h
    rules:
      - alert: OrdersLow
        expr: kpi("orders") < 1000
        labels: {severity: warning}
      - alert: OrdersForecastMiss
        key_results: [orders_total]
        attainment_below: 0.5
"""
    )
    token_line = f"  api_token: {TOKEN}\n" if token else ""
    config = folder / "config.yaml"
    config.write_text(
        f"""
server:
  listen: 127.0.0.1:0
{token_line}storage:
  path: krwatch.db
evaluation:
  interval: 1h
sources:
  - name: shop
    type: csv
    interval: 1h
    path: orders.csv
kpis:
  - name: orders
    source: shop
    unit: orders
    query:
      value_column: value
objectives:
  - name: grow
    owner: sales
    key_results:
      - name: orders_total
        kpi: orders
        measure: cumulative
        direction: increase
        baseline: 0
        target: 1000000
        {period}
      - name: orders_level
        kpi: orders
        measure: level
        direction: increase
        baseline: 10
        target: 50
        {period}
      - name: orders_unknown
        kpi: orders
        labels: {{region: eu}}
        measure: level
        direction: decrease
        baseline: 10
        target: 5
        owner: support
        {period}
receivers:
  - name: quiet
    type: log
    path: notifications.log
route:
  receiver: quiet
rule_files:
  - rules.yaml
"""
    )
    return config


def wait_until_evaluated(daemon: Daemon) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        statuses = daemon.key_result_statuses
        if len(statuses) == 3 and "orders" in daemon.evaluator.reports:
            return
        time.sleep(0.05)
    raise AssertionError(
        f"The daemon did not evaluate within {WAIT_SECONDS}s: "
        f"{sorted(daemon.key_result_statuses)}, {sorted(daemon.evaluator.reports)}."
    )


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("api")
    running = Daemon(write_config(folder))
    running.start()
    try:
        wait_until_evaluated(running)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return dict(json.loads(OPENAPI_PATH.read_text()))


def request(
    daemon: Daemon,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    url = f"http://127.0.0.1:{daemon.server.port}{path}"
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def get_json(daemon: Daemon, path: str) -> Any:
    status, _, body = request(daemon, path)
    assert status == 200, body
    return json.loads(body)


def response_schema(
    path: str, method: str = "get", status: str = "200"
) -> dict[str, Any]:
    """Return a schema that points into the OpenAPI document's response schema."""
    escaped = path.replace("~", "~0").replace("/", "~1")
    pointer = (
        f"/paths/{escaped}/{method}/responses/{status}/content/application~1json/schema"
    )
    return {"$ref": f"{OPENAPI_URN}#{pointer}"}


def validate_against(
    document: dict[str, Any], schema: dict[str, Any], data: Any
) -> None:
    """Validate ``data``; refs in the document resolve against the document."""
    registry: Registry[Any] = Registry().with_resource(
        OPENAPI_URN, DRAFT202012.create_resource(document)
    )
    validator = jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.FormatChecker()
    )
    validator.validate(data)


def test_openapi_document_is_valid_openapi_31(openapi: dict[str, Any]) -> None:
    validate_openapi(openapi)
    assert openapi["openapi"] == "3.1.0"


def test_openapi_documents_every_route(daemon: Daemon, openapi: dict[str, Any]) -> None:
    documented = {
        (method.upper(), path.replace("{file}", ""))
        for path, operations in openapi["paths"].items()
        for method in operations
    }
    routed = set(build_routes(daemon).endpoints())
    assert routed - documented == set()
    assert documented - routed == set()


def test_openapi_served_matches_file(daemon: Daemon, openapi: dict[str, Any]) -> None:
    assert get_json(daemon, "/api/v1/openapi.json") == openapi


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/key_results",
        "/api/v1/alerts",
        "/api/v1/rules",
        "/api/v1/kpis",
        "/api/v1/sources",
        "/-/healthy",
        "/-/ready",
    ],
    ids=["key-results", "alerts", "rules", "kpis", "sources", "healthy", "ready"],
)
def test_api_response_matches_openapi(
    daemon: Daemon, openapi: dict[str, Any], path: str
) -> None:
    payload = get_json(daemon, path)
    validate_against(openapi, response_schema(path), payload)


def test_api_schema_rejects_wrong_payload(openapi: dict[str, Any]) -> None:
    schema = response_schema("/api/v1/key_results")
    wrong = {"status": "success", "data": {"key_results": [{"name": "x"}]}}
    with pytest.raises(jsonschema.ValidationError, match="is a required property"):
        validate_against(openapi, schema, wrong)


def test_key_results_sorted_by_risk(daemon: Daemon) -> None:
    results = get_json(daemon, "/api/v1/key_results")["data"]["key_results"]
    names = [result["name"] for result in results]
    assert names == ["orders_total", "orders_level", "orders_unknown"]
    assert results[0]["attainment_probability"] < 0.05
    assert results[1]["attainment_probability"] > 0.95
    assert results[2]["status"] == "insufficient_data"
    assert results[2]["attainment_probability"] is None


def test_key_results_carry_forecast_context(daemon: Daemon) -> None:
    results = get_json(daemon, "/api/v1/key_results")["data"]["key_results"]
    total = results[0]
    assert total["status"] == "off_track"
    assert total["lower_95"] <= total["lower_80"] <= total["forecast"]
    assert total["forecast"] <= total["upper_80"] <= total["upper_95"]
    assert total["shortfall"] == pytest.approx(1_000_000 - total["forecast"])
    assert total["required_run_rate"] > 100 * 24
    assert total["unit"] == "orders"


def test_key_results_chart_cumulative_series(daemon: Daemon) -> None:
    total = get_json(daemon, "/api/v1/key_results")["data"]["key_results"][0]
    chart = total["chart"]
    actual_values = [value for _, value in chart["actual"]]
    assert actual_values == sorted(actual_values)
    assert actual_values[-1] == pytest.approx(total["current"])
    assert chart["glide_path"] == [[chart["start"], 0.0], [chart["due"], 1_000_000.0]]
    assert chart["forecast_path"][0] == [chart["evaluated_at"], total["current"]]
    assert chart["forecast_path"][1] == [chart["due"], total["forecast"]]
    assert chart["band_80"] == [total["lower_80"], total["upper_80"]]
    assert chart["band_95"] == [total["lower_95"], total["upper_95"]]
    expected_now = chart["expected_now"]
    assert expected_now[1] == pytest.approx(1_000_000 * total["expected_progress"])


def test_key_results_points_limits_actual(daemon: Daemon) -> None:
    payload = get_json(daemon, "/api/v1/key_results?points=10")
    for result in payload["data"]["key_results"]:
        assert len(result["chart"]["actual"]) <= 10
    full = get_json(daemon, "/api/v1/key_results")["data"]["key_results"]
    assert len(full[0]["chart"]["actual"]) > 10


@pytest.mark.parametrize(
    "value", ["abc", "1", "0", "99999"], ids=["text", "one", "zero", "too-many"]
)
def test_key_results_points_invalid(daemon: Daemon, value: str) -> None:
    status, _, body = request(daemon, f"/api/v1/key_results?points={value}")
    payload = json.loads(body)
    assert status == 400
    assert payload["status"] == "error"
    assert f"points={value!r} is invalid" in payload["error"]
    assert "from 2 to 2000" in payload["error"]


def test_alerts_carry_blast_radius(daemon: Daemon) -> None:
    alerts = get_json(daemon, "/api/v1/alerts")["data"]["alerts"]
    by_name = {alert["alert"]: alert for alert in alerts}
    assert set(by_name) == {"OrdersLow", "OrdersForecastMiss"}
    assert by_name["OrdersLow"]["state"] == "firing"
    assert by_name["OrdersLow"]["blast_radius"] == {
        "kpis": ["orders"],
        "downstream_kpis": [],
        "key_results": ["orders_level", "orders_total", "orders_unknown"],
    }
    miss = by_name["OrdersForecastMiss"]["blast_radius"]
    assert miss["key_results"] == ["orders_level", "orders_total", "orders_unknown"]
    assert miss["kpis"] == ["orders"]


def test_kpis_list_latest_values(daemon: Daemon) -> None:
    kpis = get_json(daemon, "/api/v1/kpis")["data"]["kpis"]
    orders = next(kpi for kpi in kpis if kpi["name"] == "orders")
    assert orders["series"][0]["samples_in_window"] == 24 * 9
    assert orders["downstream_kpis"] == []


def test_sources_report_health(daemon: Daemon) -> None:
    sources = get_json(daemon, "/api/v1/sources")["data"]["sources"]
    assert [source["name"] for source in sources] == ["shop"]
    assert sources[0]["up"] is True
    assert sources[0]["samples"] == 24 * 9


def kpi_with_edges(name: str, *targets: str) -> KPIConfig:
    edges = tuple(KPIEdgeConfig(kpi=target) for target in targets)
    return KPIConfig(name=name, source="shop", drives=edges)


def key_result_on(name: str, kpi: str) -> KeyResultConfig:
    return KeyResultConfig(
        name=name,
        kpi=kpi,
        objective="grow",
        owner="sales",
        measure="level",
        direction="increase",
        baseline=0.0,
        target=1.0,
        period="week",
    )


def graph_config() -> Config:
    """A config with edges marketing -> orders -> delivery -> churn.

    delivery also drives orders back, so the graph has a cycle.
    """
    kpis = (
        kpi_with_edges("marketing", "orders"),
        kpi_with_edges("orders", "delivery"),
        kpi_with_edges("delivery", "churn", "orders"),
        kpi_with_edges("churn"),
    )
    objective = ObjectiveConfig(
        name="grow",
        key_results=(
            key_result_on("churn_q1", "churn"),
            key_result_on("reach", "marketing"),
        ),
    )
    return Config(path=Path("config.yaml"), kpis=kpis, objectives=(objective,))


def test_downstream_kpis_follow_edges_and_cycles() -> None:
    config = graph_config()
    assert downstream_kpis(config, ["marketing"]) == {"orders", "delivery", "churn"}
    assert downstream_kpis(config, ["orders"]) == {"delivery", "churn"}
    assert downstream_kpis(config, ["churn"]) == set()


def test_blast_radius_lists_downstream_key_results() -> None:
    state = AlertState(
        alert="SpendUp",
        group="g",
        labels={"alertname": "SpendUp"},
        extra={"kpis": ["marketing"]},
    )
    radius = blast_radius(graph_config(), [], state)
    assert radius == {
        "kpis": ["marketing"],
        "downstream_kpis": ["churn", "delivery", "orders"],
        "key_results": ["churn_q1", "reach"],
    }


def test_reload_without_token_config_allowed(daemon: Daemon) -> None:
    status, _, body = request(daemon, "/-/reload", method="POST")
    assert status == 200
    assert json.loads(body) == {"status": "success", "data": {"reloaded": True}}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("guarded")
    running = Daemon(write_config(folder, token=True))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": TOKEN}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": f"Bearer {TOKEN.upper()}x"}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
        ({"Authorization": f"bearer {TOKEN}"}, 200),
    ],
    ids=["missing", "wrong-token", "no-scheme", "basic", "other", "valid", "lower"],
)
def test_reload_requires_bearer_token(
    guarded: Daemon, headers: dict[str, str], expected: int
) -> None:
    status, response_headers, body = request(
        guarded, "/-/reload", method="POST", headers=headers
    )
    payload = json.loads(body)
    assert status == expected
    if expected == 401:
        assert payload["status"] == "error"
        assert "requires the API token" in payload["error"]
        assert response_headers["WWW-Authenticate"] == 'Bearer realm="krwatch"'
        assert TOKEN not in payload["error"]


def test_read_endpoints_need_no_token(guarded: Daemon) -> None:
    status, _, _ = request(guarded, "/api/v1/key_results")
    assert status == 200


def test_routes_protect_state_changes_by_default() -> None:
    routes = Routes(CollectorRegistry(), lambda: "secret")
    calls: list[str] = []

    def record(method: str) -> Any:
        def handler(_: dict[str, Any]) -> Response:
            calls.append(method)
            return Response.json({"status": "success", "data": None})

        return handler

    routes.add("DELETE", "/api/v1/silences/x", record("DELETE"))
    routes.add("GET", "/api/v1/silences", record("GET"))
    routes.add_prefix("POST", "/api/v1/silences/", record("POST"))
    denied_delete = routes.dispatch("DELETE", "/api/v1/silences/x", {}, {})
    denied_post = routes.dispatch("POST", "/api/v1/silences/y", {}, {})
    allowed = routes.dispatch(
        "DELETE", "/api/v1/silences/x", {"Authorization": "Bearer secret"}, {}
    )
    listed = routes.dispatch("GET", "/api/v1/silences", {}, {})
    assert denied_delete.status == 401
    assert denied_post.status == 401
    assert allowed.status == 200
    assert listed.status == 200
    assert calls == ["DELETE", "GET"]


def test_routes_unknown_path_and_method() -> None:
    routes = Routes(CollectorRegistry(), lambda: None)
    routes.add("GET", "/api/v1/alerts", lambda _: Response.json({}))
    missing = routes.dispatch("GET", "/api/v1/nothing", {}, {})
    wrong_method = routes.dispatch("POST", "/api/v1/alerts", {}, {})
    assert missing.status == 404
    assert json.loads(missing.body)["error"] == "No endpoint at /api/v1/nothing."
    assert wrong_method.status == 405
    assert json.loads(wrong_method.body)["error"] == (
        "POST is not allowed on /api/v1/alerts."
    )


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/status.js", "text/javascript; charset=utf-8"),
        ("/static/status.css", "text/css; charset=utf-8"),
        ("/static/favicon.svg", "image/svg+xml"),
    ],
    ids=["script", "stylesheet", "icon"],
)
def test_static_files_served(daemon: Daemon, path: str, content_type: str) -> None:
    status, headers, body = request(daemon, path)
    assert status == 200
    assert headers["Content-Type"] == content_type
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert len(body) > 100


@pytest.mark.parametrize(
    "path",
    ["/static/../api.py", "/static/%2e%2e/api.py", "/static/missing.js", "/static/"],
    ids=["dot-dot", "encoded-dot-dot", "missing", "empty"],
)
def test_static_files_outside_rejected(daemon: Daemon, path: str) -> None:
    status, _, body = request(daemon, path)
    assert status == 404
    assert json.loads(body)["status"] == "error"


def test_status_page_sets_security_headers(daemon: Daemon) -> None:
    status, headers, body = request(daemon, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert b'<script src="/static/status.js"></script>' in body


def test_silences_require_token_to_change(guarded: Daemon) -> None:
    new = {"matchers": ["alertname=OrdersLow"], "duration": "1h"}
    created, _, _ = request(guarded, "/api/v1/silences", "POST", body=new)
    expired, _, _ = request(guarded, "/api/v1/silences?id=x", "DELETE")
    listed, _, _ = request(guarded, "/api/v1/silences")
    assert created == 401
    assert expired == 401
    assert listed == 200


def test_silences_match_openapi(guarded: Daemon, openapi: dict[str, Any]) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    new = {
        "matchers": ["alertname=OrdersLow"],
        "duration": "1h",
        "comment": "deploy",
        "created_by": "ops",
    }
    status, _, body = request(guarded, "/api/v1/silences", "POST", auth, new)
    created = json.loads(body)
    assert status == 201, created
    validate_against(
        openapi, response_schema("/api/v1/silences", "post", "201"), created
    )
    listed = get_json(guarded, "/api/v1/silences")
    validate_against(openapi, response_schema("/api/v1/silences"), listed)
    silence_id = created["data"]["id"]
    status, _, body = request(
        guarded, f"/api/v1/silences?id={silence_id}", "DELETE", auth
    )
    expired = json.loads(body)
    assert status == 200
    assert expired["data"]["state"] == "expired"
    validate_against(
        openapi, response_schema("/api/v1/silences", "delete", "200"), expired
    )
    status, _, body = request(guarded, "/api/v1/silences", "POST", auth, {})
    assert status == 400
    validate_against(
        openapi, response_schema("/api/v1/silences", "post", "400"), json.loads(body)
    )


def test_reload_warns_listen_needs_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_path = write_config(tmp_path)
    running = Daemon(config_path)
    running.start()
    try:
        port = running.server.port
        text = config_path.read_text()
        config_path.write_text(text.replace("127.0.0.1:0", "127.0.0.1:9"))
        reloaded, problems = running.reload()
        listened = running.server.port
    finally:
        running.stop()

    assert reloaded is True
    assert problems == []
    assert listened == port
    assert (
        "server.listen changed from 127.0.0.1:0 to 127.0.0.1:9; krwatch keeps "
        "using 127.0.0.1:0 until it is restarted"
    ) in caplog.text


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_unsupported_method_gets_json_error(daemon: Daemon, method: str) -> None:
    status, headers, body = request(daemon, "/api/v1/alerts", method=method)

    assert status == 405
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"] == f"{method} is not allowed on /api/v1/alerts."


def test_short_body_connection_closed(daemon: Daemon) -> None:
    with socket.create_connection(("127.0.0.1", daemon.server.port), timeout=30) as raw:
        raw.sendall(
            b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        received = raw.recv(1024)
        waited = time.monotonic() - started

    assert received == b""
    assert waited < 25
