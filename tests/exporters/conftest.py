from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from exporters.notification import Notification, compute_fingerprint
from exporters.outbox import create_tables
from monitor.store import Store

ACTIVE_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

KEY_RESULT = {
    "name": "weekly_passengers",
    "objective": "grow_ridership",
    "owner": "ops-lead",
    "kpi": "taxi_trips",
    "measure": "cumulative",
    "direction": "increase",
    "baseline": 0.0,
    "target": 6500000.0,
    "due": "2026-03-08T23:59:59Z",
    "current": 2100000.0,
    "progress": 0.323,
    "expected_progress": 0.43,
    "forecast": 5900000.0,
    "lower_80": 5600000.0,
    "upper_80": 6200000.0,
    "lower_95": 5400000.0,
    "upper_95": 6400000.0,
    "attainment_probability": 0.12,
    "shortfall": 600000.0,
    "required_run_rate": 1100000.0,
    "decide_by": "2026-03-04",
    "status": "off_track",
}


def make_notification(
    alert: str = "RidershipForecastMiss",
    state: str = "firing",
    labels: dict[str, str] | None = None,
    active_at: datetime = ACTIVE_AT,
    **overrides: Any,
) -> Notification:
    all_labels = {"alertname": alert, "severity": "critical", **(labels or {})}
    fields: dict[str, Any] = {
        "alert": alert,
        "fingerprint": compute_fingerprint(alert, all_labels),
        "state": state,
        "labels": all_labels,
        "annotations": {"summary": f"{alert} for {all_labels}"},
        "value": 0.12,
        "active_at": active_at,
        "fired_at": active_at + timedelta(minutes=5),
        "resolved_at": active_at + timedelta(hours=1) if state == "resolved" else None,
        "generator_url": "http://localhost:9464/api/v1/rules#RidershipForecastMiss",
        "key_result": KEY_RESULT,
        "kpi": {"name": "taxi_trips", "unit": "passengers", "downstream": []},
    }
    fields.update(overrides)
    return Notification(**fields)


@pytest.fixture
def notification_factory() -> Callable[..., Notification]:
    return make_notification


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "krwatch.db")
    with opened.transaction() as connection:
        create_tables(connection)
    yield opened
    opened.close()
