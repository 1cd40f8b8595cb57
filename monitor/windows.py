"""Recent samples of every series in memory, as numpy arrays.

The evaluator reads windows from here, so a cycle reads nothing from disk in
the steady state. Sources append; the cycle trims to the configured window.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from monitor.series import Sample, SeriesKey


class SeriesWindow:
    """Growable pair of timestamp and value arrays for one series.

    Samples are kept sorted by timestamp; an append older than the newest
    sample is merged in place, and a repeated timestamp keeps the first value,
    as the store does.
    """

    __slots__ = ("_size", "_timestamps", "_values", "key")

    def __init__(self, key: SeriesKey, capacity: int = 64) -> None:
        self.key = key
        self._timestamps = np.empty(capacity, dtype=np.float64)
        self._values = np.empty(capacity, dtype=np.float64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def timestamps(self) -> np.ndarray:
        return self._timestamps[: self._size]

    @property
    def values(self) -> np.ndarray:
        return self._values[: self._size]

    @property
    def newest_timestamp(self) -> float | None:
        return float(self._timestamps[self._size - 1]) if self._size else None

    def extend(self, timestamps: np.ndarray, values: np.ndarray) -> None:
        if len(timestamps) == 0:
            return

        order = np.argsort(timestamps, kind="stable")
        timestamps = np.asarray(timestamps, dtype=np.float64)[order]
        values = np.asarray(values, dtype=np.float64)[order]
        newest = self.newest_timestamp
        if newest is None or timestamps[0] > newest:
            keep = np.concatenate(([True], np.diff(timestamps) > 0))
            self._append(timestamps[keep], values[keep])
            return

        merged_t = np.concatenate((self.timestamps, timestamps))
        merged_v = np.concatenate((self.values, values))
        order = np.argsort(merged_t, kind="stable")
        merged_t, merged_v = merged_t[order], merged_v[order]
        keep = np.concatenate(([True], np.diff(merged_t) > 0))
        self._size = 0
        self._append(merged_t[keep], merged_v[keep])

    def _append(self, timestamps: np.ndarray, values: np.ndarray) -> None:
        needed = self._size + len(timestamps)
        if needed > len(self._timestamps):
            capacity = max(needed, 2 * len(self._timestamps))
            self._timestamps = _grow(self._timestamps, self._size, capacity)
            self._values = _grow(self._values, self._size, capacity)
        self._timestamps[self._size : needed] = timestamps
        self._values[self._size : needed] = values
        self._size = needed

    def trim_before(self, cutoff: float) -> None:
        drop = int(np.searchsorted(self.timestamps, cutoff, side="left"))
        if drop == 0:
            return

        remaining = self._size - drop
        self._timestamps[:remaining] = self._timestamps[drop : self._size]
        self._values[:remaining] = self._values[drop : self._size]
        self._size = remaining


def _grow(array: np.ndarray, size: int, capacity: int) -> np.ndarray:
    grown = np.empty(capacity, dtype=array.dtype)
    grown[:size] = array[:size]
    return grown


class WindowStore:
    """All series windows of one process, safe to use from several threads."""

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self._windows: dict[SeriesKey, SeriesWindow] = {}
        self._lock = threading.Lock()

    def add_samples(self, samples: Iterable[Sample]) -> None:
        grouped: dict[SeriesKey, tuple[list[float], list[float]]] = {}
        for sample in samples:
            times, values = grouped.setdefault(sample.key, ([], []))
            times.append(sample.timestamp)
            values.append(sample.value)
        with self._lock:
            for key, (times, values) in grouped.items():
                self._window(key).extend(np.array(times), np.array(values))

    def add_arrays(self, key: SeriesKey, times: np.ndarray, values: np.ndarray) -> None:
        with self._lock:
            self._window(key).extend(times, values)

    def _window(self, key: SeriesKey) -> SeriesWindow:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = SeriesWindow(key)
        return window

    def trim(self, now: float) -> None:
        with self._lock:
            for window in self._windows.values():
                window.trim_before(now - self.window_seconds)

    def drop_kpis_except(self, kpis: set[str]) -> None:
        with self._lock:
            for key in [k for k in self._windows if k.kpi not in kpis]:
                del self._windows[key]

    def snapshot(
        self, kpi: str | None = None
    ) -> list[tuple[SeriesKey, np.ndarray, np.ndarray]]:
        """Return copies of the windows (of one KPI, or all)."""
        with self._lock:
            return [
                (key, window.timestamps.copy(), window.values.copy())
                for key, window in self._windows.items()
                if kpi is None or key.kpi == kpi
            ]

    def keys(self) -> list[SeriesKey]:
        with self._lock:
            return list(self._windows)
