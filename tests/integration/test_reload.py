"""Hot reload of a running krwatch: HTTP, SIGHUP and a change to a rule file."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration._processes import (
    Krwatch,
    free_port,
    get_json,
    get_text,
    recorder,
    wait_for,
)

pytestmark = pytest.mark.integration

RELOAD_TIMEOUT_SECONDS = 20.0
"""Time allowed for a reload: the file watcher polls every 2 s and waits for
two equal polls, and this machine may be busy."""

PENDING_RULE = """
      - alert: OpenOrdersHigh
        expr: kpi("open_orders") > {limit}
        for: 1h
"""

RULES = """
groups:
  - name: orders
    interval: 1s
    rules:
{rules}
"""

NEW_RULE = """
      - alert: OpenOrdersVeryHigh
        expr: kpi("open_orders") > 120
"""

BROKEN_RULE = """
      - alert: OpenOrdersBroken
        expr: kpi("open_orders") > > 1
        fore: 1h
"""


def write_rules(path: Path, *rules: str) -> None:
    path.write_text(RULES.format(rules="".join(rules)))


def write_config(work: Path, port: int, kpi_api: str) -> Path:
    write_rules(work / "rules.yaml", PENDING_RULE.format(limit=100))
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
  - name: log
    type: log
route:
  receiver: log
rule_files: [rules.yaml]
"""
    )
    return config


@pytest.fixture
def krwatch(tmp_path: Path) -> Iterator[Krwatch]:
    with recorder() as kpi_api:
        kpi_api.payload = {"data": [{"region": "eu", "open": 150}]}
        port = free_port()
        config = write_config(tmp_path, port, kpi_api.url)
        process = Krwatch(config, port, tmp_path / "krwatch.log")
        process.start()
        try:
            yield process
        finally:
            process.stop()


def metric(krwatch: Krwatch, name: str) -> float | None:
    for line in get_text(krwatch.url + "/metrics", timeout=2).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def alerts(krwatch: Krwatch) -> dict[str, dict[str, Any]]:
    data = get_json(krwatch.url + "/api/v1/alerts", timeout=2)["data"]["alerts"]
    return {alert["alert"]: alert for alert in data}


def rule_names(krwatch: Krwatch) -> list[str]:
    groups = get_json(krwatch.url + "/api/v1/rules", timeout=2)["data"]["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


def last_evaluation(krwatch: Krwatch) -> float:
    groups = get_json(krwatch.url + "/api/v1/rules", timeout=2)["data"]["groups"]
    return float(groups[0]["last_evaluation"] or 0.0)


def post_reload(krwatch: Krwatch) -> tuple[int, Any]:
    request = urllib.request.Request(krwatch.url + "/-/reload", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def last_success(krwatch: Krwatch) -> float:
    stamp = metric(krwatch, "krwatch_config_last_reload_success_timestamp_seconds")
    assert stamp is not None
    return stamp


def reload_succeeded_after(krwatch: Krwatch, moment: float) -> bool:
    successful = metric(krwatch, "krwatch_config_last_reload_successful")
    stamp = metric(krwatch, "krwatch_config_last_reload_success_timestamp_seconds")
    return successful == 1.0 and stamp is not None and stamp > moment


def test_reload_rejects_broken_rules_and_recovers(
    krwatch: Krwatch, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    pending = wait_for(
        lambda: alerts(krwatch).get("OpenOrdersHigh"), 20, "the pending alert"
    )
    active_at = pending["active_at"]
    assert pending["state"] == "pending"

    # A broken rule file, reloaded over HTTP, is rejected as a whole.
    write_rules(rules, PENDING_RULE.format(limit=100), BROKEN_RULE)
    status, body = post_reload(krwatch)
    assert status == 422
    assert any("fore" in problem for problem in body["problems"])
    assert metric(krwatch, "krwatch_config_last_reload_successful") == 0.0
    rejected_at = last_evaluation(krwatch)
    wait_for(
        lambda: last_evaluation(krwatch) > rejected_at + 1.5,
        10,
        "the old rules to keep evaluating",
    )
    assert rule_names(krwatch) == ["OpenOrdersHigh"]

    # Fixing the file is picked up by the file watcher; the unchanged rule
    # keeps its pending alert.
    success_stamp = last_success(krwatch)
    write_rules(rules, PENDING_RULE.format(limit=100), NEW_RULE)
    wait_for(
        lambda: reload_succeeded_after(krwatch, success_stamp),
        RELOAD_TIMEOUT_SECONDS,
        "the file watcher to reload the fixed rules",
    )
    assert rule_names(krwatch) == ["OpenOrdersHigh", "OpenOrdersVeryHigh"]
    wait_for(
        lambda: alerts(krwatch).get("OpenOrdersVeryHigh"), 10, "the new rule's alert"
    )
    assert alerts(krwatch)["OpenOrdersHigh"]["active_at"] == active_at

    # A broken file seen by the watcher sets the metric to 0 as well.
    write_rules(rules, PENDING_RULE.format(limit=100), BROKEN_RULE)
    wait_for(
        lambda: metric(krwatch, "krwatch_config_last_reload_successful") == 0.0,
        RELOAD_TIMEOUT_SECONDS,
        "the file watcher to reject the broken rules",
    )
    assert rule_names(krwatch) == ["OpenOrdersHigh", "OpenOrdersVeryHigh"]

    # A changed expression, reloaded on SIGHUP, starts its alert over.
    success_stamp = last_success(krwatch)
    write_rules(rules, PENDING_RULE.format(limit=110))
    assert krwatch.process is not None
    krwatch.process.send_signal(signal.SIGHUP)
    wait_for(
        lambda: reload_succeeded_after(krwatch, success_stamp),
        RELOAD_TIMEOUT_SECONDS,
        "the reload on SIGHUP",
    )
    restarted = wait_for(
        lambda: alerts(krwatch).get("OpenOrdersHigh"), 10, "the changed rule's alert"
    )
    assert restarted["active_at"] > active_at
    assert "OpenOrdersVeryHigh" not in alerts(krwatch)
