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
