"""Prometheus metrics of the outbox and its dispatcher."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from exporters.silences import StoreLike

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_SECONDS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    21600.0,
    86400.0,
)
"""From under a second (direct delivery) to a day (the default max_age)."""


class OutboxMetrics:
    """Counters of deliveries and gauges of the queue, on one registry.

    Parameters
    ----------
    registry : CollectorRegistry
        Registry that ``/metrics`` serves; tests pass a fresh one.
    store : StoreLike, optional
        Store whose outbox the queue gauges read at each scrape. Without it
        the gauges are not exported.
    receivers : iterable of str
        Configured receiver names, exported with zero counts from the start.
    clock : callable
        Wall clock in epoch seconds, for the oldest-age gauge.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        store: StoreLike | None = None,
        receivers: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sent = Counter(
            "krwatch_notifications_sent_total",
            "Notifications delivered to a receiver.",
            ["receiver"],
            registry=registry,
        )
        self.failed = Counter(
            "krwatch_notifications_failed_total",
            "Notifications in failed delivery attempts; each retry counts again.",
            ["receiver"],
            registry=registry,
        )
        self.dropped = Counter(
            "krwatch_notifications_dropped_total",
            "Notifications given up: max_age passed or the receiver rejected "
            "them with a 4xx status that is not retried.",
            ["receiver", "reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "krwatch_notification_latency_seconds",
            "Time from the creation of a notification to its delivery.",
            ["receiver"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        names = tuple(receivers)
        for name in names:
            self.sent.labels(receiver=name)
            self.failed.labels(receiver=name)
            self.latency.labels(receiver=name)
        if store is not None:
            registry.register(_QueueCollector(store, clock, names))

    def record_sent(self, receiver: str, latency_seconds: float | None) -> None:
        """Count one delivered notification; a repeat passes no latency."""
        self.sent.labels(receiver=receiver).inc()
        if latency_seconds is not None:
            self.latency.labels(receiver=receiver).observe(max(latency_seconds, 0.0))

    def record_failed(self, receiver: str, count: int = 1) -> None:
        self.failed.labels(receiver=receiver).inc(count)

    def record_dropped(self, receiver: str, reason: str, count: int = 1) -> None:
        self.dropped.labels(receiver=receiver, reason=reason).inc(count)


class _QueueCollector(Collector):
    """Reads queue length and oldest age per receiver from the store."""

    def __init__(
        self, store: StoreLike, clock: Callable[[], float], receivers: tuple[str, ...]
    ) -> None:
        self._store = store
        self._clock = clock
        self._receivers = receivers

    def collect(self) -> Iterator[Metric]:
        length = GaugeMetricFamily(
            "krwatch_outbox_queue_length",
            "Notifications waiting in the outbox for delivery.",
            labels=["receiver"],
        )
        oldest = GaugeMetricFamily(
            "krwatch_outbox_oldest_age_seconds",
            "Age of the oldest notification waiting in the outbox.",
            labels=["receiver"],
        )
        now = self._clock()
        waiting = {receiver: (0, now) for receiver in self._receivers}
        for receiver, count, queued_at in self._read():
            waiting[receiver] = (count, queued_at)
        for receiver, (count, queued_at) in sorted(waiting.items()):
            length.add_metric([receiver], count)
            oldest.add_metric([receiver], max(now - queued_at, 0.0))
        yield length
        yield oldest

    def _read(self) -> list[tuple[str, int, float]]:
        try:
            with self._store.read() as connection:
                rows = connection.execute(
                    "SELECT receiver, COUNT(*), MIN(queued_at) FROM outbox "
                    "WHERE status = 'pending' GROUP BY receiver ORDER BY receiver"
                ).fetchall()
        except sqlite3.Error:
            logger.exception("Reading the outbox queue for /metrics failed.")
            return []

        return [(str(name), int(count), float(queued)) for name, count, queued in rows]
