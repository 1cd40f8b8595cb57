from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import make_notification

from exporters.errors import OutboxError
from exporters.outbox import (
    SCHEMA_VERSION,
    count_by_status,
    create_tables,
    enqueue,
    purge_finished,
)
from exporters.routing import RouteTarget
from monitor.store import Store


def test_enqueue_commits_with_caller_transaction(store: Store) -> None:
    class StateChangeFailedError(Exception):
        pass

    with pytest.raises(StateChangeFailedError):
        with store.transaction() as connection:
            enqueue(connection, make_notification(), ["hook"])
            raise StateChangeFailedError

    with store.read() as connection:
        assert count_by_status(connection) == {}

    with store.transaction() as connection:
        written = enqueue(connection, make_notification(), ["hook", "pager"])
    with store.read() as connection:
        assert count_by_status(connection) == {"pending": 2}
    assert written == 2


def test_enqueue_deduplicates_by_key_and_receiver(store: Store) -> None:
    notification = make_notification()
    with store.transaction() as connection:
        first = enqueue(connection, notification, ["hook"])
        again = enqueue(connection, notification, ["hook", "pager"])
        resolved = enqueue(connection, make_notification(state="resolved"), ["hook"])

    assert (first, again, resolved) == (1, 1, 1)
    with store.read() as connection:
        rows = connection.execute(
            "SELECT receiver, idempotency_key FROM outbox ORDER BY id"
        ).fetchall()
    assert rows == [
        ("hook", notification.idempotency_key),
        ("pager", notification.idempotency_key),
        ("hook", make_notification(state="resolved").idempotency_key),
    ]


def test_enqueue_new_group_waits_group_wait(store: Store) -> None:
    target = RouteTarget(
        receiver="hook",
        group_key="0:{}",
        group_wait=timedelta(seconds=30),
        group_interval=timedelta(minutes=5),
    )
    with store.transaction() as connection:
        enqueue(connection, make_notification(alert="A"), [target], now=1000.0)
        enqueue(connection, make_notification(alert="B"), [target], now=1010.0)
        flush = connection.execute(
            "SELECT next_flush_at FROM outbox_groups WHERE group_key = '0:{}'"
        ).fetchone()[0]

    assert flush == 1030.0


def test_create_tables_inside_transaction_keeps_it_open(tmp_path: object) -> None:
    store = Store(tmp_path / "fresh.db")  # type: ignore[operator]
    with store.transaction() as connection:
        create_tables(connection)
        enqueue(connection, make_notification(), ["hook"])
    with store.read() as connection:
        version = connection.execute(
            "SELECT version FROM notification_schema"
        ).fetchone()
        pending = count_by_status(connection)
    store.close()

    assert version == (SCHEMA_VERSION,)
    assert pending == {"pending": 1}


def test_create_tables_rejects_newer_schema(store: Store) -> None:
    with store.transaction() as connection:
        connection.execute(
            "UPDATE notification_schema SET version = ?", (SCHEMA_VERSION + 1,)
        )

    with store.transaction() as connection:
        with pytest.raises(
            OutboxError, match=f"schema version {SCHEMA_VERSION + 1}, but"
        ):
            create_tables(connection)


def test_purge_finished_keeps_pending(store: Store) -> None:
    with store.transaction() as connection:
        enqueue(connection, make_notification(alert="A"), ["hook"], now=0.0)
        enqueue(connection, make_notification(alert="B"), ["hook"], now=0.0)
        connection.execute(
            "UPDATE outbox SET status = 'delivered', finished_at = 10.0 WHERE id = 1"
        )
        purged = purge_finished(connection, timedelta(days=7), now=10.0 + 8 * 86400)
        left = count_by_status(connection)

    assert purged == 1
    assert left == {"pending": 1}


def test_purge_finished_deletes_idle_groups(store: Store) -> None:
    with store.transaction() as connection:
        enqueue(connection, make_notification(alert="A"), ["hook"], now=0.0)
        enqueue(connection, make_notification(alert="B"), ["hook"], now=0.0)
        connection.execute(
            "UPDATE outbox SET status = 'delivered', finished_at = 10.0 WHERE id = 1"
        )
        connection.execute(
            "UPDATE outbox_groups SET next_flush_at = NULL, last_flush_at = 10.0"
        )
        purge_finished(connection, timedelta(days=7), now=10.0 + 8 * 86400)
        groups = connection.execute(
            "SELECT group_key FROM outbox_groups ORDER BY group_key"
        ).fetchall()

    assert groups == [(f"direct:{make_notification(alert='B').fingerprint}",)]
