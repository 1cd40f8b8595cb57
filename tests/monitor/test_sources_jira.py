from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import requests

from monitor.config.model import Config, KPIConfig, SourceConfig
from monitor.secrets import Secret
from monitor.sources.base import SourceContext
from monitor.sources.jira import JiraQuery, JiraSettings, JiraSource

NOW = 1_800_000_000.0
POINTS = "customfield_10016"


def issues(count: int, offset: int = 0) -> list[dict[str, Any]]:
    """Issues whose story points are 1, 2, 3, ... with every third one empty."""
    return [
        {
            "id": str(10000 + n),
            "key": f"OPS-{n}",
            "fields": {POINTS: None if n % 3 == 0 else float(n)},
        }
        for n in range(offset + 1, offset + count + 1)
    ]


def query_of(request: dict[str, Any]) -> dict[str, str]:
    parsed = urllib.parse.urlsplit(request["path"])
    return dict(urllib.parse.parse_qsl(parsed.query))


class FakeJira:
    """Reproduce the three search shapes over a fixed list of issues."""

    def __init__(self, total: int) -> None:
        self.all = issues(total)

    def token_page(self, request: dict[str, Any]) -> tuple[int, str, bytes]:
        params = query_of(request)
        start = int(params.get("nextPageToken", "0"))
        size = int(params["maxResults"])
        page = self.all[start : start + size]
        body: dict[str, Any] = {"issues": page, "isLast": start + size >= len(self.all)}
        if not body["isLast"]:
            # The token is opaque to clients; Jira omits it on the last page.
            body["nextPageToken"] = str(start + size)
        return 200, "application/json", json.dumps(body).encode()

    def offset_page(self, request: dict[str, Any]) -> tuple[int, str, bytes]:
        params = query_of(request)
        start = int(params.get("startAt", "0"))
        size = int(params["maxResults"])
        body = {
            "startAt": start,
            "maxResults": size,
            "total": len(self.all),
            "issues": self.all[start : start + size] if size else [],
        }
        return 200, "application/json", json.dumps(body).encode()


def jira_source(
    url: str, *queries: JiraQuery, **settings: Any
) -> tuple[JiraSource, list[KPIConfig]]:
    context = SourceContext(
        config=Config(path=Path("config.yaml")),
        session=requests.Session(),
        meta_get=lambda _: None,
        meta_set=lambda _key, _value: None,
    )
    config = SourceConfig(
        name="jira", type="jira", settings=JiraSettings(url=url, **settings)
    )
    kpis = [
        KPIConfig(name=f"kpi_{index}", source="jira", query=query)
        for index, query in enumerate(queries)
    ]
    return JiraSource(config, kpis, context), kpis


COUNT = JiraQuery(jql="project = OPS AND status = Open")
SUM = JiraQuery(jql="project = OPS", aggregate="sum", field=POINTS)
# 1..7 without 3 and 6 is 19.
EXPECTED_SUM = 19.0


@pytest.mark.parametrize(
    ("api", "path"),
    [
        ("cloud", "/rest/api/3/search/jql"),
        ("cloud_legacy", "/rest/api/3/search"),
        ("data_center", "/rest/api/2/search"),
    ],
    ids=["cloud-token", "cloud-legacy", "data-center"],
)
def test_jira_counts_and_sums_across_pages(local_server, api: str, path: str) -> None:
    fake = FakeJira(total=7)
    local_server.replies[path] = fake.token_page if api == "cloud" else fake.offset_page
    source, _ = jira_source(local_server.url, COUNT, SUM, api=api, page_size=3)
    result = source.poll(NOW)
    assert result.errors == []
    assert [(s.key.kpi, s.timestamp, s.value) for s in result.samples] == [
        ("kpi_0", NOW, 7.0),
        ("kpi_1", NOW, EXPECTED_SUM),
    ]
    params = [query_of(r) for r in local_server.requests]
    assert all(p["jql"] in (COUNT.jql, SUM.jql) for p in params)
    sum_params = [p for p in params if p["jql"] == SUM.jql]
    assert len(sum_params) == 3
    assert {p["fields"] for p in sum_params} == {POINTS}


def test_jira_legacy_count_reads_total_once(local_server) -> None:
    fake = FakeJira(total=250)
    local_server.replies["/rest/api/2/search"] = fake.offset_page
    source, _ = jira_source(local_server.url, COUNT, api="data_center")
    assert [s.value for s in source.poll(NOW).samples] == [250.0]
    assert len(local_server.requests) == 1
    assert query_of(local_server.requests[0])["maxResults"] == "0"


def test_jira_cloud_token_pages_follow_token(local_server) -> None:
    fake = FakeJira(total=5)
    local_server.replies["/rest/api/3/search/jql"] = fake.token_page
    source, _ = jira_source(local_server.url, COUNT, page_size=2)
    assert [s.value for s in source.poll(NOW).samples] == [5.0]
    tokens = [query_of(r).get("nextPageToken") for r in local_server.requests]
    assert tokens == [None, "2", "4"]


def test_jira_sends_basic_auth_with_api_token(local_server) -> None:
    fake = FakeJira(total=1)
    local_server.replies["/rest/api/3/search/jql"] = fake.token_page
    source, _ = jira_source(
        local_server.url,
        COUNT,
        username="ops@example.com",
        password=Secret("api-token-123", "JIRA_API_TOKEN"),
    )
    source.poll(NOW)
    header = local_server.requests[0]["headers"]["Authorization"]
    assert (
        header == "Basic " + base64.b64encode(b"ops@example.com:api-token-123").decode()
    )


def test_jira_sends_bearer_token(local_server) -> None:
    fake = FakeJira(total=1)
    local_server.replies["/rest/api/2/search"] = fake.offset_page
    source, _ = jira_source(
        local_server.url, COUNT, api="data_center", bearer_token=Secret("pat-xyz")
    )
    source.poll(NOW)
    assert local_server.requests[0]["headers"]["Authorization"] == "Bearer pat-xyz"


def test_jira_fails_instead_of_partial_count(local_server) -> None:
    fake = FakeJira(total=10)
    local_server.replies["/rest/api/3/search/jql"] = fake.token_page
    source, _ = jira_source(local_server.url, COUNT, page_size=2, max_pages=3)
    result = source.poll(NOW)
    assert result.samples == []
    assert [e.reason for e in result.errors] == ["page_limit"]
    assert "more than 3 pages of 2 issues" in str(result.errors[0])


@pytest.mark.parametrize(
    ("status", "kind", "body", "reason", "message"),
    [
        (
            400,
            "application/json",
            b'{"errorMessages": ["Field \'sprint\' does not exist."], "errors": {}}',
            "query_failed",
            "Field 'sprint' does not exist",
        ),
        (401, "application/json", b"{}", "http_status", "HTTP 401"),
        (
            200,
            "text/html",
            b"<!DOCTYPE html><html>Log in</html>",
            "html_response",
            "HTML",
        ),
        (
            200,
            "application/json",
            b'{"issues": [{"id": "1"',
            "invalid_json",
            "truncated",
        ),
        (200, "application/json", b'{"values": []}', "invalid_response", "issues list"),
    ],
    ids=["bad-jql", "unauthorized", "login-page", "truncated", "wrong-shape"],
)
def test_jira_rejects_bad_responses(
    local_server, status: int, kind: str, body: bytes, reason: str, message: str
) -> None:
    local_server.raw("/rest/api/3/search/jql", status, kind, body)
    source, _ = jira_source(local_server.url, COUNT)
    result = source.poll(NOW)
    assert result.failed
    assert [e.reason for e in result.errors] == [reason]
    assert message in str(result.errors[0])


def test_jira_rejects_non_numeric_field(local_server) -> None:
    page = {"issues": [{"key": "OPS-1", "fields": {POINTS: {"value": "big"}}}]}
    local_server.json("/rest/api/3/search/jql", page)
    source, _ = jira_source(local_server.url, SUM)
    result = source.poll(NOW)
    assert [e.reason for e in result.errors] == ["invalid_value"]
    assert "issue OPS-1" in str(result.errors[0])


def test_jira_sum_needs_field() -> None:
    with pytest.raises(ValueError, match="aggregate 'sum' needs field"):
        JiraQuery(jql="project = OPS", aggregate="sum")
