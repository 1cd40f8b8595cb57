from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _alertmanager import alertmanager_process
from _receiver_server import running_server, wait_until
from conftest import make_notification

from exporters.dispatcher import Dispatcher
from exporters.outbox import enqueue
from exporters.receivers.alertmanager import (
    AlertmanagerReceiver,
    AlertmanagerSettings,
    build_alerts,
)
from exporters.receivers.base import create_session
from exporters.routing import RouteTarget
from monitor.store import Store

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_alertmanager_body_firing_and_resolved() -> None:
    firing = make_notification()
    resolved = make_notification(state="resolved")

    alerts = build_alerts([firing, resolved], timedelta(minutes=1), now=NOW)

    assert alerts == [
        {
            "labels": {
                "alertname": "RidershipForecastMiss",
                "severity": "critical",
            },
            "annotations": dict(firing.annotations),
            "startsAt": "2026-03-02T09:05:00.000Z",
            "endsAt": "2026-03-02T10:04:00.000Z",
            "generatorURL": firing.generator_url,
        },
        {
            "labels": {
                "alertname": "RidershipForecastMiss",
                "severity": "critical",
            },
            "annotations": dict(resolved.annotations),
            "startsAt": "2026-03-02T09:05:00.000Z",
            "endsAt": "2026-03-02T10:00:00.000Z",
            "generatorURL": resolved.generator_url,
        },
    ]


def test_alertmanager_receiver_posts_to_api_path() -> None:
    with running_server() as server:
        receiver = AlertmanagerReceiver(
            "am",
            AlertmanagerSettings(url=server.url + "/"),
            session=create_session(),
        )
        receiver.deliver([make_notification()])
        requests = server.snapshot()

    assert [request.path for request in requests] == ["/api/v2/alerts"]
    assert requests[0].json()[0]["labels"]["alertname"] == "RidershipForecastMiss"


@pytest.mark.integration
def test_alertmanager_real_server_fires_then_resolves(
    store: Store, tmp_path: Path
) -> None:
    active_at = datetime.now(UTC) - timedelta(minutes=5)
    firing = make_notification(alert="ChurnAboveLimit", active_at=active_at)
    resolved = make_notification(
        alert="ChurnAboveLimit",
        state="resolved",
        active_at=active_at,
        resolved_at=datetime.now(UTC),
    )
    target = RouteTarget(receiver="am", group_key="0:{}")
    with alertmanager_process(tmp_path) as alertmanager:
        receiver = AlertmanagerReceiver(
            "am",
            AlertmanagerSettings(
                url=alertmanager.url, resend_interval=timedelta(seconds=30)
            ),
            session=create_session(),
        )
        dispatcher = Dispatcher(store, {"am": receiver}, poll_interval_seconds=0.05)
        dispatcher.start()
        try:
            with store.transaction() as connection:
                enqueue(connection, firing, [target])
            dispatcher.wake()
            wait_until(
                lambda: _states(alertmanager.alerts(), "ChurnAboveLimit") == ["active"],
                timeout=20,
            )
            with store.transaction() as connection:
                enqueue(connection, resolved, [target])
            dispatcher.wake()
            wait_until(
                lambda: _states(alertmanager.alerts(), "ChurnAboveLimit") == [],
                timeout=20,
            )
        finally:
            assert dispatcher.stop(timeout=5)


def _states(alerts: list[dict[str, object]], name: str) -> list[object]:
    return [
        alert["status"]["state"]  # type: ignore[index]
        for alert in alerts
        if alert["labels"]["alertname"] == name  # type: ignore[index]
    ]


def test_alertmanager_resends_firing_each_resend_interval(store: Store) -> None:
    clock = {"now": 1_800_000_000.0}
    start = clock["now"]
    target = RouteTarget(
        receiver="am", group_key="0:{}", repeat_interval=timedelta(hours=4)
    )
    with running_server() as server:
        receiver = AlertmanagerReceiver(
            "am",
            AlertmanagerSettings(url=server.url, resend_interval=timedelta(minutes=1)),
            session=create_session(),
        )
        dispatcher = Dispatcher(store, {"am": receiver}, clock=lambda: clock["now"])
        with store.transaction() as connection:
            enqueue(connection, make_notification(), [target], now=start)
        dispatcher.run_once("am")

        clock["now"] = start + 59
        dispatcher.run_once("am")
        before_interval = len(server.snapshot())

        clock["now"] = start + 60
        dispatcher.run_once("am")
        clock["now"] = start + 120
        dispatcher.run_once("am")
        requests = server.snapshot()

    assert before_interval == 1
    assert len(requests) == 3
    assert all(
        request.json()[0]["endsAt"] > request.json()[0]["startsAt"]
        for request in requests
    )


@pytest.mark.parametrize(
    ("require", "outcome"),
    [("1", pytest.fail.Exception), ("", pytest.skip.Exception)],
    ids=["required-fails", "optional-skips"],
)
def test_alertmanager_missing_binary_outcome(
    monkeypatch: pytest.MonkeyPatch, require: str, outcome: type[BaseException]
) -> None:
    import _alertmanager

    monkeypatch.setattr(_alertmanager, "BINARY_CANDIDATES", ("krwatch-no-such-binary",))
    monkeypatch.setenv("KRWATCH_REQUIRE_INTEGRATION", require)

    with pytest.raises(outcome, match="Alertmanager is not installed"):
        _alertmanager.find_binary()
