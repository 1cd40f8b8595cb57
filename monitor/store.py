"""The sample store: one SQLite file in WAL mode.

It contains the series and their append-only samples, small key-value metadata
(such as replay anchors) and the persisted alert state. Other packages add
their own tables (the outbox, silences) through the same connection, so a
state change and the notification it causes commit in one transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.errors import StoreError
from monitor.series import Labels, Sample, SeriesKey

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    kpi TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (kpi, labels)
);
CREATE TABLE IF NOT EXISTS samples (
    series_id INTEGER NOT NULL REFERENCES series (id),
    timestamp REAL NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (series_id, timestamp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_state (
    fingerprint TEXT PRIMARY KEY,
    group_name TEXT NOT NULL,
    alert TEXT NOT NULL,
    labels TEXT NOT NULL,
    state TEXT NOT NULL,
    active_at REAL,
    fired_at REAL,
    keep_firing_until REAL,
    last_value REAL,
    last_evaluated REAL,
    notified INTEGER NOT NULL DEFAULT 0,
    extra TEXT NOT NULL DEFAULT '{}'
);
"""


@dataclass(frozen=True, kw_only=True)
class StoredAlert:
    """Persisted state of one alert, restored on start."""

    fingerprint: str
    group_name: str
    alert: str
    labels: dict[str, str]
    state: str
    active_at: float | None
    fired_at: float | None
    keep_firing_until: float | None
    last_value: float | None
    last_evaluated: float | None
    notified: bool
    extra: dict[str, object]


class Store:
    """SQLite store shared by the threads of one krwatch process.

    Parameters
    ----------
    path : Path
        Database file; its folder is created if missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._series_ids: dict[SeriesKey, int] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute("PRAGMA foreign_keys=ON")
            self._connection.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(
                f"Cannot open the store {str(self.path)!r}: {error}. Check that "
                "the folder is writable and the file is a krwatch SQLite database."
            ) from error
        self._check_version()

    def _check_version(self) -> None:
        found = self.meta_get("schema_version")
        if found is None:
            self.meta_set("schema_version", str(SCHEMA_VERSION))
            return

        if int(found) > SCHEMA_VERSION:
            raise StoreError(
                f"The store {str(self.path)!r} has schema version {found}, but "
                f"this krwatch supports up to version {SCHEMA_VERSION}. It was "
                "written by a newer krwatch; run that version or use another "
                "storage.path."
            )

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Yield the connection inside ``BEGIN IMMEDIATE`` ... ``COMMIT``.

        The transaction rolls back if the block raises.
        """
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Yield the connection for reads, serialised with writes."""
        with self._lock:
            yield self._connection

    def meta_get(self, key: str) -> str | None:
        with self.read() as connection:
            row = connection.execute(
                "SELECT value FROM meta WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        with self.transaction() as connection:
            connection.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def _series_id(self, connection: sqlite3.Connection, key: SeriesKey) -> int:
        cached = self._series_ids.get(key)
        if cached is not None:
            return cached

        labels = json.dumps(dict(key.labels), sort_keys=True)
        connection.execute(
            "INSERT OR IGNORE INTO series (kpi, labels) VALUES (?, ?)",
            (key.kpi, labels),
        )
        row = connection.execute(
            "SELECT id FROM series WHERE kpi = ? AND labels = ?", (key.kpi, labels)
        ).fetchone()
        self._series_ids[key] = int(row[0])
        return int(row[0])

    def append_samples(self, samples: Iterable[Sample]) -> int:
        """Insert samples, ignoring ones whose series and timestamp are stored.

        Returns
        -------
        int
            The number of samples inserted.
        """
        with self.transaction() as connection:
            rows = [
                (self._series_id(connection, s.key), s.timestamp, s.value)
                for s in samples
            ]
            before = connection.total_changes
            connection.executemany(
                "INSERT OR IGNORE INTO samples (series_id, timestamp, value) "
                "VALUES (?, ?, ?)",
                rows,
            )
            return connection.total_changes - before

    def last_timestamps(self) -> dict[SeriesKey, float]:
        """Return the newest stored timestamp of every series."""
        with self.read() as connection:
            rows = connection.execute(
                "SELECT s.kpi, s.labels, MAX(x.timestamp) FROM series s "
                "JOIN samples x ON x.series_id = s.id GROUP BY s.id"
            ).fetchall()
        return {_key(kpi, labels): float(newest) for kpi, labels, newest in rows}

    def load_windows(
        self, since: float, kpis: Iterable[str] | None = None
    ) -> dict[SeriesKey, tuple[np.ndarray, np.ndarray]]:
        """Load samples newer than ``since`` as (timestamps, values) arrays."""
        wanted = None if kpis is None else set(kpis)
        result: dict[SeriesKey, tuple[np.ndarray, np.ndarray]] = {}
        with self.read() as connection:
            series = connection.execute("SELECT id, kpi, labels FROM series").fetchall()
            for series_id, kpi, labels in series:
                if wanted is not None and kpi not in wanted:
                    continue
                rows = connection.execute(
                    "SELECT timestamp, value FROM samples WHERE series_id = ? "
                    "AND timestamp > ? ORDER BY timestamp",
                    (series_id, since),
                ).fetchall()
                if not rows:
                    continue
                data = np.asarray(rows, dtype=np.float64)
                result[_key(kpi, labels)] = (data[:, 0].copy(), data[:, 1].copy())
        return result

    def delete_samples_before(self, cutoff: float) -> int:
        """Delete samples older than ``cutoff``; returns how many went."""
        with self.transaction() as connection:
            cursor = connection.execute(
                "DELETE FROM samples WHERE timestamp < ?", (cutoff,)
            )
            return cursor.rowcount

    def save_alerts(
        self, connection: sqlite3.Connection, alerts: Iterable[StoredAlert]
    ) -> None:
        """Upsert alert state inside the caller's transaction."""
        connection.executemany(
            "INSERT INTO alert_state (fingerprint, group_name, alert, labels, state, "
            "active_at, fired_at, keep_firing_until, last_value, last_evaluated, "
            "notified, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (fingerprint) DO UPDATE SET group_name = excluded.group_name, "
            "alert = excluded.alert, labels = excluded.labels, state = excluded.state, "
            "active_at = excluded.active_at, fired_at = excluded.fired_at, "
            "keep_firing_until = excluded.keep_firing_until, "
            "last_value = excluded.last_value, "
            "last_evaluated = excluded.last_evaluated, notified = excluded.notified, "
            "extra = excluded.extra",
            [
                (
                    a.fingerprint,
                    a.group_name,
                    a.alert,
                    json.dumps(a.labels, sort_keys=True),
                    a.state,
                    a.active_at,
                    a.fired_at,
                    a.keep_firing_until,
                    _finite_or_none(a.last_value),
                    a.last_evaluated,
                    int(a.notified),
                    json.dumps(a.extra, sort_keys=True),
                )
                for a in alerts
            ],
        )

    def delete_alerts(
        self, connection: sqlite3.Connection, fingerprints: Iterable[str]
    ) -> None:
        connection.executemany(
            "DELETE FROM alert_state WHERE fingerprint = ?",
            [(f,) for f in fingerprints],
        )

    def load_alerts(self) -> list[StoredAlert]:
        with self.read() as connection:
            rows = connection.execute(
                "SELECT fingerprint, group_name, alert, labels, state, active_at, "
                "fired_at, keep_firing_until, last_value, last_evaluated, notified, "
                "extra FROM alert_state"
            ).fetchall()
        return [
            StoredAlert(
                fingerprint=row[0],
                group_name=row[1],
                alert=row[2],
                labels=json.loads(row[3]),
                state=row[4],
                active_at=row[5],
                fired_at=row[6],
                keep_firing_until=row[7],
                last_value=row[8],
                last_evaluated=row[9],
                notified=bool(row[10]),
                extra=json.loads(row[11]),
            )
            for row in rows
        ]


def _key(kpi: str, labels_json: str) -> SeriesKey:
    labels: Labels = tuple(sorted(json.loads(labels_json).items()))
    return SeriesKey(kpi, labels)


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(value)
