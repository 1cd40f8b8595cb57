"""krwatch killed with SIGKILL and started again keeps its alert state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration._processes import (
    Krwatch,
    Recorder,
    free_port,
    get_json,
    get_text,
    recorder,
    wait_for,
)

pytestmark = pytest.mark.integration

FOR_SECONDS = 25.0
"""``for`` of the pending test. It leaves time to kill and restart krwatch
inside it, even when a loaded machine takes 10 s or more to start it."""

KILL_AFTER_SECONDS = 5.0
"""How long the alert is pending before the kill."""

FIRST_CYCLE_SECONDS = 2.0
"""Delay of a group's first evaluation after krwatch is ready."""

CYCLE_SECONDS = 1.0
LATE_CYCLE_SECONDS = 5.0
"""Evaluation interval of the rule group and the poll interval of the source."""


def write_config(work: Path, port: int, kpi_api: str, webhook: str, for_: str) -> Path:
    (work / "rules.yaml").write_text(
        f"""
groups:
  - name: orders
    interval: 1s
    rules:
      - alert: OpenOrdersHigh
        expr: kpi("open_orders") > 100
        for: {for_}
        labels: {{severity: warning}}
"""
    )
    config = work / "krwatch.yaml"
    config.write_text(
        f"""
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
kpis:
  - name: open_orders
    source: kpi_api
    query:
      items: "data"
      value: "open"
      labels: {{region: "region"}}
receivers:
  - name: hook
    type: webhook
    url: {webhook}/hook
    timeout: 2s
route:
  receiver: hook
  group_wait: 0s
  group_interval: 1s
  group_by: ["..."]
rule_files: [rules.yaml]
"""
    )
    return config


@pytest.fixture
def services() -> Iterator[tuple[Recorder, Recorder]]:
    with recorder() as kpi_api, recorder() as webhook:
        kpi_api.payload = {"data": [{"region": "eu", "open": 150}]}
        yield kpi_api, webhook


def alert_of(krwatch: Krwatch) -> dict[str, Any] | None:
    alerts = get_json(krwatch.url + "/api/v1/alerts", timeout=2)["data"]["alerts"]
    return next((a for a in alerts if a["alert"] == "OpenOrdersHigh"), None)


def notifications(webhook: Recorder, state: str) -> list[dict[str, Any]]:
    return [
        notification
        for body in webhook.json_bodies()
        for notification in body["notifications"]
        if notification["alert"] == "OpenOrdersHigh" and notification["state"] == state
    ]


def queue_is_empty(krwatch: Krwatch) -> bool:
    for line in get_text(krwatch.url + "/metrics", timeout=2).splitlines():
        if line.startswith("krwatch_notifications_queue_length{") and not line.endswith(
            " 0.0"
        ):
            return False
    return True


def last_evaluation(krwatch: Krwatch) -> float:
    groups = get_json(krwatch.url + "/api/v1/rules", timeout=2)["data"]["groups"]
    return float(groups[0]["last_evaluation"] or 0.0)


def test_restart_while_pending_keeps_for(
    tmp_path: Path, services: tuple[Recorder, Recorder]
) -> None:
    kpi_api, webhook = services
    port = free_port()
    config = write_config(
        tmp_path, port, kpi_api.url, webhook.url, f"{FOR_SECONDS:.0f}s"
    )
    krwatch = Krwatch(config, port, tmp_path / "krwatch.log")
    krwatch.start()
    try:
        pending = wait_for(
            lambda: (
                (alert := alert_of(krwatch)) and alert["state"] == "pending" and alert
            ),
            15,
            "a pending alert",
        )
        active_at = float(pending["active_at"])
        wait_for(
            lambda: time.time() >= active_at + KILL_AFTER_SECONDS,
            KILL_AFTER_SECONDS + 1,
            "the alert to be pending for a while",
        )
        krwatch.kill()
        restarted_at = time.time()
        krwatch.start()
        ready_at = time.time()

        firing = wait_for(
            lambda: (
                (alert := alert_of(krwatch)) and alert["state"] == "firing" and alert
            ),
            FOR_SECONDS + 10,
            "the alert to fire after the restart",
        )
        fired = wait_for(
            lambda: notifications(webhook, "firing"), 10, "the firing notification"
        )
    finally:
        krwatch.stop()

    assert float(firing["active_at"]) == active_at
    fired_at = float(firing["fired_at"])
    assert fired_at >= active_at + FOR_SECONDS
    # It fires at the first cycle after active_at + for, or, if the restart
    # took longer than that, at the first cycle after the restart.
    due = max(active_at + FOR_SECONDS, ready_at + FIRST_CYCLE_SECONDS)
    # The scheduler may start a cycle late on a loaded machine, hence the slack.
    assert fired_at <= due + LATE_CYCLE_SECONDS
    assert fired_at < restarted_at + FOR_SECONDS - 1.0
    assert len(fired) == 1


def test_restart_while_firing_sends_no_second_firing(
    tmp_path: Path, services: tuple[Recorder, Recorder]
) -> None:
    kpi_api, webhook = services
    port = free_port()
    config = write_config(tmp_path, port, kpi_api.url, webhook.url, "0s")
    krwatch = Krwatch(config, port, tmp_path / "krwatch.log")
    krwatch.start()
    try:
        wait_for(
            lambda: notifications(webhook, "firing"), 15, "the firing notification"
        )
        wait_for(lambda: queue_is_empty(krwatch), 10, "the outbox to drain")
        before = alert_of(krwatch)
        krwatch.kill()
        krwatch.start()
        restarted_at = time.time()
        # Three cycles after the restart give a wrongly reset alert time to
        # fire again.
        wait_for(
            lambda: last_evaluation(krwatch) >= restarted_at + 3 * CYCLE_SECONDS,
            15,
            "three evaluations after the restart",
        )
        after = alert_of(krwatch)
        firing_after_restart = notifications(webhook, "firing")

        kpi_api.payload = {"data": [{"region": "eu", "open": 50}]}
        resolved = wait_for(
            lambda: notifications(webhook, "resolved"), 15, "the resolved notification"
        )
    finally:
        krwatch.stop()

    assert before is not None
    assert after is not None
    assert after["state"] == "firing"
    assert after["fired_at"] == before["fired_at"]
    assert len(firing_after_restart) == 1
    assert len(resolved) == 1
    assert resolved[0]["fingerprint"] == firing_after_restart[0]["fingerprint"]
