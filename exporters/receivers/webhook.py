"""The ``webhook`` receiver: a versioned JSON body POSTed to a URL.

The body is described by ``docs/webhook-schema.json``. With a
``signing_secret``, each request carries a timestamp header and an
HMAC-SHA256 signature over ``timestamp + "." + body``, so the receiving side
can check the sender and reject replays.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

BODY_VERSION = "1"
SIGNATURE_PREFIX = "sha256="


@dataclass(frozen=True, kw_only=True)
class WebhookSettings(ReceiverSettings):
    url: Secret
    """URL that receives the POST; a Secret because it may hold a token."""
    headers: Mapping[str, Secret] = field(default_factory=dict)
    """Extra request headers, such as an Authorization token."""
    signing_secret: Secret | None = None
    """Key of the HMAC-SHA256 signature; leave it out to send no signature."""
    signature_header: str = "X-Krwatch-Signature"
    timestamp_header: str = "X-Krwatch-Timestamp"
    max_batch_size: int = 100
    """Maximum number of notifications in one body."""


def build_body(
    receiver_name: str, notifications: Sequence[Notification]
) -> dict[str, Any]:
    """Build the version 1 webhook body for one batch."""
    firing = any(notification.state == "firing" for notification in notifications)
    return {
        "version": BODY_VERSION,
        "receiver": receiver_name,
        "status": "firing" if firing else "resolved",
        "notifications": [notification.to_dict() for notification in notifications],
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header value for a body sent at ``timestamp``."""
    message = timestamp.encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


class WebhookReceiver(Receiver):
    """POSTs each batch as one JSON body."""

    type_name: ClassVar[str] = "webhook"
    settings_class: ClassVar[type[ReceiverSettings]] = WebhookSettings
    settings: WebhookSettings

    @property
    def max_batch_size(self) -> int:
        return max(1, self.settings.max_batch_size)

    @property
    def target(self) -> str:
        return host_of(reveal(self.settings.url))

    def deliver(self, notifications: Sequence[Notification]) -> None:
        body = dump_json(build_body(self.name, notifications))
        headers = {name: reveal(value) for name, value in self.settings.headers.items()}
        if self.settings.signing_secret is not None:
            timestamp = str(int(time.time()))
            headers[self.settings.timestamp_header] = timestamp
            headers[self.settings.signature_header] = sign(
                reveal(self.settings.signing_secret), timestamp, body
            )
        if len(notifications) == 1:
            headers["Idempotency-Key"] = notifications[0].idempotency_key
        post_json(self, reveal(self.settings.url), body, headers=headers)
