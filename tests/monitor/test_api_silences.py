from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporters import outbox
from monitor._api_silences import add_silence_routes
from monitor.server import Routes
from monitor.store import Store


@pytest.fixture
def routes(tmp_path: Path) -> Routes:
    store = Store(tmp_path / "k.db")
    with store.transaction() as connection:
        outbox.create_tables(connection)
    routes = Routes(CollectorRegistry(), lambda: "t0ken")
    add_silence_routes(routes, store)
    return routes


AUTH = {"Authorization": "Bearer t0ken"}


def test_silence_api_creates_lists_and_expires(routes: Routes) -> None:
    created = routes.dispatch(
        "POST",
        "/api/v1/silences",
        AUTH,
        {
            "matchers": ["alertname=Foo", "severity=~crit.*"],
            "duration": "2h",
            "comment": "deploy",
            "created_by": "ana",
        },
    )
    assert created.status == 201, created.body
    listed = routes.dispatch("GET", "/api/v1/silences", {}, {})
    assert b'"deploy"' in listed.body
    silence_id = __import__("json").loads(created.body)["data"]["id"]
    expired = routes.dispatch(
        "DELETE", "/api/v1/silences", AUTH, {"_query": f"id={silence_id}"}
    )
    assert expired.status == 200
    assert b'"expired"' in expired.body


def test_silence_api_requires_token(routes: Routes) -> None:
    response = routes.dispatch(
        "POST", "/api/v1/silences", {}, {"matchers": ["a=b"], "duration": "1h"}
    )
    assert response.status == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"duration": "1h"}, b"at least one matcher"),
        ({"matchers": ["a=b"], "duration": "999999w"}, b"past the year 9999"),
        ({"matchers": ["a=b"]}, b"Give 'duration'"),
        (
            {"matchers": ["a=b"], "duration": "1h", "created_by": ["x"]},
            b"must be a string",
        ),
        ({"matchers": ["a=b"], "duration": "1h", "bogus": 1}, b"Unknown field 'bogus'"),
        ({"matchers": ["a=b"], "ends_at": "garbage"}, b"not an ISO 8601 time"),
        ({"matchers": ["no operator"], "duration": "1h"}, b"Invalid matcher"),
        ({"matchers": ["a=b"], "duration": "soon"}, b"Invalid duration"),
        (
            {"matchers": [{"name": "a", "value": "b"}], "duration": "1h"},
            b'Invalid matcher {\\"name\\": \\"a\\", \\"value\\": \\"b\\"}; write a string',
        ),
        (
            {"matchers": ["a=b"], "duration": "1h", "ends_at": "2030-01-01T00:00:00Z"},
            b"either 'duration' or 'ends_at', not both",
        ),
    ],
    ids=[
        "no-matchers",
        "overflow",
        "no-end",
        "wrong-type",
        "unknown-key",
        "bad-time",
        "bad-matcher",
        "bad-duration",
        "object-without-operator",
        "duration-and-end",
    ],
)
def test_silence_api_rejects_bad_requests(
    routes: Routes, body: dict[str, object], message: bytes
) -> None:
    response = routes.dispatch("POST", "/api/v1/silences", AUTH, body)
    assert response.status == 400
    assert message in response.body


def test_routes_reject_wrong_method_on_metrics(routes: Routes) -> None:
    response = routes.dispatch("POST", "/metrics", {}, {})
    assert response.status == 405


def test_silence_api_honours_start_time(routes: Routes) -> None:
    body = {
        "matchers": ["a=b"],
        "starts_at": "2999-01-01T00:00:00Z",
        "duration": "1h",
        "comment": "later",
        "created_by": "ana",
    }
    created = routes.dispatch("POST", "/api/v1/silences", AUTH, body)
    assert created.status == 201, created.body
    data = __import__("json").loads(created.body)["data"]
    assert data["starts_at"].startswith("2999-01-01T00:00:00")
    assert data["ends_at"].startswith("2999-01-01T01:00:00")


NOTE = {"comment": "failover drill", "created_by": "ana"}


def test_silence_api_accepts_matchers_as_returned(routes: Routes) -> None:
    first = routes.dispatch(
        "POST",
        "/api/v1/silences",
        AUTH,
        {"matchers": ['team=~"ops|sre"'], "duration": "1h", **NOTE},
    )
    returned = json.loads(first.body)["data"]["matchers"]

    second = routes.dispatch(
        "POST",
        "/api/v1/silences",
        AUTH,
        {"matchers": returned, "duration": "1h", **NOTE},
    )

    assert second.status == 201, second.body
    assert json.loads(second.body)["data"]["matchers"] == returned
    assert returned == [{"name": "team", "operator": "=~", "value": "ops|sre"}]
