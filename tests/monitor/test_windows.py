from __future__ import annotations

import numpy as np

from monitor.series import Sample, SeriesKey
from monitor.windows import SeriesWindow, WindowStore

KEY = SeriesKey("k")


def test_window_appends_in_order_and_grows() -> None:
    window = SeriesWindow(KEY, capacity=2)
    window.extend(np.arange(10.0), np.arange(10.0) * 2)
    assert len(window) == 10
    assert window.values[-1] == 18.0


def test_window_merges_late_samples_keeping_first_value() -> None:
    window = SeriesWindow(KEY)
    window.extend(np.array([1.0, 3.0]), np.array([10.0, 30.0]))
    window.extend(np.array([2.0, 3.0]), np.array([20.0, 99.0]))
    assert window.timestamps.tolist() == [1.0, 2.0, 3.0]
    assert window.values.tolist() == [10.0, 20.0, 30.0]


def test_window_drops_duplicate_timestamps_in_one_batch() -> None:
    window = SeriesWindow(KEY)
    window.extend(np.array([5.0, 5.0, 6.0]), np.array([1.0, 2.0, 3.0]))
    assert window.timestamps.tolist() == [5.0, 6.0]
    assert window.values.tolist() == [1.0, 3.0]


def test_window_store_trims_to_window() -> None:
    store = WindowStore(window_seconds=10.0)
    store.add_samples([Sample(KEY, float(t), 1.0) for t in range(30)])
    store.trim(now=29.0)
    ((key, times, _),) = store.snapshot()
    assert key == KEY
    assert times[0] == 19.0
    assert len(times) == 11


def test_window_store_drops_removed_kpis() -> None:
    store = WindowStore(window_seconds=10.0)
    store.add_samples([Sample(KEY, 1.0, 1.0), Sample(SeriesKey("gone"), 1.0, 1.0)])
    store.drop_kpis_except({"k"})
    assert store.keys() == [KEY]


def test_window_store_keeps_polls_in_dense_block() -> None:
    store = WindowStore(window_seconds=300.0)
    keys = [SeriesKey("orders", (("region", r),)) for r in ("eu", "us")]
    for poll in range(8):
        store.add_poll(
            "api",
            [Sample(k, 60.0 * poll, float(poll + i)) for i, k in enumerate(keys)],
            60.0,
        )
    block = store.blocks()["api"]
    assert block.capacity == 5
    assert block.keys == keys
    snapshot = {
        key: (times.tolist(), values.tolist())
        for key, times, values in store.snapshot("orders")
    }
    assert snapshot[keys[1]] == (
        [180.0, 240.0, 300.0, 360.0, 420.0],
        [4.0, 5.0, 6.0, 7.0, 8.0],
    )


def test_window_store_drops_repeated_poll_time() -> None:
    store = WindowStore(window_seconds=600.0)
    store.add_poll("api", [Sample(KEY, 60.0, 1.0)], 60.0)
    store.add_poll("api", [Sample(KEY, 60.0, 2.0)], 60.0)
    ((_, times, values),) = store.snapshot()
    assert times.tolist() == [60.0]
    assert values.tolist() == [1.0]


def test_window_store_keeps_loaded_history_separate() -> None:
    store = WindowStore(window_seconds=600.0)
    store.add_arrays(KEY, np.array([0.0, 60.0]), np.array([1.0, 2.0]))
    store.add_poll("api", [Sample(KEY, 120.0, 3.0)], 60.0)
    assert store.blocks()["api"].keys == []
    ((_, times, _),) = store.snapshot()
    assert times.tolist() == [0.0, 60.0, 120.0]


def test_window_store_loads_history_into_block() -> None:
    store = WindowStore(window_seconds=600.0)
    eu, us = SeriesKey("o", (("r", "eu"),)), SeriesKey("o", (("r", "us"),))
    store.load_block(
        "api",
        {
            eu: (np.array([0.0, 60.0]), np.array([1.0, 2.0])),
            us: (np.array([60.0]), np.array([5.0])),
        },
        60.0,
    )
    store.add_poll("api", [Sample(eu, 120.0, 3.0), Sample(us, 120.0, 6.0)], 60.0)
    snapshot = {
        key: (times.tolist(), values.tolist())
        for key, times, values in store.snapshot()
    }
    assert snapshot[eu] == ([0.0, 60.0, 120.0], [1.0, 2.0, 3.0])
    assert snapshot[us] == ([60.0, 120.0], [5.0, 6.0])
