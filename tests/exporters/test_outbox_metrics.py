from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import make_notification
from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from exporters._matchers import Matcher, parse_matcher
from exporters._outbox_metrics import OutboxMetrics
from exporters.outbox import enqueue
from monitor.store import Store


def test_outbox_metrics_pass_promtool(store: Store) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed; install prometheus to run this check.")

    with store.transaction() as connection:
        enqueue(connection, make_notification(), ["hook"])
    registry = CollectorRegistry()
    metrics = OutboxMetrics(registry, store, receivers=["hook", "pager"])
    metrics.record_sent("hook", 1.5)
    metrics.record_failed("hook")
    metrics.record_dropped("pager", "max_age")
    exposition = generate_latest(registry)

    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert b'krwatch_outbox_queue_length{receiver="hook"} 1.0' in exposition
    assert b'krwatch_outbox_queue_length{receiver="pager"} 0.0' in exposition
    assert b'krwatch_outbox_oldest_age_seconds{receiver="pager"} 0.0' in exposition


def test_outbox_metrics_accept_generator_of_receivers(store: Store) -> None:
    registry = CollectorRegistry()
    OutboxMetrics(registry, store, receivers=(name for name in ["hook"]))

    assert (
        registry.get_sample_value("krwatch_outbox_queue_length", {"receiver": "hook"})
        == 0
    )
    assert (
        registry.get_sample_value(
            "krwatch_notifications_sent_total", {"receiver": "hook"}
        )
        == 0
    )


@given(
    name=st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True),
    operator=st.sampled_from(["=", "!="]),
    value=st.text(max_size=20),
)
@example(name="team", operator="=", value="a\nb")
@example(name="team", operator="!=", value='say "hi" \\')
def test_matcher_text_round_trip(name: str, operator: str, value: str) -> None:
    matcher = Matcher(name=name, operator=operator, value=value)  # type: ignore[arg-type]

    assert parse_matcher(str(matcher)) == matcher
