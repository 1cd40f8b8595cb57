"""The dispatcher: delivers outbox rows to receivers, with retries.

One worker thread per receiver, so a slow or failing receiver never delays
the others. Each worker repeatedly takes the due group with the oldest
flush time, delivers its pending rows as one batch outside any store lock,
and records the outcome:

- success: rows become ``delivered``; the receiver's firing alerts are
  remembered so their resolve is always sent and they are repeated;
- retryable failure (network error, timeout, 429, 5xx): the rows wait
  ``Retry-After`` seconds if the receiver gave it, else a delay drawn
  uniformly from zero to ``initial_backoff * 2 ** (attempt - 1)``, capped at
  ``max_backoff`` ("full jitter"). Every delay is at least
  ``MIN_RETRY_DELAY_SECONDS``;
- other failure (another 4xx): rows become ``failed`` and are not retried.

A row still pending ``max_age`` after it was queued is dropped. Delivery is
at least once: a crash after the receiver accepted a batch but before the
outcome was stored sends that batch again after restart, with the same
idempotency keys.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from exporters import outbox
from exporters._outbox_metrics import OutboxMetrics
from exporters.errors import DeliveryError, NotificationError
from exporters.notification import Notification
from exporters.outbox import ROW_COLUMNS, OutboxRow
from exporters.receivers.base import Receiver
from exporters.silences import Silence, StoreLike, active_silences

logger = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_SECONDS = 5.0
"""Maximum idle wait of a worker, so a silence that ends is noticed this late."""
DEFAULT_RETENTION = timedelta(days=7)
"""Finished rows are kept this long, so a late duplicate is still deduplicated."""
HOUSEKEEPING_INTERVAL_SECONDS = 600.0
MIN_RETRY_DELAY_SECONDS = 0.05
"""Floor of every retry delay, so ``Retry-After: 0`` cannot spin a worker."""
ORPHAN_MAX_AGE = timedelta(hours=24)

FAILURE_LOG_INTERVAL_SECONDS = 60.0
"""Retries of one receiver that fail are logged at most once per this time;
the failed first attempt of a batch is always logged."""
"""Rows of a receiver that is no longer configured are dropped after this."""


@dataclass(kw_only=True)
class _Batch:
    group_key: str
    send_resolved: bool
    rows: list[OutboxRow] = field(default_factory=list)
    more_pending: bool = False


class Dispatcher:
    """Delivers pending outbox rows in background threads.

    Parameters
    ----------
    store : StoreLike
        The store whose outbox tables ``outbox.create_tables`` created.
    receivers : mapping of str to Receiver
        Configured receivers by name.
    metrics : OutboxMetrics, optional
        Where deliveries, failures and drops are counted.
    poll_interval_seconds : float
        Maximum idle wait of a worker between checks of the outbox, and ``wake``
        ends the wait at once.
    retention : timedelta
        How long finished rows are kept.
    clock : callable
        Wall clock in epoch seconds; persisted times use it.
    rng : random.Random, optional
        Source of backoff jitter; pass a seeded one for reproducible tests.
    """

    def __init__(
        self,
        store: StoreLike,
        receivers: Mapping[str, Receiver],
        *,
        metrics: OutboxMetrics | None = None,
        poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
        retention: timedelta = DEFAULT_RETENTION,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._receivers = dict(receivers)
        self._metrics = metrics
        self._poll_interval = poll_interval_seconds
        self._retention = retention
        self._clock = clock
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._stopping = threading.Event()
        self._wakeups = {name: threading.Event() for name in self._receivers}
        self._housekeeping_wakeup = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failure_log: dict[str, tuple[float, int]] = {}
        """Per receiver: when a failure was last logged, and how many failures
        went unlogged since."""

    def start(self) -> None:
        """Start one worker thread per receiver and a housekeeping thread.

        Rows left pending by an earlier process are resumed.
        """
        if self._threads:
            raise RuntimeError("The dispatcher is already running; call stop first.")

        self._stopping.clear()
        for name in self._receivers:
            thread = threading.Thread(
                target=self._work, args=(name,), name=f"dispatch-{name}", daemon=True
            )
            self._threads.append(thread)
        self._threads.append(
            threading.Thread(
                target=self._housekeep, name="dispatch-housekeeping", daemon=True
            )
        )
        for thread in self._threads:
            thread.start()
        logger.info(
            "Dispatcher started with %d receivers: %s.",
            len(self._receivers),
            ", ".join(sorted(self._receivers)) or "none",
        )

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the threads; return True if all ended within ``timeout`` seconds.

        A delivery in progress finishes first, so allow at least the longest
        receiver timeout. Rows not delivered stay pending for the next start.
        """
        self._stopping.set()
        self.wake()
        self._housekeeping_wakeup.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        self._threads = []
        if alive:
            logger.warning(
                "Dispatcher stopped with threads still delivering after %gs: %s.",
                timeout,
                ", ".join(alive),
            )
            return False

        logger.info("Dispatcher stopped cleanly.")
        return True

    def wake(self, receiver: str | None = None) -> None:
        """Make workers check the outbox now, after an ``enqueue`` commits."""
        if receiver is not None:
            event = self._wakeups.get(receiver)
            if event is not None:
                event.set()
            return

        for event in self._wakeups.values():
            event.set()

    def run_once(self, receiver: str) -> float | None:
        """Deliver every group of ``receiver`` that is due now.

        Workers call it in their loop; tests may call it directly without
        ``start``. Returns the epoch time at which more work is due, or None.
        """
        handler = self._receivers[receiver]
        self._release_unsilenced(handler)
        self._schedule_repeats(handler)
        while not self._stopping.is_set():
            batch = self._claim(handler)
            if batch is None:
                break

            if batch.rows:
                self._deliver(handler, batch)
        return self._next_due(handler)

    def _work(self, receiver: str) -> None:
        wakeup = self._wakeups[receiver]
        while not self._stopping.is_set():
            try:
                next_due = self.run_once(receiver)
            except Exception:
                logger.exception(
                    "Dispatching to receiver %r failed; retrying in %gs.",
                    receiver,
                    self._poll_interval,
                )
                next_due = None
            wait = self._poll_interval
            if next_due is not None:
                wait = min(max(next_due - self._clock(), 0.0), wait)
            wakeup.wait(wait)
            wakeup.clear()

    # Claiming a batch -------------------------------------------------------

    def _claim(self, receiver: Receiver) -> _Batch | None:
        """Pick the most overdue group and its pending rows.

        Rows past max_age are dropped and muted rows suppressed in the same
        transaction, so the returned batch contains only rows to send. An empty
        batch means that rows were settled without sending and the caller
        should claim again.
        """
        now = self._clock()
        with self._store.transaction() as connection:
            group = connection.execute(
                "SELECT g.group_key, g.send_resolved FROM outbox AS o JOIN "
                "outbox_groups AS g ON g.receiver = o.receiver AND g.group_key = "
                "o.group_key WHERE o.receiver = ? AND o.status = 'pending' AND "
                "o.next_attempt_at <= ? AND g.next_flush_at <= ? "
                "ORDER BY g.next_flush_at, o.id LIMIT 1",
                (receiver.name, now, now),
            ).fetchone()
            if group is None:
                return None

            batch = _Batch(group_key=str(group[0]), send_resolved=bool(group[1]))
            limit = receiver.max_batch_size
            rows = connection.execute(
                f"SELECT {ROW_COLUMNS} FROM outbox WHERE receiver = ? AND "
                "group_key = ? AND status = 'pending' AND next_attempt_at <= ? "
                "ORDER BY id LIMIT ?",
                (receiver.name, batch.group_key, now, limit + 1),
            ).fetchall()
            batch.more_pending = len(rows) > limit
            parsed = [self._read_or_fail(connection, raw, now) for raw in rows[:limit]]
            readable = [row for row in parsed if row is not None]
            notified = _notified_fingerprints(
                connection,
                receiver.name,
                {row.notification.fingerprint for row in readable},
            )
            muting = active_silences(connection, datetime.fromtimestamp(now, UTC))
            for row in readable:
                self._triage(connection, receiver, batch, row, notified, muting, now)
            if not batch.rows:
                _finish_group(connection, receiver.name, batch, now, sent=False)
        return batch

    def _read_or_fail(
        self, connection: sqlite3.Connection, raw: Sequence[object], now: float
    ) -> OutboxRow | None:
        try:
            return outbox.read_row(raw)
        except NotificationError:
            logger.exception("Outbox row %s cannot be read; marking it failed.", raw[0])
            _settle(connection, [int(str(raw[0]))], "failed", now, error="unreadable")
            return None

    def _triage(
        self,
        connection: sqlite3.Connection,
        receiver: Receiver,
        batch: _Batch,
        row: OutboxRow,
        notified: set[str],
        muting: list[Silence],
        now: float,
    ) -> None:
        """Add ``row`` to the batch, or drop, suppress or skip it."""
        notification = row.notification
        fingerprint = notification.fingerprint
        if now - row.queued_at > receiver.settings.max_age.total_seconds():
            logger.error(
                "Dropping notification %s for receiver %r: not delivered within "
                "max_age %s after %d attempts.",
                notification.idempotency_key,
                receiver.name,
                receiver.settings.max_age,
                row.attempts,
            )
            _settle(connection, [row.id], "dropped", now, error="max_age")
            self._count_dropped(receiver.name, "max_age")
            return

        if notification.state == "firing":
            if row.reminder and fingerprint not in notified:
                _settle(connection, [row.id], "skipped", now, error="resolved")
                return

            muted_by = _muted_by(notification, muting)
            if muted_by is not None:
                logger.info(
                    "Not sending %s to receiver %r: %s.",
                    notification.idempotency_key,
                    receiver.name,
                    muted_by,
                )
                _settle(connection, [row.id], "suppressed", now, error=muted_by)
                return

            notified.add(fingerprint)
            batch.rows.append(row)
            return

        # A resolve goes out whenever the firing notification went out, even
        # if the alert was silenced or inhibited since.
        if fingerprint not in notified:
            _settle(connection, [row.id], "suppressed", now, error="never notified")
            return

        if not batch.send_resolved:
            _settle(connection, [row.id], "skipped", now, error="send_resolved")
            _forget_alert(connection, receiver.name, fingerprint)
            notified.discard(fingerprint)
            return

        batch.rows.append(row)

    # Delivering -------------------------------------------------------------

    def _deliver(self, receiver: Receiver, batch: _Batch) -> None:
        notifications = [row.notification for row in batch.rows]
        started = time.monotonic()
        try:
            receiver.deliver(notifications)
        except DeliveryError as error:
            self._record_failure(receiver, batch, error)
            return
        except Exception as error:
            logger.exception(
                "Receiver %r raised an unexpected error; the batch will be retried.",
                receiver.name,
            )
            wrapped = DeliveryError(
                f"Receiver {receiver.name!r} raised {type(error).__name__}.",
                retryable=True,
            )
            self._record_failure(receiver, batch, wrapped)
            return

        self._record_success(receiver, batch, time.monotonic() - started)

    def _record_success(
        self, receiver: Receiver, batch: _Batch, duration_seconds: float
    ) -> None:
        now = self._clock()
        with self._store.transaction() as connection:
            _settle(connection, [row.id for row in batch.rows], "delivered", now)
            for row in batch.rows:
                _remember_alert(connection, receiver.name, row, now)
            _finish_group(connection, receiver.name, batch, now, sent=True)

        for row in batch.rows:
            logger.info(
                "Delivered %s notification for rule %r (%s) to receiver %r at %s "
                "in %.3fs.",
                row.notification.state,
                row.notification.alert,
                row.notification.idempotency_key,
                receiver.name,
                receiver.target,
                duration_seconds,
            )
            if self._metrics is not None:
                # A repeat is not a new state change, so its age since creation
                # would distort the latency histogram.
                latency = None
                if not row.reminder:
                    latency = now - row.notification.created_at.timestamp()
                self._metrics.record_sent(receiver.name, latency)

    def _record_failure(
        self, receiver: Receiver, batch: _Batch, error: DeliveryError
    ) -> None:
        now = self._clock()
        if self._metrics is not None:
            self._metrics.record_failed(receiver.name, len(batch.rows))
        row_ids = [row.id for row in batch.rows]
        if not error.retryable:
            logger.error(
                "Delivery of %d notifications to receiver %r failed and will not "
                "be retried: %s",
                len(row_ids),
                receiver.name,
                error,
            )
            with self._store.transaction() as connection:
                _settle(
                    connection,
                    row_ids,
                    "failed",
                    now,
                    error=str(error),
                    status_code=error.status,
                )
                _finish_group(connection, receiver.name, batch, now, sent=False)
            self._count_dropped(receiver.name, "rejected", len(row_ids))
            return

        attempt = max(row.attempts for row in batch.rows) + 1
        delay = self._retry_delay(receiver, attempt, error.retry_after)
        self._log_failure(receiver.name, len(row_ids), attempt, error, delay)
        with self._store.transaction() as connection:
            connection.executemany(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, "
                "last_error = ?, last_status = ? WHERE id = ?",
                [(now + delay, str(error), error.status, row_id) for row_id in row_ids],
            )
            connection.execute(
                "UPDATE outbox_groups SET next_flush_at = ? "
                "WHERE receiver = ? AND group_key = ?",
                (now + delay, receiver.name, batch.group_key),
            )

    def _log_failure(
        self, receiver: str, count: int, attempt: int, error: Exception, delay: float
    ) -> None:
        """Log a failed attempt, at most once a minute per receiver."""
        now = time.monotonic()
        last, unlogged = self._failure_log.get(receiver, (-math.inf, 0))
        if attempt > 1 and now - last < FAILURE_LOG_INTERVAL_SECONDS:
            self._failure_log[receiver] = (last, unlogged + 1)
            return
        self._failure_log[receiver] = (now, 0)
        since = f" ({unlogged} more failed attempts since the last report)"
        logger.warning(
            "Delivery of %d notifications to receiver %r failed on attempt %d: %s "
            "Retrying in %.2fs.%s",
            count,
            receiver,
            attempt,
            error,
            delay,
            since if unlogged else "",
        )

    def _retry_delay(
        self, receiver: Receiver, attempt: int, retry_after: float | None
    ) -> float:
        if retry_after is not None:
            return max(retry_after, MIN_RETRY_DELAY_SECONDS)

        initial = receiver.settings.initial_backoff.total_seconds()
        cap = receiver.settings.max_backoff.total_seconds()
        ceiling = min(cap, initial * 2.0 ** min(attempt - 1, 62))
        with self._rng_lock:
            delay = self._rng.uniform(0.0, ceiling)
        return max(delay, MIN_RETRY_DELAY_SECONDS)

    def _count_dropped(self, receiver: str, reason: str, count: int = 1) -> None:
        if self._metrics is not None:
            self._metrics.record_dropped(receiver, reason, count)

    # Silences and repeats ---------------------------------------------------

    def _release_unsilenced(self, receiver: Receiver) -> None:
        """Queue again the held firing rows whose silence has ended."""
        now = self._clock()
        with self._store.transaction() as connection:
            suppressed_rows = connection.execute(
                f"SELECT {ROW_COLUMNS} FROM outbox AS held WHERE receiver = ? AND "
                "status = 'suppressed' AND state = 'firing' AND reminder = 0 AND "
                "last_error LIKE 'silenced%' AND NOT EXISTS (SELECT 1 FROM outbox "
                "AS later WHERE later.receiver = held.receiver AND "
                "later.fingerprint = held.fingerprint AND later.state = "
                "'resolved' AND later.id > held.id)",
                (receiver.name,),
            ).fetchall()
            if not suppressed_rows:
                return

            muting = active_silences(connection, datetime.fromtimestamp(now, UTC))
            for raw in suppressed_rows:
                row = outbox.read_row(raw)
                if _muted_by(row.notification, muting) is not None:
                    continue

                outbox.requeue(connection, row.id, now)
                connection.execute(
                    "UPDATE outbox_groups SET next_flush_at = COALESCE("
                    "next_flush_at, ?) WHERE receiver = ? AND group_key = ?",
                    (now, receiver.name, row.group_key),
                )
                logger.info(
                    "Silence over: queueing %s for receiver %r again.",
                    row.notification.idempotency_key,
                    receiver.name,
                )

    def _schedule_repeats(self, receiver: Receiver) -> None:
        """Queue the firing alerts of groups whose repeat interval passed."""
        now = self._clock()
        resend = receiver.resend_interval
        with self._store.transaction() as connection:
            groups = connection.execute(
                "SELECT g.group_key, g.repeat_interval, g.last_flush_at FROM "
                "outbox_groups AS g WHERE g.receiver = ? AND g.last_flush_at IS NOT "
                "NULL AND EXISTS (SELECT 1 FROM outbox_alerts AS a WHERE "
                "a.receiver = g.receiver AND a.group_key = g.group_key) AND NOT "
                "EXISTS (SELECT 1 FROM outbox AS o WHERE o.receiver = g.receiver "
                "AND o.group_key = g.group_key AND o.status = 'pending')",
                (receiver.name,),
            ).fetchall()
            for group_key, repeat_interval, last_flush_at in groups:
                interval = float(repeat_interval)
                if resend is not None:
                    interval = min(interval, resend.total_seconds())
                if interval <= 0 or float(last_flush_at) + interval > now:
                    continue

                _queue_repeats(connection, receiver.name, str(group_key), now)

    def _next_due(self, receiver: Receiver) -> float | None:
        with self._store.read() as connection:
            row = connection.execute(
                "SELECT MIN(MAX(o.next_attempt_at, g.next_flush_at)) FROM outbox "
                "AS o JOIN outbox_groups AS g ON g.receiver = o.receiver AND "
                "g.group_key = o.group_key WHERE o.receiver = ? AND o.status = "
                "'pending' AND g.next_flush_at IS NOT NULL",
                (receiver.name,),
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _housekeep(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_housekeeping()
            except Exception:
                logger.exception("Outbox housekeeping failed; it runs again later.")
            self._housekeeping_wakeup.wait(HOUSEKEEPING_INTERVAL_SECONDS)

    def run_housekeeping(self) -> None:
        """Delete old finished rows and drop rows of removed receivers.

        The housekeeping thread calls it every
        ``HOUSEKEEPING_INTERVAL_SECONDS``.
        """
        now = self._clock()
        with self._store.transaction() as connection:
            purged = outbox.purge_finished(connection, self._retention, now)
            placeholders = ", ".join("?" for _ in self._receivers)
            orphans = connection.execute(
                "SELECT receiver, id FROM outbox WHERE status = 'pending' AND "
                f"receiver NOT IN ({placeholders}) AND queued_at < ?",
                (*self._receivers, now - ORPHAN_MAX_AGE.total_seconds()),
            ).fetchall()
            for receiver, row_id in orphans:
                _settle(connection, [int(row_id)], "dropped", now, error="no receiver")
                self._count_dropped(str(receiver), "max_age")
        if purged or orphans:
            logger.info(
                "Outbox housekeeping deleted %d finished rows and dropped %d rows of "
                "receivers that are no longer configured.",
                purged,
                len(orphans),
            )


def _notified_fingerprints(
    connection: sqlite3.Connection, receiver: str, fingerprints: set[str]
) -> set[str]:
    """Return which of ``fingerprints`` had their firing sent to ``receiver``."""
    if not fingerprints:
        return set()

    placeholders = ", ".join("?" for _ in fingerprints)
    rows = connection.execute(
        "SELECT fingerprint FROM outbox_alerts WHERE receiver = ? AND "
        f"fingerprint IN ({placeholders})",
        (receiver, *fingerprints),
    ).fetchall()
    return {str(row[0]) for row in rows}


def _muted_by(notification: Notification, silences: list[Silence]) -> str | None:
    if notification.inhibited:
        return "inhibited"

    for silence in silences:
        if silence.mutes(notification.labels):
            return f"silenced by {silence.id}"
    return None


def _settle(
    connection: sqlite3.Connection,
    row_ids: list[int],
    status: str,
    now: float,
    *,
    error: str | None = None,
    status_code: int | None = None,
) -> None:
    connection.executemany(
        "UPDATE outbox SET status = ?, finished_at = ?, last_error = COALESCE(?, "
        "last_error), last_status = COALESCE(?, last_status) WHERE id = ?",
        [(status, now, error, status_code, row_id) for row_id in row_ids],
    )


def _remember_alert(
    connection: sqlite3.Connection, receiver: str, row: OutboxRow, now: float
) -> None:
    notification = row.notification
    if notification.state == "resolved":
        _forget_alert(connection, receiver, notification.fingerprint)
        return

    connection.execute(
        "INSERT INTO outbox_alerts (receiver, fingerprint, group_key, body, "
        "last_sent_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (receiver, fingerprint) "
        "DO UPDATE SET group_key = excluded.group_key, body = excluded.body, "
        "last_sent_at = excluded.last_sent_at",
        (
            receiver,
            notification.fingerprint,
            row.group_key,
            json.dumps(notification.to_dict(), sort_keys=True),
            now,
        ),
    )


def _forget_alert(
    connection: sqlite3.Connection, receiver: str, fingerprint: str
) -> None:
    connection.execute(
        "DELETE FROM outbox_alerts WHERE receiver = ? AND fingerprint = ?",
        (receiver, fingerprint),
    )


def _finish_group(
    connection: sqlite3.Connection,
    receiver: str,
    batch: _Batch,
    now: float,
    *,
    sent: bool,
) -> None:
    """Set the next flush of a group after a batch was settled."""
    pending = connection.execute(
        "SELECT 1 FROM outbox WHERE receiver = ? AND group_key = ? AND "
        "status = 'pending' LIMIT 1",
        (receiver, batch.group_key),
    ).fetchone()
    if pending is None:
        next_flush = None
    elif batch.more_pending or not sent:
        next_flush = now
    else:
        interval = connection.execute(
            "SELECT group_interval FROM outbox_groups WHERE receiver = ? AND "
            "group_key = ?",
            (receiver, batch.group_key),
        ).fetchone()
        next_flush = now + float(interval[0])
    if sent:
        connection.execute(
            "UPDATE outbox_groups SET next_flush_at = ?, last_flush_at = ? "
            "WHERE receiver = ? AND group_key = ?",
            (next_flush, now, receiver, batch.group_key),
        )
        return

    connection.execute(
        "UPDATE outbox_groups SET next_flush_at = ? WHERE receiver = ? AND "
        "group_key = ?",
        (next_flush, receiver, batch.group_key),
    )


def _queue_repeats(
    connection: sqlite3.Connection, receiver: str, group_key: str, now: float
) -> None:
    alerts = connection.execute(
        "SELECT fingerprint, body FROM outbox_alerts WHERE receiver = ? AND "
        "group_key = ? ORDER BY fingerprint",
        (receiver, group_key),
    ).fetchall()
    for fingerprint, body in alerts:
        idempotency_key = json.loads(body)["idempotency_key"]
        connection.execute(
            "INSERT OR IGNORE INTO outbox (receiver, delivery_key, idempotency_key, "
            "group_key, fingerprint, state, reminder, body, created_at, queued_at, "
            "next_attempt_at) VALUES (?, ?, ?, ?, ?, 'firing', 1, ?, ?, ?, ?)",
            (
                receiver,
                f"{idempotency_key}:repeat:{now:.3f}",
                idempotency_key,
                group_key,
                fingerprint,
                body,
                now,
                now,
                now,
            ),
        )
    # The repeat counts as a flush, so the next one waits a full interval even
    # when every repeated alert is silenced and nothing is sent.
    connection.execute(
        "UPDATE outbox_groups SET next_flush_at = ?, last_flush_at = ? "
        "WHERE receiver = ? AND group_key = ?",
        (now, now, receiver, group_key),
    )
