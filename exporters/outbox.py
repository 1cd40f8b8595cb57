"""The outbox: notifications stored in the sample store until delivered.

``enqueue`` writes one row per (notification, receiver) inside the caller's
transaction, so an alert state change and its notification commit together
and a crash between them loses nothing. Rows are unique by receiver and
idempotency key, so enqueueing the same state change twice sends it once.
The ``Dispatcher`` (``exporters.dispatcher``) delivers the rows.

Tables (schema version ``SCHEMA_VERSION``):

- ``outbox``: one row per delivery with its status (``pending``,
  ``delivered``, ``failed``, ``dropped``, ``suppressed``, ``skipped``),
  attempts and next attempt time.
- ``outbox_groups``: grouping state per receiver and group key: when the
  group is next flushed and when it was last sent.
- ``outbox_alerts``: alerts whose firing notification a receiver got but
  whose resolve it has not got yet. Their resolve is always sent, and they
  are sent again every repeat interval.

Times are stored as epoch seconds (UTC wall clock), because they must
survive a restart.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from exporters import silences
from exporters.errors import OutboxError
from exporters.notification import Notification
from exporters.routing import RouteTarget
from exporters.silences import execute_script

SCHEMA_VERSION = 1

RowStatus = Literal[
    "pending", "delivered", "failed", "dropped", "suppressed", "skipped"
]
FINISHED_STATUSES: tuple[RowStatus, ...] = ("delivered", "failed", "dropped", "skipped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notification_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver TEXT NOT NULL,
    delivery_key TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    group_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    reminder INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    queued_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    last_status INTEGER,
    last_error TEXT,
    finished_at REAL,
    UNIQUE (receiver, delivery_key)
);
CREATE INDEX IF NOT EXISTS outbox_by_status
    ON outbox (receiver, status, group_key, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_by_fingerprint
    ON outbox (receiver, fingerprint, state);
CREATE TABLE IF NOT EXISTS outbox_groups (
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    group_wait REAL NOT NULL,
    group_interval REAL NOT NULL,
    repeat_interval REAL NOT NULL,
    send_resolved INTEGER NOT NULL,
    next_flush_at REAL,
    last_flush_at REAL,
    PRIMARY KEY (receiver, group_key)
);
CREATE TABLE IF NOT EXISTS outbox_alerts (
    receiver TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    group_key TEXT NOT NULL,
    body TEXT NOT NULL,
    last_sent_at REAL NOT NULL,
    PRIMARY KEY (receiver, fingerprint)
);
"""


@dataclass(frozen=True, kw_only=True)
class OutboxRow:
    """One pending delivery as the dispatcher reads it."""

    id: int
    receiver: str
    group_key: str
    notification: Notification
    reminder: bool
    queued_at: float
    attempts: int


def create_tables(connection: sqlite3.Connection) -> None:
    """Create the outbox and silence tables and check their schema version.

    Call it once at start, inside or outside a transaction.

    Raises
    ------
    OutboxError
        If the tables were written by a newer krwatch.
    """
    execute_script(connection, _SCHEMA)
    silences.create_tables(connection)
    row = connection.execute("SELECT version FROM notification_schema").fetchone()
    if row is None:
        connection.execute(
            "INSERT INTO notification_schema (id, version) VALUES (1, ?)",
            (SCHEMA_VERSION,),
        )
        return

    found = int(row[0])
    if found > SCHEMA_VERSION:
        raise OutboxError(
            f"The notification tables have schema version {found}, but this "
            f"krwatch supports up to version {SCHEMA_VERSION}. They were written "
            "by a newer krwatch; run that version or use another storage.path."
        )


def enqueue(
    connection: sqlite3.Connection,
    notification: Notification,
    receivers: Iterable[str | RouteTarget],
    *,
    now: float | None = None,
) -> int:
    """Write one outbox row per receiver inside the caller's transaction.

    Parameters
    ----------
    connection : sqlite3.Connection
        The connection of an open transaction (``store.transaction()``); this
        function does not commit.
    notification : Notification
        The state change to send.
    receivers : iterable of str or RouteTarget
        Targets from ``Router.route``. A plain receiver name sends without
        grouping delays, with each alert in its own group.
    now : float, optional
        Epoch seconds; defaults to the current time.

    Returns
    -------
    int
        Rows written; a (receiver, idempotency key) pair already in the
        outbox is skipped.
    """
    moment = time.time() if now is None else now
    body = json.dumps(notification.to_dict(), sort_keys=True, ensure_ascii=False)
    written = 0
    for receiver in receivers:
        target = _as_target(receiver, notification)
        cursor = connection.execute(
            "INSERT OR IGNORE INTO outbox (receiver, delivery_key, "
            "idempotency_key, group_key, fingerprint, state, body, created_at, "
            "queued_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                target.receiver,
                notification.idempotency_key,
                notification.idempotency_key,
                target.group_key,
                notification.fingerprint,
                notification.state,
                body,
                notification.created_at.timestamp(),
                moment,
                moment,
            ),
        )
        if cursor.rowcount:
            written += 1
            schedule_group(connection, target, moment)
    return written


def schedule_group(
    connection: sqlite3.Connection, target: RouteTarget, now: float
) -> None:
    """Set when a group with a new row is flushed, as Alertmanager does.

    A new group, with nothing sent and nothing pending, waits
    ``group_wait``. A group that was sent waits until ``group_interval``
    after its last send. A group already scheduled keeps its time.
    """
    settings = (
        target.group_wait.total_seconds(),
        target.group_interval.total_seconds(),
        target.repeat_interval.total_seconds(),
        int(target.send_resolved),
    )
    row = connection.execute(
        "SELECT next_flush_at, last_flush_at FROM outbox_groups "
        "WHERE receiver = ? AND group_key = ?",
        (target.receiver, target.group_key),
    ).fetchone()
    if row is None:
        connection.execute(
            "INSERT INTO outbox_groups (receiver, group_key, group_wait, "
            "group_interval, repeat_interval, send_resolved, next_flush_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (target.receiver, target.group_key, *settings, now + settings[0]),
        )
        return

    next_flush_at, last_flush_at = row
    if next_flush_at is None:
        if last_flush_at is None or not _group_has_alerts(connection, target):
            next_flush_at = now + settings[0]
        else:
            next_flush_at = max(now, float(last_flush_at) + settings[1])
    connection.execute(
        "UPDATE outbox_groups SET group_wait = ?, group_interval = ?, "
        "repeat_interval = ?, send_resolved = ?, next_flush_at = ? "
        "WHERE receiver = ? AND group_key = ?",
        (*settings, next_flush_at, target.receiver, target.group_key),
    )


def release_inhibited(
    connection: sqlite3.Connection,
    fingerprints: Iterable[str],
    *,
    now: float | None = None,
) -> int:
    """Queue again the firing notifications that were held back as inhibited.

    The rule engine calls it, inside its transaction, when the alert that
    inhibited these alerts resolves and they still fire. Rows whose alert has
    resolved since are left alone. Returns the number of rows queued.
    """
    moment = time.time() if now is None else now
    released = 0
    for fingerprint in fingerprints:
        rows = connection.execute(
            "SELECT id, receiver, group_key, body FROM outbox AS held "
            "WHERE fingerprint = ? AND status = 'suppressed' AND state = 'firing' "
            "AND reminder = 0 AND NOT EXISTS (SELECT 1 FROM outbox AS later "
            "WHERE later.receiver = held.receiver AND later.fingerprint = "
            "held.fingerprint AND later.state = 'resolved' AND later.id > held.id)",
            (fingerprint,),
        ).fetchall()
        for row_id, receiver, group_key, body in rows:
            data = json.loads(body)
            if not data.get("inhibited"):
                continue

            data["inhibited"] = False
            requeue(connection, int(row_id), moment, body=json.dumps(data))
            _wake_group(connection, str(receiver), str(group_key), moment)
            released += 1
    return released


def requeue(
    connection: sqlite3.Connection,
    row_id: int,
    now: float,
    *,
    body: str | None = None,
) -> None:
    """Make a suppressed row pending again, counting max_age from ``now``."""
    connection.execute(
        "UPDATE outbox SET status = 'pending', queued_at = ?, next_attempt_at = ?, "
        "finished_at = NULL, body = COALESCE(?, body) WHERE id = ?",
        (now, now, body, row_id),
    )


def purge_finished(
    connection: sqlite3.Connection, older_than: timedelta, now: float | None = None
) -> int:
    """Delete finished rows older than ``older_than``; return how many.

    Suppressed firing rows stay while their alert may still fire, so they
    can be sent when their silence ends. Idle groups with no rows left are
    deleted too.
    """
    cutoff = (time.time() if now is None else now) - older_than.total_seconds()
    placeholders = ", ".join("?" for _ in FINISHED_STATUSES)
    cursor = connection.execute(
        f"DELETE FROM outbox WHERE finished_at < ? AND (status IN ({placeholders}) "
        "OR (status = 'suppressed' AND (state = 'resolved' OR reminder = 1 OR "
        "EXISTS (SELECT 1 FROM outbox AS later WHERE later.receiver = "
        "outbox.receiver AND later.fingerprint = outbox.fingerprint AND "
        "later.state = 'resolved' AND later.id > outbox.id))))",
        (cutoff, *FINISHED_STATUSES),
    )
    # A group row is needed while any outbox row refers to it, because the
    # dispatcher joins rows to their group.
    connection.execute(
        "DELETE FROM outbox_groups WHERE next_flush_at IS NULL AND "
        "COALESCE(last_flush_at, 0) < ? AND NOT EXISTS (SELECT 1 FROM "
        "outbox_alerts AS a WHERE a.receiver = outbox_groups.receiver AND "
        "a.group_key = outbox_groups.group_key) AND NOT EXISTS (SELECT 1 FROM "
        "outbox AS o WHERE o.receiver = outbox_groups.receiver AND o.group_key = "
        "outbox_groups.group_key)",
        (cutoff,),
    )
    return cursor.rowcount


def count_by_status(
    connection: sqlite3.Connection, receiver: str | None = None
) -> dict[str, int]:
    """Count rows per status, for one receiver or all."""
    if receiver is None:
        rows = connection.execute(
            "SELECT status, COUNT(*) FROM outbox GROUP BY status"
        ).fetchall()
    else:
        rows = connection.execute(
            "SELECT status, COUNT(*) FROM outbox WHERE receiver = ? GROUP BY status",
            (receiver,),
        ).fetchall()
    return {str(status): int(count) for status, count in rows}


def read_row(row: Sequence[object]) -> OutboxRow:
    """Build an ``OutboxRow`` from ``ROW_COLUMNS``."""
    row_id, receiver, group_key, body, reminder, queued_at, attempts = row
    return OutboxRow(
        id=int(str(row_id)),
        receiver=str(receiver),
        group_key=str(group_key),
        notification=Notification.from_dict(json.loads(str(body))),
        reminder=bool(reminder),
        queued_at=float(str(queued_at)),
        attempts=int(str(attempts)),
    )


ROW_COLUMNS = "id, receiver, group_key, body, reminder, queued_at, attempts"


def _as_target(receiver: str | RouteTarget, notification: Notification) -> RouteTarget:
    if isinstance(receiver, RouteTarget):
        return receiver

    return RouteTarget(
        receiver=receiver, group_key=f"direct:{notification.fingerprint}"
    )


def _group_has_alerts(connection: sqlite3.Connection, target: RouteTarget) -> bool:
    row = connection.execute(
        "SELECT 1 FROM outbox_alerts WHERE receiver = ? AND group_key = ? LIMIT 1",
        (target.receiver, target.group_key),
    ).fetchone()
    return row is not None


def _wake_group(
    connection: sqlite3.Connection, receiver: str, group_key: str, now: float
) -> None:
    connection.execute(
        "UPDATE outbox_groups SET next_flush_at = COALESCE(next_flush_at, ?) "
        "WHERE receiver = ? AND group_key = ?",
        (now, receiver, group_key),
    )
