"""The ``slack`` receiver: a Slack incoming webhook with Block Kit blocks.

Each notification becomes a header, a section with the summary, a section
of fields (value, key result, forecast, attainment probability, owner) and a
context block with links. Texts are cut to Slack's limits (Block Kit
reference, api.slack.com/reference/block-kit): 50 blocks per message, 150
characters in a header, 3000 in a section text, 10 fields of 2000
characters, 10 context elements.
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

MAX_BLOCKS = 50
MAX_HEADER_CHARS = 150
MAX_SECTION_CHARS = 3000
MAX_FIELDS = 10
MAX_FIELD_CHARS = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_CHARS = 3000
BLOCKS_PER_NOTIFICATION = 5
"""Header, summary, fields, context and a divider."""
MAX_NOTIFICATIONS_PER_MESSAGE = 10
"""Notifications that fit in ``MAX_BLOCKS`` with one block to spare."""


@dataclass(frozen=True, kw_only=True)
class SlackSettings(ReceiverSettings):
    url: Secret
    """Incoming webhook URL; a Secret because the URL is the credential."""
    username: str = ""
    """Sender name shown in Slack, if the webhook allows overriding it."""
    icon_emoji: str = ""
    max_batch_size: int = 8
    """Maximum number of notifications in one message, at most 10 so that
    all fit in 50 blocks. The dispatcher sends the rest of a group in
    further messages."""


def build_message(
    notifications: Sequence[Notification], settings: SlackSettings
) -> dict[str, Any]:
    """Build the incoming webhook body for one batch."""
    blocks: list[dict[str, Any]] = []
    displayed = 0
    for notification in notifications:
        if len(blocks) + BLOCKS_PER_NOTIFICATION > MAX_BLOCKS - 1:
            break

        if blocks:
            blocks.append({"type": "divider"})
        blocks.extend(_notification_blocks(notification))
        displayed += 1

    hidden = len(notifications) - displayed
    if hidden:
        blocks.append(_context([f"{hidden} more notifications are not shown."]))

    message: dict[str, Any] = {
        "text": _cut(_fallback_text(notifications), MAX_FALLBACK_CHARS),
        "blocks": blocks,
    }
    if settings.username:
        message["username"] = settings.username
    if settings.icon_emoji:
        message["icon_emoji"] = settings.icon_emoji
    return message


def _notification_blocks(notification: Notification) -> list[dict[str, Any]]:
    prefix = "FIRING" if notification.state == "firing" else "RESOLVED"
    header: dict[str, Any] = {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": _cut(f"[{prefix}] {notification.alert}", MAX_HEADER_CHARS),
            "emoji": True,
        },
    }
    text = f"*{_escape(notification.summary)}*"
    description = notification.annotations.get("description")
    if description:
        text += "\n" + _escape(description)
    summary = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _cut(text, MAX_SECTION_CHARS)},
    }
    blocks: list[dict[str, Any]] = [header, summary]
    fields = _fields(notification)
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append(_context(_links(notification)))
    return blocks


def _fields(notification: Notification) -> list[dict[str, str]]:
    pairs: list[tuple[str, str]] = []
    if notification.value is not None:
        pairs.append(("Value", _number(notification.value)))
    key_result = notification.key_result or {}
    if key_result:
        name = str(key_result.get("name", ""))
        objective = key_result.get("objective")
        pairs.append(("Key result", f"{name} ({objective})" if objective else name))
        pairs.append(("Forecast", _forecast(key_result)))
        probability = key_result.get("attainment_probability")
        if isinstance(probability, int | float):
            pairs.append(("Attainment probability", f"{probability:.0%}"))
        for label, key in (("Owner", "owner"), ("Status", "status"), ("Due", "due")):
            if key_result.get(key) is not None:
                pairs.append((label, str(key_result[key])))
        if key_result.get("decide_by") is not None:
            pairs.append(("Decide by", str(key_result["decide_by"])))
    downstream = (notification.kpi or {}).get("downstream")
    if isinstance(downstream, list | tuple) and downstream:
        pairs.append(("Downstream KPIs", ", ".join(str(item) for item in downstream)))
    return [
        {
            "type": "mrkdwn",
            "text": _cut(f"*{label}*\n{_escape(value)}", MAX_FIELD_CHARS),
        }
        for label, value in pairs[:MAX_FIELDS]
    ]


def _forecast(key_result: Mapping[str, object]) -> str:
    forecast = key_result.get("forecast")
    if not isinstance(forecast, int | float):
        return "no forecast"

    text = f"{_number(forecast)} vs target {_number(key_result.get('target'))}"
    lower, upper = key_result.get("lower_80"), key_result.get("upper_80")
    if isinstance(lower, int | float) and isinstance(upper, int | float):
        text += f" (80%: {_number(lower)} to {_number(upper)})"
    return text


def _links(notification: Notification) -> list[str]:
    links = []
    if notification.generator_url:
        links.append(f"<{notification.generator_url}|Rule in krwatch>")
    for name, text in (("runbook_url", "Runbook"), ("dashboard_url", "Dashboard")):
        href = notification.annotations.get(name)
        if href:
            links.append(f"<{href}|{text}>")
    labels = ", ".join(f"{k}={v}" for k, v in sorted(notification.labels.items()))
    links.append(_escape(labels) or "no labels")
    return links[:MAX_CONTEXT_ELEMENTS]


def _context(texts: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": _cut(text, MAX_FIELD_CHARS)}
            for text in texts[:MAX_CONTEXT_ELEMENTS]
        ],
    }


def _fallback_text(notifications: Sequence[Notification]) -> str:
    return "\n".join(
        f"[{notification.state.upper()}] {notification.alert}: {notification.summary}"
        for notification in notifications
    )


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a" if value is None else str(value)

    if abs(value) >= 1000:
        return f"{value:,.0f}"

    return f"{value:.4g}"


def _escape(text: str) -> str:
    """Escape the three characters that Slack mrkdwn reserves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SlackReceiver(Receiver):
    """Posts each batch as one Slack message."""

    type_name: ClassVar[str] = "slack"
    settings_class: ClassVar[type[ReceiverSettings]] = SlackSettings
    settings: SlackSettings

    @property
    def max_batch_size(self) -> int:
        return min(max(1, self.settings.max_batch_size), MAX_NOTIFICATIONS_PER_MESSAGE)

    @property
    def target(self) -> str:
        return host_of(reveal(self.settings.url))

    def deliver(self, notifications: Sequence[Notification]) -> None:
        body = dump_json(build_message(notifications, self.settings))
        post_json(self, reveal(self.settings.url), body)
