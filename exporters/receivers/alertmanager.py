"""The ``alertmanager`` receiver: Alertmanager API v2, ``POST /api/v2/alerts``.

Alertmanager treats an alert as resolved once its ``endsAt`` has passed, so
firing alerts are sent with ``endsAt`` four resend intervals ahead (the same
margin Prometheus uses) and sent again every ``resend_interval`` while they
fire. A resolved alert is sent with ``endsAt`` set to its resolve time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from exporters.notification import Notification
from exporters.receivers.base import (
    Receiver,
    ReceiverSettings,
    dump_json,
    host_of,
    post_json,
    reveal,
)
from monitor.secrets import Secret

ALERTS_PATH = "/api/v2/alerts"
RESEND_MARGIN_FACTOR = 4
"""Firing alerts expire this many resend intervals after each send."""


@dataclass(frozen=True, kw_only=True)
class AlertmanagerSettings(ReceiverSettings):
    url: str
    """Base URL of Alertmanager, such as ``http://127.0.0.1:9093``."""
    resend_interval: timedelta = timedelta(minutes=1)
    """Interval at which firing alerts are sent again."""
    headers: Mapping[str, Secret] = field(default_factory=dict)
    """Extra request headers, such as an Authorization token."""


def build_alerts(
    notifications: Sequence[Notification],
    resend_interval: timedelta,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Build the JSON list of alerts for ``POST /api/v2/alerts``."""
    moment = now or datetime.now(UTC)
    alerts = []
    for notification in notifications:
        starts_at = notification.fired_at or notification.active_at
        if notification.state == "resolved":
            ends_at = notification.resolved_at or moment
        else:
            ends_at = moment + RESEND_MARGIN_FACTOR * resend_interval
        alerts.append(
            {
                "labels": dict(notification.labels),
                "annotations": dict(notification.annotations),
                "startsAt": _format(starts_at),
                "endsAt": _format(ends_at),
                "generatorURL": notification.generator_url,
            }
        )
    return alerts


def _format(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


class AlertmanagerReceiver(Receiver):
    """Posts alerts to Alertmanager and keeps firing ones alive."""

    type_name: ClassVar[str] = "alertmanager"
    settings_class: ClassVar[type[ReceiverSettings]] = AlertmanagerSettings
    settings: AlertmanagerSettings

    @property
    def resend_interval(self) -> timedelta | None:
        return self.settings.resend_interval

    @property
    def target(self) -> str:
        return host_of(self.settings.url)

    @property
    def alerts_url(self) -> str:
        return self.settings.url.rstrip("/") + ALERTS_PATH

    def deliver(self, notifications: Sequence[Notification]) -> None:
        body = dump_json(build_alerts(notifications, self.settings.resend_interval))
        headers = {name: reveal(value) for name, value in self.settings.headers.items()}
        post_json(self, self.alerts_url, body, headers=headers)
