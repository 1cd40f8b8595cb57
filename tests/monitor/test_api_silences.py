from __future__ import annotations

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
        ({"matchers": ["no operator"], "duration": "1h"}, b"Invalid matcher"),
        ({"matchers": ["a=b"], "duration": "soon"}, b"Invalid duration"),
    ],
    ids=["no-matchers", "bad-matcher", "bad-duration"],
)
def test_silence_api_rejects_bad_requests(
    routes: Routes, body: dict[str, object], message: bytes
) -> None:
    response = routes.dispatch("POST", "/api/v1/silences", AUTH, body)
    assert response.status == 400
    assert message in response.body
