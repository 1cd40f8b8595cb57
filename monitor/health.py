"""Source health: up or failing, since when, and why; the source alert.

Each source has one ``SourceHealth`` record, updated after every poll. While
a source fails, ``SourceAlerts`` keeps one built-in alert,
``KrwatchSourceFailing{source=...}``, which goes through the normal alert
lifecycle (pending, then firing after the source's ``failing_for``, then
resolved when a poll succeeds) and the normal routing, so on-call gets one
alert about the source instead of one per KPI.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporters.notification import Notification
from monitor.store import Store
from rules.lifecycle import FIRING, INACTIVE, AlertState, Outcome, Timing, step

logger = logging.getLogger(__name__)

LOG_INTERVAL_SECONDS = 300.0
"""A repeated error of one source and reason is logged at most this often."""

SOURCE_ALERT = "KrwatchSourceFailing"
SOURCE_ALERT_GROUP = "krwatch_sources"
SOURCE_ALERT_SEVERITY = "warning"
POLL_JITTER_SECONDS = 1.0
"""Slack subtracted from ``failing_for``, because polls start a little late
or early against their schedule. Without it, three failed intervals could
miss the threshold by milliseconds and fire one poll later."""

_STATE_KEY = "source_alerts"
_STATE_VERSION = 1


@dataclass
class SourceHealth:
    """Mutable health record of one source, updated after each poll."""

    name: str
    type: str
    up: bool = False
    polls: int = 0
    last_poll: float | None = None
    last_success: float | None = None
    failing_since: float | None = None
    last_error: str | None = None
    last_error_reason: str | None = None
    last_duration_seconds: float | None = None
    samples: int = 0
    consecutive_failures: int = 0
    held_back: int = 0
    """Samples waiting for the source's ``delay``."""
    failing_for_seconds: float | None = None
    """Failure time after which the source alert fires."""
    alert_state: str = INACTIVE

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def record_success(self, now: float, inserted: int) -> None:
        """Mark a successful poll that stored ``inserted`` new samples."""
        if self.failing_since is not None:
            logger.info(
                "Source %s is up again after %d failed polls",
                self.name,
                self.consecutive_failures,
            )
        self.up = True
        self.polls += 1
        self.last_poll = now
        self.last_success = now
        self.failing_since = None
        self.consecutive_failures = 0
        self.samples += inserted

    def record_failure(self, now: float, reason: str, message: str) -> None:
        """Mark a failed poll with its bounded ``reason`` and full message."""
        self.up = False
        self.polls += 1
        self.last_poll = now
        self.last_error = message
        self.last_error_reason = reason
        self.consecutive_failures += 1
        if self.failing_since is None:
            self.failing_since = now

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "up": self.up,
            "polls": self.polls,
            "last_poll": self.last_poll,
            "last_success": self.last_success,
            "failing_since": self.failing_since,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "last_error_reason": self.last_error_reason,
            "last_duration_seconds": self.last_duration_seconds,
            "samples": self.samples,
            "held_back": self.held_back,
            "failing_for_seconds": self.failing_for_seconds,
            "alert_state": self.alert_state,
        }


@dataclass
class RateLimitedLog:
    """Log a repeated warning once per key and interval, counting the rest."""

    interval_seconds: float = LOG_INTERVAL_SECONDS
    _last: dict[tuple[str, str], float] = field(default_factory=dict)
    _suppressed: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def warning(self, source: str, reason: str, message: str) -> bool:
        """Log ``message`` unless the same source and reason logged recently.

        Returns whether the line was written.
        """
        key = (source, reason)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_seconds:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False

            suppressed = self._suppressed.pop(key, 0)
            self._last[key] = now
        if suppressed:
            logger.warning(
                "Source %s: %s (%s; %d more like it since the last report)",
                source,
                message,
                reason,
                suppressed,
            )
        else:
            logger.warning("Source %s: %s (%s)", source, message, reason)
        return True


class SourceHealthCollector(Collector):
    """Export source health that the shared state collector does not cover.

    Parameters
    ----------
    records : callable
        Returns the current health records.
    """

    def __init__(self, records: Callable[[], Iterable[SourceHealth]]) -> None:
        self.records = records

    def collect(self) -> Iterator[Metric]:
        labels = ["source", "type"]
        since = GaugeMetricFamily(
            "krwatch_source_failing_since_timestamp_seconds",
            "Time of the first failed poll of a source that is failing now.",
            labels=labels,
        )
        failures = GaugeMetricFamily(
            "krwatch_source_consecutive_failures",
            "Failed polls of a source since its last successful poll.",
            labels=labels,
        )
        held = GaugeMetricFamily(
            "krwatch_source_held_back_samples",
            "Samples of a source that wait for its delay before they are stored.",
            labels=labels,
        )
        for record in list(self.records()):
            names = [record.name, record.type]
            if record.failing_since is not None:
                since.add_metric(names, record.failing_since)
            failures.add_metric(names, float(record.consecutive_failures))
            held.add_metric(names, float(record.held_back))
        yield since
        yield failures
        yield held


Enqueue = Callable[[sqlite3.Connection, Notification], None]


class SourceAlerts:
    """The ``KrwatchSourceFailing`` alert of each source.

    State is kept in the store's metadata, written in the same transaction
    as the notification it causes, so a restart neither resets the pending
    time nor sends a firing notification twice.

    Parameters
    ----------
    store : Store
    enqueue : callable
        ``enqueue(connection, notification)`` routes a notification into the
        outbox inside the open transaction.
    base_url : str
        External URL of krwatch, for the notification's link.
    """

    def __init__(self, store: Store, enqueue: Enqueue, base_url: str) -> None:
        self.store = store
        self.enqueue = enqueue
        self.base_url = base_url
        self._lock = threading.Lock()
        self.states: dict[str, AlertState] = self._load()

    def _load(self) -> dict[str, AlertState]:
        raw = self.store.meta_get(_STATE_KEY)
        if raw is None:
            return {}
        document = json.loads(raw)
        version = document.get("version")
        if version != _STATE_VERSION:
            logger.error(
                "Ignoring stored source alert states of version %r; this krwatch "
                "reads version %d",
                version,
                _STATE_VERSION,
            )
            return {}
        return {name: AlertState(**state) for name, state in document["states"].items()}

    def update(self, health: SourceHealth, failing_for_seconds: float) -> bool:
        """Step the alert of one source after a poll.

        Returns whether a notification was queued.
        """
        now = health.last_poll if health.last_poll is not None else time.time()
        timing = Timing(
            for_seconds=max(0.0, failing_for_seconds - POLL_JITTER_SECONDS),
            no_data="keep_state",
        )
        with self._lock:
            state = self.states.get(health.name)
            if state is None:
                if not health.failing:
                    health.alert_state = INACTIVE
                    return False
                state = AlertState(
                    alert=SOURCE_ALERT,
                    group=SOURCE_ALERT_GROUP,
                    labels=_labels(health),
                )
            outcome = Outcome.TRUE if health.failing else Outcome.FALSE
            value = now - health.failing_since if health.failing_since else None
            new_state, transition = step(state, outcome, now, timing, value)
            notification = None
            if transition is not None:
                notification = self._notification(health, state, new_state, now)
            if new_state.state == INACTIVE:
                self.states.pop(health.name, None)
            else:
                self.states[health.name] = new_state
            health.alert_state = new_state.state
            changed = new_state.state != state.state or notification is not None
            if changed:
                self._save([notification] if notification else [])
        return notification is not None

    def retire(self, names: Iterable[str]) -> int:
        """Resolve and forget the alerts of sources no longer configured.

        Returns the number of resolved notifications queued.
        """
        now = time.time()
        gone = set(names)
        notifications = []
        with self._lock:
            for name in gone & set(self.states):
                state = self.states.pop(name)
                if state.state == FIRING and state.notified:
                    notifications.append(
                        self._resolved_notification(state, now, "it was removed")
                    )
            if gone:
                self._save(notifications)
        return len(notifications)

    def _save(self, notifications: list[Notification]) -> None:
        document = {
            "version": _STATE_VERSION,
            "states": {name: asdict(state) for name, state in self.states.items()},
        }
        with self.store.transaction() as connection:
            # Written on the open connection, because Store.meta_set opens a
            # transaction of its own and the notification must commit with it.
            connection.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_STATE_KEY, json.dumps(document)),
            )
            for notification in notifications:
                self.enqueue(connection, notification)
        for notification in notifications:
            logger.info(
                "Alert %s %s %s",
                notification.alert,
                notification.state,
                dict(notification.labels),
            )

    def _notification(
        self,
        health: SourceHealth,
        before: AlertState,
        after: AlertState,
        now: float,
    ) -> Notification:
        if after.state != FIRING:
            return self._resolved_notification(before, now, "a poll succeeded")

        since = _iso(health.failing_since or now)
        summary = (
            f"Source {health.name} has failed every poll since {since} "
            f"({health.consecutive_failures} polls)"
        )
        description = (
            f"Last error ({health.last_error_reason}): {health.last_error} Rules "
            "that read its KPIs follow their no-data policy until it recovers."
        )
        return Notification(
            alert=SOURCE_ALERT,
            fingerprint=after.fingerprint,
            state="firing",
            labels=dict(after.labels),
            annotations={"summary": summary, "description": description},
            value=after.last_value,
            active_at=_datetime(after.active_at or now),
            fired_at=_datetime(after.fired_at or now),
            resolved_at=None,
            generator_url=f"{self.base_url}/api/v1/sources",
            key_result=None,
            kpi=None,
        )

    def _resolved_notification(
        self, state: AlertState, now: float, why: str
    ) -> Notification:
        source = state.labels.get("source", "?")
        return Notification(
            alert=SOURCE_ALERT,
            fingerprint=state.fingerprint,
            state="resolved",
            labels=dict(state.labels),
            annotations={"summary": f"Source {source} is no longer failing: {why}"},
            value=state.last_value,
            active_at=_datetime(state.active_at or now),
            fired_at=_datetime(state.fired_at) if state.fired_at else None,
            resolved_at=_datetime(now),
            generator_url=f"{self.base_url}/api/v1/sources",
            key_result=None,
            kpi=None,
        )


def _labels(health: SourceHealth) -> dict[str, str]:
    return {
        "alertname": SOURCE_ALERT,
        "source": health.name,
        "source_type": health.type,
        "severity": SOURCE_ALERT_SEVERITY,
    }


def _datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _iso(timestamp: float) -> str:
    return _datetime(timestamp).isoformat(timespec="seconds")
