"""The notification: one message about one alert state change.

The rule engine builds one ``Notification`` per state change; the outbox
stores it as JSON (``to_dict``) and the dispatcher hands it to receivers.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from exporters.errors import NotificationError

State = Literal["firing", "resolved"]
STATES: tuple[State, ...] = ("firing", "resolved")


def compute_fingerprint(alert: str, labels: Mapping[str, str]) -> str:
    """Compute the stable identity of an alert from its name and labels.

    The result is the first 16 hex digits of SHA-256 over the alert name and
    the labels sorted by name, so it does not depend on label order and does
    not change with annotations or values.
    """
    canonical = json.dumps(
        [alert, sorted((str(name), str(value)) for name, value in labels.items())],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One message about one alert state change.

    Timestamps are timezone-aware UTC. ``key_result`` and ``kpi`` carry the
    context that receivers show (progress, forecast, owner, blast radius) and
    hold only JSON-safe values.
    """

    alert: str
    fingerprint: str
    state: State
    labels: Mapping[str, str]
    """Alert labels, including ``alertname``."""
    annotations: Mapping[str, str]
    value: float | None
    active_at: datetime
    """When the alert became pending."""
    fired_at: datetime | None
    resolved_at: datetime | None
    generator_url: str
    """Link to the rule in krwatch's HTTP API or status page."""
    key_result: Mapping[str, object] | None
    kpi: Mapping[str, object] | None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    inhibited: bool = False
    """True when the rule engine inhibits this alert because an upstream
    alert fires; an inhibited firing notification is not sent."""

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise NotificationError(
                f"Invalid notification state {self.state!r} for alert "
                f"{self.alert!r}; use 'firing' or 'resolved'."
            )
        for name in ("active_at", "fired_at", "resolved_at", "created_at"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                raise NotificationError(
                    f"Notification field {name} of alert {self.alert!r} is the "
                    f"naive datetime {moment.isoformat()!r}; pass a "
                    "timezone-aware UTC datetime."
                )

    @property
    def idempotency_key(self) -> str:
        """Key that is equal for every delivery of the same state change."""
        return f"{self.fingerprint}:{self.state}:{int(self.active_at.timestamp())}"

    @property
    def summary(self) -> str:
        """One line for titles: the ``summary`` annotation or the alert name."""
        return self.annotations.get("summary") or self.alert

    def to_dict(self) -> dict[str, Any]:
        """Convert to JSON-safe values; ``from_dict`` reads the result back.

        Datetimes become ISO 8601 strings and a non-finite value becomes
        ``None``, because JSON has no NaN.
        """
        return {
            "alert": self.alert,
            "fingerprint": self.fingerprint,
            "idempotency_key": self.idempotency_key,
            "state": self.state,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "value": _finite_or_none(self.value),
            "active_at": _format_time(self.active_at),
            "fired_at": _format_time(self.fired_at),
            "resolved_at": _format_time(self.resolved_at),
            "generator_url": self.generator_url,
            "key_result": _json_safe(self.key_result),
            "kpi": _json_safe(self.kpi),
            "created_at": _format_time(self.created_at),
            "inhibited": self.inhibited,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        """Build a notification from the output of ``to_dict``.

        Raises
        ------
        NotificationError
            If a required field is missing or has the wrong type.
        """
        try:
            return cls(
                alert=str(data["alert"]),
                fingerprint=str(data["fingerprint"]),
                state=data["state"],
                labels={str(k): str(v) for k, v in data["labels"].items()},
                annotations={str(k): str(v) for k, v in data["annotations"].items()},
                value=None if data["value"] is None else float(data["value"]),
                active_at=_parse_time(data["active_at"]),
                fired_at=_parse_optional_time(data.get("fired_at")),
                resolved_at=_parse_optional_time(data.get("resolved_at")),
                generator_url=str(data.get("generator_url", "")),
                key_result=data.get("key_result"),
                kpi=data.get("kpi"),
                created_at=_parse_time(data["created_at"]),
                inhibited=bool(data.get("inhibited", False)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise NotificationError(
                f"Invalid stored notification: {error!r}. The outbox row was "
                "written by an incompatible krwatch; delete the row or run the "
                "version that wrote it."
            ) from error


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None

    return float(value)


def _format_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None

    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_optional_time(text: str | None) -> datetime | None:
    return None if text is None else _parse_time(text)


def _json_safe(value: object) -> Any:
    """Convert context values to what ``json.dumps`` writes without loss."""
    if value is None or isinstance(value, bool | int | str):
        return value

    if isinstance(value, numbers.Integral):
        return int(value)

    if isinstance(value, numbers.Real):
        return _finite_or_none(float(value))

    if isinstance(value, datetime):
        return _format_time(value)

    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}

    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(item) for item in value]

    if hasattr(value, "isoformat"):
        return value.isoformat()

    return str(value)
