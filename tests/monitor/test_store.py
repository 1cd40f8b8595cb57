from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from monitor.errors import StoreError
from monitor.series import Sample, SeriesKey
from monitor.store import SCHEMA_VERSION, Store, StoredAlert

EU = SeriesKey("orders", (("region", "eu"),))
US = SeriesKey("orders", (("region", "us"),))


def test_store_appends_and_ignores_duplicates(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    first = store.append_samples([Sample(EU, 10.0, 1.0), Sample(EU, 20.0, 2.0)])
    again = store.append_samples([Sample(EU, 20.0, 99.0), Sample(US, 20.0, 5.0)])
    assert first == 2
    assert again == 1
    windows = store.load_windows(since=0.0)
    times, values = windows[EU]
    assert times.tolist() == [10.0, 20.0]
    assert values.tolist() == [1.0, 2.0]


def test_store_history_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    store = Store(path)
    store.append_samples([Sample(US, float(t), float(t)) for t in range(100)])
    store.close()
    reopened = Store(path)
    assert reopened.last_timestamps() == {US: 99.0}
    times, _ = reopened.load_windows(since=49.5)[US]
    assert len(times) == 50


def test_store_uses_wal_journal(tmp_path: Path) -> None:
    Store(tmp_path / "k.db").close()
    connection = sqlite3.connect(tmp_path / "k.db")
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_rejects_newer_schema(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    store.meta_set("schema_version", str(SCHEMA_VERSION + 1))
    store.close()
    with pytest.raises(StoreError, match="schema version 2.*supports up to version 1"):
        Store(tmp_path / "k.db")


def test_store_rolls_back_failed_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    with pytest.raises(RuntimeError), store.transaction() as connection:
        connection.execute("INSERT INTO meta (key, value) VALUES ('a', 'b')")
        raise RuntimeError("boom")
    assert store.meta_get("a") is None


def test_store_alert_state_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    alert = StoredAlert(
        fingerprint="abc",
        group_name="g",
        alert="A",
        labels={"alertname": "A"},
        state="pending",
        active_at=100.0,
        fired_at=None,
        keep_firing_until=None,
        last_value=float("nan"),
        last_evaluated=110.0,
        notified=False,
        extra={"consecutive_true": 2},
    )
    with store.transaction() as connection:
        store.save_alerts(connection, [alert])
    (loaded,) = Store(tmp_path / "k.db").load_alerts()
    assert loaded.active_at == 100.0
    assert loaded.last_value is None
    assert loaded.extra == {"consecutive_true": 2}


def test_store_retention_deletes_old_samples(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    store.append_samples([Sample(EU, float(t), 1.0) for t in range(10)])
    assert store.delete_samples_before(5.0) == 5
    times, _ = store.load_windows(since=-1.0)[EU]
    assert np.array_equal(times, np.arange(5.0, 10.0))


def test_store_reports_unwritable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="Cannot open the store"):
        Store(blocker / "k.db")
