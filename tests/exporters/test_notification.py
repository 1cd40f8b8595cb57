from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from conftest import ACTIVE_AT, make_notification

from exporters.errors import NotificationError
from exporters.notification import Notification, compute_fingerprint


def test_notification_idempotency_key_format() -> None:
    notification = make_notification()

    assert notification.idempotency_key == (
        f"{notification.fingerprint}:firing:{int(ACTIVE_AT.timestamp())}"
    )


def test_notification_idempotency_key_differs_by_state() -> None:
    firing = make_notification()
    resolved = make_notification(state="resolved")

    assert firing.fingerprint == resolved.fingerprint
    assert firing.idempotency_key != resolved.idempotency_key


def test_notification_round_trip_through_json() -> None:
    original = make_notification(
        state="resolved", created_at=datetime(2026, 3, 2, 10, 0, 1, 250000, tzinfo=UTC)
    )

    restored = Notification.from_dict(json.loads(json.dumps(original.to_dict())))

    assert restored == original
    assert restored.idempotency_key == original.idempotency_key


def test_notification_to_dict_is_json_safe() -> None:
    notification = make_notification(
        value=math.nan,
        key_result={"forecast": np.float64(1.5), "count": np.int64(3), "low": math.inf},
        active_at=datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=2))),
    )

    data = notification.to_dict()
    text = json.dumps(data, allow_nan=False)

    assert data["value"] is None
    assert data["key_result"] == {"forecast": 1.5, "count": 3, "low": None}
    assert data["active_at"] == "2026-03-02T08:00:00Z"
    assert "NaN" not in text


def test_notification_rejects_naive_datetime() -> None:
    with pytest.raises(NotificationError, match="naive datetime '2026-03-02T09:00:00'"):
        make_notification(active_at=datetime(2026, 3, 2, 9, 0))


def test_notification_rejects_unknown_state() -> None:
    with pytest.raises(NotificationError, match="Invalid notification state 'pending'"):
        make_notification(state="pending")


def test_notification_from_dict_reports_missing_field() -> None:
    data = make_notification().to_dict()
    del data["labels"]

    with pytest.raises(
        NotificationError, match="Invalid stored notification: KeyError"
    ):
        Notification.from_dict(data)


def test_fingerprint_ignores_label_order() -> None:
    first = compute_fingerprint("ChurnHigh", {"team": "retention", "region": "eu"})
    second = compute_fingerprint("ChurnHigh", {"region": "eu", "team": "retention"})

    assert first == second
    assert len(first) == 16
    assert int(first, 16) >= 0


def test_fingerprint_differs_by_label_value() -> None:
    eu = compute_fingerprint("ChurnHigh", {"region": "eu"})
    us = compute_fingerprint("ChurnHigh", {"region": "us"})

    assert eu != us
