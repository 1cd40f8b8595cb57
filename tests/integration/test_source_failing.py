"""A failing source sends one source alert and keeps its rules' alerts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration._processes import (
    Krwatch,
    free_port,
    get_json,
    recorder,
    wait_for,
)
from tests.integration.test_restart import alert_of, write_config

pytestmark = pytest.mark.integration


def test_failing_source_alerts_once_and_keeps_rule_alerts(tmp_path: Path) -> None:
    with recorder() as kpi_api, recorder() as webhook:
        kpi_api.payload = {"data": [{"region": "eu", "open": 150}]}
        port = free_port()
        config = write_config(tmp_path, port, kpi_api.url, webhook.url, "0s")
        krwatch = Krwatch(config, port, tmp_path / "krwatch.log")
        krwatch.start()
        try:
            wait_for(
                lambda: (a := alert_of(krwatch)) and a["state"] == "firing",
                30,
                "OpenOrdersHigh to fire",
            )
            kpi_api.status = 500

            def source_alerts() -> list[dict[str, object]]:
                return [
                    n
                    for body in webhook.json_bodies()
                    for n in body["notifications"]
                    if n["alert"] == "KrwatchSourceFailing" and n["state"] == "firing"
                ]

            (notification,) = wait_for(source_alerts, 60, "the source alert")
            firing = alert_of(krwatch)
            listed = get_json(krwatch.url + "/api/v1/alerts")["data"]["alerts"]
        finally:
            krwatch.stop()

    assert notification["labels"]["source"] == "kpi_api"
    (source_alert,) = [a for a in listed if a["alert"] == "KrwatchSourceFailing"]
    assert source_alert["state"] == "firing"
    assert source_alert["labels"]["source"] == "kpi_api"
    assert source_alert["blast_radius"]["kpis"] == ["open_orders"]
    # The rule's alert keeps firing while its source fails (no_data: keep_state).
    assert firing is not None
    assert firing["state"] == "firing"
    resolved = [
        n
        for body in webhook.json_bodies()
        for n in body["notifications"]
        if n["alert"] == "OpenOrdersHigh" and n["state"] == "resolved"
    ]
    assert resolved == []
