"""Exceptions of the notification path: routing, silences, outbox, receivers."""

from __future__ import annotations

from monitor.errors import KrwatchError


class ExporterError(KrwatchError):
    """Root of the exceptions that the exporters package raises on purpose."""


class NotificationError(ExporterError):
    """A stored or received notification cannot be read."""


class RouteError(ExporterError):
    """A route tree is invalid, for example a regular expression that fails."""


class MatcherError(ExporterError):
    """A label matcher such as ``severity=~"crit.*"`` is invalid."""


class SilenceError(ExporterError):
    """A silence cannot be created, found or expired."""


class OutboxError(ExporterError):
    """The outbox tables are missing or have an unsupported schema version."""


class DeliveryError(ExporterError):
    """One delivery attempt to a receiver failed.

    Parameters
    ----------
    message : str
        Full sentence for the log; it must not contain a secret.
    retryable : bool
        True for network errors, timeouts, 429 and 5xx responses, which the
        dispatcher retries with backoff; False for other failures, which mark
        the notification failed.
    retry_after : float or None
        Seconds the receiver asked to wait (from ``Retry-After``), if any.
    status : int or None
        HTTP status code of the response, if there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        super().__init__(message)
