"""The receiver interface, shared settings and the HTTP helper.

A receiver type is a ``Receiver`` subclass with a ``settings_class``, a
frozen keyword-only dataclass that the config loader fills from the
receiver's YAML keys, and ``deliver``, which sends a batch of notifications
or raises ``DeliveryError``. Every HTTP request goes through one shared
``requests.Session`` with the receiver's timeout.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from exporters.errors import DeliveryError
from exporters.notification import Notification
from monitor.secrets import Secret

logger = logging.getLogger(__name__)

USER_AGENT = "krwatch/0.1"
HTTP_POOL_SIZE = 16
"""Connections kept per host, enough for one worker thread per receiver."""

__all__ = [
    "DeliveryError",
    "Receiver",
    "ReceiverSettings",
    "create_session",
    "parse_retry_after",
    "post_json",
]


@dataclass(frozen=True, kw_only=True)
class ReceiverSettings:
    """Settings that every receiver type has."""

    timeout: timedelta = timedelta(seconds=10)
    """Maximum time of one delivery attempt (connect and read)."""
    max_age: timedelta = timedelta(hours=24)
    """A notification not delivered this long after it was created is
    dropped, logged and counted."""
    initial_backoff: timedelta = timedelta(seconds=1)
    """Upper bound of the first retry delay; it doubles on each attempt."""
    max_backoff: timedelta = timedelta(minutes=5)
    """Upper bound of any retry delay that the receiver does not set itself
    with ``Retry-After``."""


class Receiver(ABC):
    """A notification target.

    Parameters
    ----------
    name : str
        The receiver's ``name`` in the configuration.
    settings : ReceiverSettings
        An instance of the type's ``settings_class``.
    session : requests.Session
        Shared by every receiver; see ``create_session``.
    base_dir : Path
        Folder against which relative paths in settings resolve.
    """

    type_name: ClassVar[str]
    settings_class: ClassVar[type[ReceiverSettings]] = ReceiverSettings
    default_batch_size: ClassVar[int] = 100

    def __init__(
        self,
        name: str,
        settings: ReceiverSettings,
        *,
        session: requests.Session,
        base_dir: Path = Path("."),
    ) -> None:
        if not isinstance(settings, self.settings_class):
            raise TypeError(
                f"Receiver {name!r} of type {self.type_name!r} needs settings "
                f"of class {self.settings_class.__name__}, got "
                f"{type(settings).__name__}."
            )

        self.name = name
        self.settings = settings
        self.session = session
        self.base_dir = base_dir

    @property
    def max_batch_size(self) -> int:
        """Maximum number of notifications passed to one ``deliver`` call."""
        return self.default_batch_size

    @property
    def timeout_seconds(self) -> float:
        return self.settings.timeout.total_seconds()

    @property
    def resend_interval(self) -> timedelta | None:
        """Interval at which firing alerts are sent again, or None.

        The dispatcher uses the shorter of this and the route's
        ``repeat_interval``.
        """
        return None

    @property
    def target(self) -> str:
        """Where deliveries go, for logs; never contains a secret."""
        return self.type_name

    @abstractmethod
    def deliver(self, notifications: Sequence[Notification]) -> None:
        """Send the notifications of one group in order.

        Raises
        ------
        DeliveryError
            If the attempt failed. ``retryable`` is True when the dispatcher
            should try again.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, target={self.target!r})"


def create_session() -> requests.Session:
    """Create the HTTP session that all receivers share."""
    # NOTE: requests does not document Session as thread-safe. Workers only
    # call post(), whose connection pool (urllib3) is thread-safe, and never
    # change the session's headers, cookies or adapters after this point.
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=HTTP_POOL_SIZE, pool_maxsize=HTTP_POOL_SIZE)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def host_of(url: str) -> str:
    """Return ``host[:port]`` of a URL, which is safe to log."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def post_json(
    receiver: Receiver,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> requests.Response:
    """POST a JSON body and turn each failure into a ``DeliveryError``.

    Network errors, timeouts, 429 and 5xx responses are retryable; other
    non-2xx responses are not. Messages name the receiver and the host but
    never the full URL, because a URL may hold a token.
    """
    all_headers = {"Content-Type": "application/json"}
    all_headers.update(headers or {})
    host = host_of(url)
    try:
        response = receiver.session.post(
            url, data=body, headers=all_headers, timeout=receiver.timeout_seconds
        )
    except requests.Timeout:
        raise DeliveryError(
            f"Receiver {receiver.name!r}: the request to {host} timed out after "
            f"{receiver.timeout_seconds:g}s.",
            retryable=True,
        ) from None
    except requests.RequestException as error:
        # The exception text contains the URL, so only its class is kept.
        raise DeliveryError(
            f"Receiver {receiver.name!r}: the request to {host} failed with "
            f"{type(error).__name__}.",
            retryable=True,
        ) from None

    if response.status_code < 300:
        return response

    raise _status_error(receiver, host, response, now)


def _status_error(
    receiver: Receiver,
    host: str,
    response: requests.Response,
    now: datetime | None,
) -> DeliveryError:
    status = response.status_code
    detail = _short_text(response.text)
    retryable = status == 429 or status >= 500
    retry_after = None
    if retryable:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
    advice = "it will be retried" if retryable else "it will not be retried"
    return DeliveryError(
        f"Receiver {receiver.name!r}: {host} returned HTTP {status} "
        f"({detail}); {advice}.",
        retryable=retryable,
        retry_after=retry_after,
        status=status,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Read ``Retry-After`` as delay seconds or an HTTP date.

    Returns None when the header is absent or invalid, and 0 for a date in
    the past.
    """
    if value is None or not value.strip():
        return None

    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        return max(seconds, 0.0)

    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None

    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    reference = now or datetime.now(UTC)
    return max((moment - reference).total_seconds(), 0.0)


def dump_json(data: Any) -> bytes:
    """Encode a body compactly as UTF-8 JSON; NaN is rejected."""
    return json.dumps(
        data, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def reveal(secret: Secret | str) -> str:
    """Return the plain value to send; accepts a plain string in tests."""
    return secret.reveal() if isinstance(secret, Secret) else secret


def _short_text(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    if not flat:
        return "empty body"

    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
