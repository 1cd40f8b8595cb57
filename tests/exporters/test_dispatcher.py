from __future__ import annotations

import collections
import email.utils
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _receiver_server import Reply, free_port, running_server, wait_until
from conftest import ACTIVE_AT, make_notification
from prometheus_client import CollectorRegistry

from exporters._matchers import Matcher
from exporters._outbox_metrics import OutboxMetrics
from exporters.dispatcher import Dispatcher
from exporters.notification import Notification
from exporters.outbox import count_by_status, enqueue, release_inhibited
from exporters.receivers.base import create_session
from exporters.receivers.webhook import WebhookReceiver, WebhookSettings
from exporters.routing import RouteTarget
from exporters.silences import create_silence, expire_silence
from monitor.secrets import Secret
from monitor.store import Store

FAST_BACKOFF = {
    "initial_backoff": timedelta(milliseconds=100),
    "max_backoff": timedelta(milliseconds=200),
}


def webhook(url: str, name: str = "hook", **settings: Any) -> WebhookReceiver:
    options: dict[str, Any] = {"timeout": timedelta(seconds=2), **FAST_BACKOFF}
    options.update(settings)
    return WebhookReceiver(
        name, WebhookSettings(url=Secret(url), **options), session=create_session()
    )


def put(
    store: Store,
    notification: Notification,
    receivers: list[str | RouteTarget] | None = None,
    now: float | None = None,
) -> int:
    with store.transaction() as connection:
        return enqueue(connection, notification, receivers or ["hook"], now=now)


def statuses(store: Store, receiver: str = "hook") -> dict[str, int]:
    with store.read() as connection:
        return count_by_status(connection, receiver)


def delivered_keys(requests: list[Any]) -> list[str]:
    return [
        item["idempotency_key"]
        for request in requests
        for item in request.json()["notifications"]
    ]


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def sample_value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def metered_dispatcher(
    store: Store, receiver: WebhookReceiver, registry: CollectorRegistry
) -> Dispatcher:
    """Return a fast-polling dispatcher for ``receiver`` with outbox metrics."""
    metrics = OutboxMetrics(registry, store, receivers=[receiver.name])
    return Dispatcher(
        store, {receiver.name: receiver}, metrics=metrics, poll_interval_seconds=0.05
    )


def wait_for_failures(registry: CollectorRegistry, count: int) -> None:
    """Wait until the hook receiver has failed at least ``count`` attempts."""
    wait_until(
        lambda: (
            sample_value(
                registry, "krwatch_notifications_failed_total", receiver="hook"
            )
            >= count
        )
    )


def test_dispatcher_down_receiver_gets_each_key_once(store: Store) -> None:
    port = free_port()
    receiver = webhook(f"http://127.0.0.1:{port}/hook", max_batch_size=1)
    notifications = [make_notification(alert=f"Alert{index}") for index in range(5)]
    for notification in notifications:
        put(store, notification)
    duplicate = put(store, notifications[0])
    registry = CollectorRegistry()
    dispatcher = metered_dispatcher(store, receiver, registry)
    dispatcher.start()
    try:
        wait_for_failures(registry, 3)
        assert statuses(store) == {"pending": 5}

        with running_server(port=port) as server:
            wait_until(lambda: statuses(store) == {"delivered": 5})
            keys = delivered_keys(server.snapshot())
    finally:
        assert dispatcher.stop(timeout=5)

    assert duplicate == 0
    assert sorted(keys) == sorted(n.idempotency_key for n in notifications)
    assert max(collections.Counter(keys).values()) == 1
    assert (
        sample_value(registry, "krwatch_notifications_sent_total", receiver="hook") == 5
    )
    assert sample_value(registry, "krwatch_outbox_queue_length", receiver="hook") == 0


def test_dispatcher_down_receiver_logs_once_a_minute(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = webhook(f"http://127.0.0.1:{free_port()}/hook")
    put(store, make_notification())
    registry = CollectorRegistry()
    dispatcher = metered_dispatcher(store, receiver, registry)
    dispatcher.start()
    try:
        wait_for_failures(registry, 5)
    finally:
        assert dispatcher.stop(timeout=5)

    logged = [r for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert len(logged) == 1
    assert "failed on attempt 1:" in logged[0].getMessage()


def test_dispatcher_500_retried_with_backoff(store: Store) -> None:
    replies = iter([Reply(500, b"boom"), Reply(503, b"busy")])

    def respond(request: Any) -> Reply:
        return next(replies, Reply(200))

    with running_server(respond) as server:
        put(store, make_notification())
        dispatcher = Dispatcher(
            store,
            {"hook": webhook(server.url + "/hook")},
            poll_interval_seconds=0.05,
            rng=random.Random(7),
        )
        dispatcher.start()
        try:
            wait_until(lambda: statuses(store) == {"delivered": 1})
        finally:
            assert dispatcher.stop(timeout=5)
        requests = server.snapshot()

    assert len(requests) == 3
    first_gap = requests[1].received_at - requests[0].received_at
    second_gap = requests[2].received_at - requests[1].received_at
    # Full jitter: attempt n waits between 0 and min(0.2s, 0.1s * 2**(n-1)),
    # plus scheduling slack.
    assert first_gap < 0.1 + 0.15
    assert second_gap < 0.2 + 0.15
    with store.read() as connection:
        attempts = connection.execute("SELECT attempts FROM outbox").fetchone()[0]
    assert attempts == 2


@pytest.mark.parametrize(
    "retry_after",
    [
        pytest.param(lambda: "1", id="delay-seconds"),
        pytest.param(
            lambda: email.utils.formatdate(time.time() + 2, usegmt=True), id="http-date"
        ),
    ],
)
def test_dispatcher_429_waits_for_retry_after(
    store: Store, retry_after: Callable[[], str]
) -> None:
    calls = []

    def respond(request: Any) -> Reply:
        calls.append(request)
        if len(calls) == 1:
            return Reply(429, b"slow down", {"Retry-After": retry_after()})
        return Reply(200)

    with running_server(respond) as server:
        put(store, make_notification())
        dispatcher = Dispatcher(
            store, {"hook": webhook(server.url)}, poll_interval_seconds=0.05
        )
        dispatcher.start()
        try:
            wait_until(lambda: statuses(store) == {"delivered": 1})
        finally:
            assert dispatcher.stop(timeout=5)
        requests = server.snapshot()

    assert len(requests) == 2
    gap = requests[1].received_at - requests[0].received_at
    # An HTTP date has whole seconds, so now + 2s written as a date is 1 to 2
    # seconds ahead. The backoff of 0.1s alone would retry much sooner.
    assert gap >= 0.95
    assert gap < 2.0 + 0.5


def test_dispatcher_400_marks_failed_without_retry(store: Store) -> None:
    registry = CollectorRegistry()
    metrics = OutboxMetrics(registry, store, receivers=["hook"])
    with running_server(lambda request: Reply(400, b"invalid_payload")) as server:
        put(store, make_notification())
        dispatcher = Dispatcher(store, {"hook": webhook(server.url)}, metrics=metrics)
        dispatcher.run_once("hook")
        dispatcher.run_once("hook")
        requests = server.snapshot()

    assert len(requests) == 1
    assert statuses(store) == {"failed": 1}
    with store.read() as connection:
        row = connection.execute(
            "SELECT last_status, last_error FROM outbox"
        ).fetchone()
    assert row[0] == 400
    assert "invalid_payload" in row[1]
    assert (
        sample_value(registry, "krwatch_notifications_failed_total", receiver="hook")
        == 1
    )
    assert (
        sample_value(
            registry,
            "krwatch_notifications_dropped_total",
            receiver="hook",
            reason="rejected",
        )
        == 1
    )


def test_dispatcher_drops_after_max_age(store: Store) -> None:
    clock = FakeClock()
    registry = CollectorRegistry()
    metrics = OutboxMetrics(registry, store, receivers=["hook"], clock=clock)
    receiver = webhook(f"http://127.0.0.1:{free_port()}", max_age=timedelta(minutes=10))
    put(store, make_notification(), now=clock.now)
    dispatcher = Dispatcher(store, {"hook": receiver}, metrics=metrics, clock=clock)

    dispatcher.run_once("hook")
    clock.now += 60
    assert statuses(store) == {"pending": 1}
    assert (
        sample_value(registry, "krwatch_outbox_oldest_age_seconds", receiver="hook")
        == 60
    )

    clock.now += 10 * 60
    dispatcher.run_once("hook")

    assert statuses(store) == {"dropped": 1}
    assert (
        sample_value(
            registry,
            "krwatch_notifications_dropped_total",
            receiver="hook",
            reason="max_age",
        )
        == 1
    )


def test_dispatcher_group_wait_and_interval_batch_alerts(store: Store) -> None:
    clock = FakeClock()
    start = clock.now
    target = RouteTarget(
        receiver="hook",
        group_key='0:{"team":"retention"}',
        group_wait=timedelta(seconds=30),
        group_interval=timedelta(minutes=5),
    )
    with running_server() as server:
        dispatcher = Dispatcher(store, {"hook": webhook(server.url)}, clock=clock)
        for offset, alert in enumerate(["ChurnHigh", "SignupsLow", "RevenueDrop"]):
            clock.now = start + offset
            put(store, make_notification(alert=alert), [target], now=clock.now)

        clock.now = start + 29
        assert dispatcher.run_once("hook") == start + 30
        assert server.snapshot() == []

        clock.now = start + 30
        dispatcher.run_once("hook")
        first = server.snapshot()

        clock.now = start + 60
        put(store, make_notification(alert="TrialsDrop"), [target], now=clock.now)
        dispatcher.run_once("hook")
        assert len(server.snapshot()) == 1

        clock.now = start + 30 + 300
        dispatcher.run_once("hook")
        requests = server.snapshot()

    assert len(first) == 1
    assert [n["alert"] for n in first[0].json()["notifications"]] == [
        "ChurnHigh",
        "SignupsLow",
        "RevenueDrop",
    ]
    assert len(requests) == 2
    assert [n["alert"] for n in requests[1].json()["notifications"]] == ["TrialsDrop"]


def test_dispatcher_repeats_firing_until_resolved(store: Store) -> None:
    clock = FakeClock()
    start = clock.now
    target = RouteTarget(
        receiver="hook", group_key="0:{}", repeat_interval=timedelta(minutes=10)
    )
    firing = make_notification()
    with running_server() as server:
        dispatcher = Dispatcher(store, {"hook": webhook(server.url)}, clock=clock)
        put(store, firing, [target], now=clock.now)
        dispatcher.run_once("hook")

        clock.now = start + 599
        dispatcher.run_once("hook")
        assert len(server.snapshot()) == 1

        clock.now = start + 600
        dispatcher.run_once("hook")
        assert len(server.snapshot()) == 2

        clock.now = start + 700
        resolved = make_notification(state="resolved")
        put(store, resolved, [target], now=clock.now)
        dispatcher.run_once("hook")

        clock.now = start + 5000
        dispatcher.run_once("hook")
        requests = server.snapshot()

    assert delivered_keys(requests) == [
        firing.idempotency_key,
        firing.idempotency_key,
        resolved.idempotency_key,
    ]


def test_dispatcher_silenced_firing_not_sent(store: Store) -> None:
    with running_server() as server:
        with store.transaction() as connection:
            create_silence(
                connection,
                matchers=[Matcher(name="alertname", operator="=", value="ChurnHigh")],
                ends_at=datetime.now(UTC) + timedelta(hours=1),
                comment="Known data gap in the CRM export.",
                created_by="ops-lead",
            )
        dispatcher = Dispatcher(store, {"hook": webhook(server.url)})
        put(store, make_notification(alert="ChurnHigh"))
        put(store, make_notification(alert="SignupsLow"))
        dispatcher.run_once("hook")
        put(store, make_notification(alert="ChurnHigh", state="resolved"))
        dispatcher.run_once("hook")
        requests = server.snapshot()

    assert [n["alert"] for r in requests for n in r.json()["notifications"]] == [
        "SignupsLow"
    ]
    assert statuses(store) == {"suppressed": 2, "delivered": 1}


def test_dispatcher_resolve_sent_after_later_silence(store: Store) -> None:
    with running_server() as server:
        dispatcher = Dispatcher(store, {"hook": webhook(server.url)})
        put(store, make_notification())
        dispatcher.run_once("hook")
        with store.transaction() as connection:
            create_silence(
                connection,
                matchers=[Matcher(name="severity", operator="=~", value="crit.*")],
                ends_at=datetime.now(UTC) + timedelta(hours=1),
                comment="Maintenance window.",
                created_by="ops-lead",
            )
        put(store, make_notification(state="resolved"))
        dispatcher.run_once("hook")
        requests = server.snapshot()

    assert [n["state"] for r in requests for n in r.json()["notifications"]] == [
        "firing",
        "resolved",
    ]


def test_dispatcher_sends_held_firing_after_silence_expires(store: Store) -> None:
    with running_server() as server:
        with store.transaction() as connection:
            silence = create_silence(
                connection,
                matchers=[Matcher(name="alertname", operator="=", value="ChurnHigh")],
                ends_at=datetime.now(UTC) + timedelta(hours=1),
                comment="Deploy in progress.",
                created_by="ops-lead",
            )
        dispatcher = Dispatcher(store, {"hook": webhook(server.url)})
        put(store, make_notification(alert="ChurnHigh"))
        dispatcher.run_once("hook")
        assert server.snapshot() == []

        with store.transaction() as connection:
            expire_silence(connection, silence.id)
        dispatcher.run_once("hook")
        requests = server.snapshot()

    assert len(requests) == 1
    assert statuses(store) == {"delivered": 1}


def test_dispatcher_inhibited_until_released(store: Store) -> None:
    inhibited = make_notification(inhibited=True)
    with running_server() as server:
        dispatcher = Dispatcher(store, {"hook": webhook(server.url)})
        put(store, inhibited)
        dispatcher.run_once("hook")
        assert server.snapshot() == []

        with store.transaction() as connection:
            released = release_inhibited(connection, [inhibited.fingerprint])
        dispatcher.run_once("hook")
        requests = server.snapshot()

    assert released == 1
    assert delivered_keys(requests) == [inhibited.idempotency_key]
    assert requests[0].json()["notifications"][0]["inhibited"] is False


def test_dispatcher_resolve_sent_when_inhibited_later(store: Store) -> None:
    with running_server() as server:
        dispatcher = Dispatcher(store, {"hook": webhook(server.url)})
        put(store, make_notification())
        dispatcher.run_once("hook")
        put(store, make_notification(state="resolved", inhibited=True))
        dispatcher.run_once("hook")
        requests = server.snapshot()

    assert [n["state"] for r in requests for n in r.json()["notifications"]] == [
        "firing",
        "resolved",
    ]


def test_dispatcher_send_resolved_false_skips_resolve(store: Store) -> None:
    target = RouteTarget(receiver="hook", group_key="0:{}", send_resolved=False)
    with running_server() as server:
        dispatcher = Dispatcher(store, {"hook": webhook(server.url)})
        put(store, make_notification(), [target])
        dispatcher.run_once("hook")
        put(store, make_notification(state="resolved"), [target])
        dispatcher.run_once("hook")
        requests = server.snapshot()

    assert [n["state"] for r in requests for n in r.json()["notifications"]] == [
        "firing"
    ]
    assert statuses(store) == {"delivered": 1, "skipped": 1}


def test_dispatcher_slow_receiver_does_not_block_others(store: Store) -> None:
    release = threading.Event()

    def slow(request: Any) -> Reply:
        release.wait(10)
        return Reply(200)

    with running_server(slow) as slow_server, running_server() as fast_server:
        receivers = {
            "slow": webhook(
                slow_server.url, name="slow", timeout=timedelta(seconds=20)
            ),
            "fast": webhook(fast_server.url, name="fast"),
        }
        put(store, make_notification(alert="First"), ["slow", "fast"])
        dispatcher = Dispatcher(store, receivers, poll_interval_seconds=0.05)
        dispatcher.start()
        try:
            wait_until(lambda: len(slow_server.snapshot()) == 1)
            put(store, make_notification(alert="Second"), ["slow", "fast"])
            dispatcher.wake()
            wait_until(lambda: statuses(store, "fast") == {"delivered": 2})
            slow_statuses = statuses(store, "slow")
            release.set()
            wait_until(lambda: statuses(store, "slow") == {"delivered": 2})
        finally:
            release.set()
            assert dispatcher.stop(timeout=5)

    assert slow_statuses == {"pending": 2}


def test_dispatcher_new_instance_resumes_pending_rows(store: Store) -> None:
    port = free_port()
    put(store, make_notification())
    first = Dispatcher(store, {"hook": webhook(f"http://127.0.0.1:{port}")})
    first.run_once("hook")
    assert statuses(store) == {"pending": 1}

    with running_server(port=port) as server:
        second = Dispatcher(
            store, {"hook": webhook(server.url)}, poll_interval_seconds=0.05
        )
        second.start()
        try:
            wait_until(lambda: statuses(store) == {"delivered": 1})
        finally:
            assert second.stop(timeout=5)
        requests = server.snapshot()

    assert len(requests) == 1


def test_dispatcher_latency_histogram_counts_delivery(store: Store) -> None:
    registry = CollectorRegistry()
    metrics = OutboxMetrics(registry, store, receivers=["hook"])
    created = datetime.now(UTC) - timedelta(seconds=3)
    with running_server() as server:
        put(store, make_notification(created_at=created, active_at=ACTIVE_AT))
        Dispatcher(store, {"hook": webhook(server.url)}, metrics=metrics).run_once(
            "hook"
        )

    count = sample_value(
        registry, "krwatch_notification_latency_seconds_count", receiver="hook"
    )
    total = sample_value(
        registry, "krwatch_notification_latency_seconds_sum", receiver="hook"
    )
    assert count == 1
    assert 3.0 <= total < 10.0
    assert (
        sample_value(
            registry,
            "krwatch_notification_latency_seconds_bucket",
            receiver="hook",
            le="2.5",
        )
        == 0
    )


def test_dispatcher_full_batch_sends_rest_at_once(store: Store) -> None:
    clock = FakeClock()
    target = RouteTarget(
        receiver="hook", group_key="0:{}", group_interval=timedelta(minutes=5)
    )
    with running_server() as server:
        receiver = webhook(server.url, max_batch_size=2)
        for index in range(5):
            put(store, make_notification(alert=f"A{index}"), [target], now=clock.now)
        Dispatcher(store, {"hook": receiver}, clock=clock).run_once("hook")
        requests = server.snapshot()

    assert [len(request.json()["notifications"]) for request in requests] == [2, 2, 1]


def test_dispatcher_stop_reports_unclean_shutdown(store: Store) -> None:
    release = threading.Event()

    def stall(request: Any) -> Reply:
        release.wait(10)
        return Reply(200)

    with running_server(stall) as server:
        put(store, make_notification())
        dispatcher = Dispatcher(
            store,
            {"hook": webhook(server.url, timeout=timedelta(seconds=10))},
            poll_interval_seconds=0.05,
        )
        dispatcher.start()
        try:
            wait_until(lambda: len(server.snapshot()) == 1)
            clean = dispatcher.stop(timeout=0.2)
        finally:
            release.set()

    assert clean is False


def test_dispatcher_drops_rows_of_removed_receiver(store: Store) -> None:
    clock = FakeClock()
    registry = CollectorRegistry()
    metrics = OutboxMetrics(registry, store, receivers=["hook"], clock=clock)
    put(store, make_notification(), ["retired"], now=clock.now - 25 * 3600)
    put(store, make_notification(alert="Fresh"), ["retired"], now=clock.now)
    dispatcher = Dispatcher(
        store, {"hook": webhook("http://127.0.0.1:9")}, metrics=metrics, clock=clock
    )

    dispatcher.run_housekeeping()

    assert statuses(store, "retired") == {"dropped": 1, "pending": 1}
    assert (
        sample_value(
            registry,
            "krwatch_notifications_dropped_total",
            receiver="retired",
            reason="max_age",
        )
        == 1
    )
