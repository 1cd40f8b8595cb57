"""Recent samples of every series in memory, as numpy arrays.

The evaluator reads windows from here, so a cycle reads nothing from disk in
the steady state. Sources append; the cycle trims to the configured window.

A series lives in one of two layouts. Series of a source whose polls give
every sample the poll time share a ``DenseBlock`` per source, which the
batch evaluator reads with matrix operations. Other series, such as CSV
history with its own timestamps, keep their own pair of arrays.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from monitor.dense import DenseBlock
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
        self._blocks: dict[str, DenseBlock] = {}
        self._block_of: dict[SeriesKey, str] = {}
        self._by_kpi: dict[str, dict[SeriesKey, None]] = {}
        """Series of each KPI in insertion order, so a lookup by KPI does not
        scan every series."""
        self._lock = threading.Lock()
        self.layout_version = 0
        """Grows whenever a series joins a dense block, so readers of
        ``dense_kpis`` know when to read it again."""

    def add_samples(self, samples: Iterable[Sample]) -> None:
        grouped: dict[SeriesKey, tuple[list[float], list[float]]] = {}
        for sample in samples:
            times, values = grouped.setdefault(sample.key, ([], []))
            times.append(sample.timestamp)
            values.append(sample.value)
        with self._lock:
            for key, (times, values) in grouped.items():
                if key not in self._windows:
                    self.layout_version += 1
                self._window(key).extend(np.array(times), np.array(values))

    def add_arrays(self, key: SeriesKey, times: np.ndarray, values: np.ndarray) -> None:
        with self._lock:
            self._window(key).extend(times, values)

    def add_poll(
        self, block: str, samples: list[Sample], interval_seconds: float
    ) -> None:
        """Add one poll's samples to the dense block of ``block``.

        Each distinct timestamp newer than the block's newest column becomes
        a column, so a backfill arrives as many columns. Samples at or before
        the newest column repeat or predate it and are dropped. Series that
        already hold separate arrays (loaded from the store with their own
        timestamps) keep them.
        """
        if not samples:
            return

        with self._lock:
            separate = [s for s in samples if s.key in self._windows]
            target = self._blocks.get(block)
            if target is None:
                capacity = max(2, int(np.ceil(self.window_seconds / interval_seconds)))
                target = self._blocks[block] = DenseBlock(capacity)
            last = target.newest_timestamp
            columns: dict[float, list[Sample]] = {}
            for sample in samples:
                if sample.key in self._windows:
                    continue
                if last is None or sample.timestamp > last:
                    columns.setdefault(sample.timestamp, []).append(sample)
            with target.lock:
                for timestamp in sorted(columns):
                    column = columns[timestamp]
                    target.append(
                        timestamp,
                        [s.key for s in column],
                        np.array([s.value for s in column]),
                    )
            for column in columns.values():
                for sample in column:
                    if sample.key not in self._block_of:
                        self._block_of[sample.key] = block
                        self._by_kpi.setdefault(sample.key.kpi, {})[sample.key] = None
                        self.layout_version += 1
        if separate:
            self.add_samples(separate)

    def load_block(
        self,
        block: str,
        history: dict[SeriesKey, tuple[np.ndarray, np.ndarray]],
        interval_seconds: float,
    ) -> None:
        """Put stored history of one source's series into its dense block.

        Each distinct timestamp becomes a column; a series without a sample
        at a column has NaN there.
        """
        if not history:
            return

        capacity = max(2, int(np.ceil(self.window_seconds / interval_seconds)))
        keys = list(history)
        times = np.unique(np.concatenate([history[k][0] for k in keys]))[-capacity:]
        matrix = np.full((len(keys), times.size), np.nan)
        for row, key in enumerate(keys):
            stamps, values = history[key]
            keep = stamps >= times[0]
            matrix[row, np.searchsorted(times, stamps[keep])] = values[keep]
        target = DenseBlock(capacity)
        target.load(times, keys, matrix)
        self.adopt_block(block, target)

    def adopt_block(self, name: str, block: DenseBlock) -> None:
        """Install a filled dense block as the block of source ``name``."""
        with self._lock:
            self._blocks[name] = block
            for key in block.keys:
                self._windows.pop(key, None)
                self._block_of[key] = name
                self._by_kpi.setdefault(key.kpi, {})[key] = None
            self.layout_version += 1

    def _window(self, key: SeriesKey) -> SeriesWindow:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = SeriesWindow(key)
            self._by_kpi.setdefault(key.kpi, {})[key] = None
        return window

    def dense_kpis(self) -> dict[str, str]:
        """Return the block of each KPI whose series all live in one dense block."""
        with self._lock:
            layout: dict[str, str] = {}
            for kpi, keys in self._by_kpi.items():
                blocks = {self._block_of.get(key) for key in keys}
                if len(blocks) == 1 and None not in blocks:
                    layout[kpi] = str(blocks.pop())
            return layout

    def blocks(self) -> dict[str, DenseBlock]:
        with self._lock:
            return dict(self._blocks)

    def trim(self, now: float) -> None:
        """Drop samples older than the window; dense blocks wrap by themselves."""
        with self._lock:
            for window in self._windows.values():
                window.trim_before(now - self.window_seconds)

    def drop_kpis_except(self, kpis: set[str]) -> None:
        """Forget series of removed KPIs; their dense rows stay until restart."""
        with self._lock:
            for key in [k for k in self._windows if k.kpi not in kpis]:
                del self._windows[key]
            for key in [k for k in self._block_of if k.kpi not in kpis]:
                del self._block_of[key]
            self.layout_version += 1
            for kpi in [k for k in self._by_kpi if k not in kpis]:
                del self._by_kpi[kpi]

    def snapshot(
        self, kpi: str | None = None
    ) -> list[tuple[SeriesKey, np.ndarray, np.ndarray]]:
        """Return copies of the windows (of one KPI, or all)."""
        with self._lock:
            keys = (
                list(self._by_kpi.get(kpi, {})) if kpi is not None else self._all_keys()
            )
            result = []
            dense = []
            for key in keys:
                window = self._windows.get(key)
                if window is not None:
                    result.append((key, window.timestamps.copy(), window.values.copy()))
                elif key in self._block_of:
                    dense.append((key, self._blocks[self._block_of[key]]))
        for key, block in dense:
            with block.lock:
                times, values = block.row_series(block.rows[key])
            result.append((key, times, values))
        return result

    def _all_keys(self) -> list[SeriesKey]:
        return [*self._windows, *self._block_of]

    def keys(self) -> list[SeriesKey]:
        with self._lock:
            return self._all_keys()
