"""The ``pagerduty`` receiver: PagerDuty Events API v2.

Each notification becomes one event POSTed to ``/v2/enqueue``: a firing
notification a ``trigger``, a resolved one a ``resolve``. The ``dedup_key``
is the alert fingerprint, so repeated triggers update one PagerDuty alert and
the resolve closes it. PagerDuty returns 202 on success, 400 for an invalid
event (not retried), 429 when rate-limited and 5xx on its own errors (both
retried).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITIES = ("critical", "error", "warning", "info")
SUMMARY_MAX_CHARS = 1024
"""PagerDuty truncates ``payload.summary`` beyond this length."""
DEDUP_KEY_MAX_CHARS = 255

# Common spellings of the severity label mapped onto PagerDuty's four values.
_SEVERITY_ALIASES = {
    "critical": "critical",
    "crit": "critical",
    "page": "critical",
    "fatal": "critical",
    "high": "error",
    "error": "error",
    "err": "error",
    "major": "error",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "minor": "warning",
    "info": "info",
    "informational": "info",
    "low": "info",
    "none": "info",
}


@dataclass(frozen=True, kw_only=True)
class PagerDutySettings(ReceiverSettings):
    routing_key: Secret
    """Integration key of the PagerDuty service (Events API v2)."""
    url: str = EVENTS_URL
    """Events API endpoint; change it only for tests or a proxy."""
    severity_label: str = "severity"
    """Alert label whose value gives the event severity."""
    default_severity: str = "error"
    """Severity when the label is missing or not recognised; one of
    critical, error, warning, info."""
    source: str = ""
    """``payload.source``; defaults to the KPI name, else the alert name."""
    client: str = "krwatch"


def map_severity(labels: Mapping[str, str], label: str, default: str) -> str:
    """Map a severity label value onto critical, error, warning or info."""
    value = labels.get(label, "").strip().lower()
    return _SEVERITY_ALIASES.get(value, default if default in SEVERITIES else "error")


def build_event(
    notification: Notification, settings: PagerDutySettings
) -> dict[str, Any]:
    """Build one Events API v2 event for a notification."""
    event: dict[str, Any] = {
        "routing_key": reveal(settings.routing_key),
        "event_action": "trigger" if notification.state == "firing" else "resolve",
        "dedup_key": notification.fingerprint[:DEDUP_KEY_MAX_CHARS],
    }
    if notification.state == "resolved":
        return event

    event["payload"] = _payload(notification, settings)
    event["client"] = settings.client
    if notification.generator_url:
        event["client_url"] = notification.generator_url
    event["links"] = _links(notification)
    event["images"] = _images(notification)
    return event


def _payload(notification: Notification, settings: PagerDutySettings) -> dict[str, Any]:
    kpi_name = _context_text(notification.kpi, "name")
    summary = notification.summary
    if len(summary) > SUMMARY_MAX_CHARS:
        summary = summary[: SUMMARY_MAX_CHARS - 1] + "…"
    details: dict[str, Any] = {
        "labels": dict(notification.labels),
        "annotations": dict(notification.annotations),
        "value": notification.to_dict()["value"],
        "active_at": notification.to_dict()["active_at"],
        "idempotency_key": notification.idempotency_key,
    }
    if notification.key_result is not None:
        details["key_result"] = notification.to_dict()["key_result"]
    if notification.kpi is not None:
        details["kpi"] = notification.to_dict()["kpi"]
    payload: dict[str, Any] = {
        "summary": summary,
        "source": settings.source or kpi_name or notification.alert,
        "severity": map_severity(
            notification.labels, settings.severity_label, settings.default_severity
        ),
        "timestamp": notification.to_dict()["fired_at"]
        or notification.to_dict()["active_at"],
        "class": notification.alert,
        "custom_details": details,
    }
    if kpi_name:
        payload["component"] = kpi_name
    objective = _context_text(notification.key_result, "objective")
    if objective:
        payload["group"] = objective
    return payload


def _links(notification: Notification) -> list[dict[str, str]]:
    links = []
    if notification.generator_url:
        links.append({"href": notification.generator_url, "text": "Rule in krwatch"})
    for name, text in (("runbook_url", "Runbook"), ("dashboard_url", "Dashboard")):
        href = notification.annotations.get(name)
        if href:
            links.append({"href": href, "text": text})
    return links


def _images(notification: Notification) -> list[dict[str, str]]:
    source = notification.annotations.get("image_url")
    if not source:
        return []

    image = {"src": source, "alt": notification.summary[:SUMMARY_MAX_CHARS]}
    if notification.generator_url:
        image["href"] = notification.generator_url
    return [image]


def _context_text(context: Mapping[str, object] | None, key: str) -> str:
    if not context:
        return ""

    value = context.get(key)
    return "" if value is None else str(value)


class PagerDutyReceiver(Receiver):
    """Sends one Events API v2 event per notification."""

    type_name: ClassVar[str] = "pagerduty"
    settings_class: ClassVar[type[ReceiverSettings]] = PagerDutySettings
    default_batch_size: ClassVar[int] = 1
    settings: PagerDutySettings

    @property
    def target(self) -> str:
        return host_of(self.settings.url)

    def deliver(self, notifications: Sequence[Notification]) -> None:
        for notification in notifications:
            body = dump_json(build_event(notification, self.settings))
            post_json(self, self.settings.url, body)
