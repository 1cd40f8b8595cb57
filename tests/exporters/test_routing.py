from __future__ import annotations

from datetime import timedelta

import pytest

from exporters._matchers import Matcher, parse_matcher
from exporters.errors import MatcherError, RouteError
from exporters.routing import (
    DEFAULT_GROUP_INTERVAL,
    DEFAULT_GROUP_WAIT,
    DEFAULT_REPEAT_INTERVAL,
    Router,
)
from monitor.config.model import RouteConfig

TREE = RouteConfig(
    receiver="ops_log",
    group_by=("alertname",),
    routes=(
        RouteConfig(
            receiver="pager", match={"severity": "critical"}, continue_matching=True
        ),
        RouteConfig(
            receiver="retention_chat",
            match_re={"team": "retention|growth"},
            group_wait=timedelta(seconds=5),
            routes=(RouteConfig(receiver="growth_hook", match={"team": "growth"}),),
        ),
        RouteConfig(receiver="never", match={"team": "retention"}),
    ),
)


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"alertname": "A"}, ["ops_log"]),
        ({"alertname": "A", "severity": "critical"}, ["pager"]),
        ({"alertname": "A", "team": "retention"}, ["retention_chat"]),
        ({"alertname": "A", "team": "growth"}, ["growth_hook"]),
        (
            {"alertname": "A", "severity": "critical", "team": "retention"},
            ["pager", "retention_chat"],
        ),
        ({"alertname": "A", "team": "retentionx"}, ["ops_log"]),
    ],
    ids=[
        "default-root",
        "critical",
        "first-match-wins",
        "nested-child",
        "continue",
        "regex-anchored",
    ],
)
def test_router_picks_receivers(labels: dict[str, str], receivers: list[str]) -> None:
    targets = Router(TREE).route(labels)

    assert [target.receiver for target in targets] == receivers


def test_router_inherits_group_settings() -> None:
    router = Router(TREE)
    growth = router.route({"alertname": "A", "team": "growth"})[0]
    root = router.route({"alertname": "A"})[0]

    assert growth.group_wait == timedelta(seconds=5)
    assert growth.group_interval == DEFAULT_GROUP_INTERVAL
    assert growth.repeat_interval == DEFAULT_REPEAT_INTERVAL
    assert growth.send_resolved is True
    assert root.group_wait == DEFAULT_GROUP_WAIT
    assert growth.group_key == '0.1.0:{"alertname": "A"}'


def test_router_group_key_by_labels() -> None:
    router = Router(RouteConfig(receiver="hook", group_by=("team",)))
    first = router.route({"alertname": "A", "team": "eu"})[0]
    second = router.route({"alertname": "B", "team": "eu"})[0]
    third = router.route({"alertname": "A", "team": "us"})[0]

    assert first.group_key == second.group_key
    assert first.group_key != third.group_key


def test_router_group_by_all_labels() -> None:
    router = Router(RouteConfig(receiver="hook", group_by=("...",)))
    first = router.route({"alertname": "A", "team": "eu"})[0]
    second = router.route({"alertname": "B", "team": "eu"})[0]

    assert first.group_key != second.group_key


def test_router_without_route_sends_nothing() -> None:
    assert Router(None).route({"alertname": "A"}) == []


def test_router_lists_receivers() -> None:
    assert Router(TREE).receivers() == {
        "ops_log",
        "pager",
        "retention_chat",
        "growth_hook",
        "never",
    }


def test_router_invalid_regex_names_route() -> None:
    config = RouteConfig(
        receiver="root", routes=(RouteConfig(receiver="bad", match_re={"team": "("}),)
    )

    with pytest.raises(
        RouteError, match=r"Invalid route 0\.0 \('bad'\): Invalid regular"
    ):
        Router(config)


def test_router_negative_duration_rejected() -> None:
    config = RouteConfig(receiver="root", group_wait=timedelta(seconds=-1))

    with pytest.raises(RouteError, match="group_wait is negative"):
        Router(config)


@pytest.mark.parametrize(
    ("text", "name", "operator", "value"),
    [
        ("alertname=ChurnHigh", "alertname", "=", "ChurnHigh"),
        ('severity!="info"', "severity", "!=", "info"),
        ('severity=~"critical|error"', "severity", "=~", "critical|error"),
        ("team!~ret.*", "team", "!~", "ret.*"),
        (' region = "eu west" ', "region", "=", "eu west"),
    ],
    ids=["equal", "not-equal-quoted", "regex", "not-regex", "spaces"],
)
def test_parse_matcher(text: str, name: str, operator: str, value: str) -> None:
    assert parse_matcher(text) == Matcher(name=name, operator=operator, value=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ("team=~ret.*", {"team": "retention"}, True),
        ("team=~ret", {"team": "retention"}, False),
        ("team!=eu", {}, True),
        ("team=", {}, True),
        ("team!~.+", {}, True),
        ("team!~.+", {"team": "eu"}, False),
    ],
    ids=[
        "regex-full",
        "regex-anchored",
        "absent-not-equal",
        "absent-is-empty",
        "absent-not-regex",
        "present-not-regex",
    ],
)
def test_matcher_matches(matcher: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(matcher).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("severity", "Invalid matcher 'severity'"),
        ("9x=1", "Invalid matcher '9x=1'"),
        ("team=~(", "Invalid regular expression '\\('"),
    ],
    ids=["no-operator", "bad-name", "bad-regex"],
)
def test_parse_matcher_rejects(text: str, message: str) -> None:
    with pytest.raises(MatcherError, match=message):
        parse_matcher(text)
