"""Series that share sample times, kept as one ring-buffer matrix.

Sources that poll current values (an HTTP API, a Prometheus instant query)
give every series of a poll the same timestamp. Such series are stored as
rows of one matrix whose columns are polls, so a cycle computes last values
and least-squares fits of thousands of series with a few matrix-vector
products, and the timestamps cost one column each instead of one per sample.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.series import SeriesKey

FloatArray = np.ndarray
INITIAL_ROWS = 64
INITIAL_COLUMNS = 256
"""Columns allocated for a new block; the width doubles as polls arrive, up
to the capacity, so memory follows the history actually kept."""


@dataclass(frozen=True, slots=True)
class LinearFit:
    """Least-squares lines of several rows over one window."""

    slope: FloatArray
    """Change per second."""
    value_at_now: FloatArray
    """The line's value at the evaluation time."""


class DenseBlock:
    """Rows of series sampled at the same times, in a ring buffer of columns.

    Parameters
    ----------
    capacity : int
        Columns kept; the oldest column is overwritten when it is full.
        Columns are allocated as they fill, so a block that has seen few
        polls is small whatever its capacity.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError(
                f"A dense block needs a capacity of at least 2, got {capacity}."
            )
        self.capacity = capacity
        width = min(capacity, INITIAL_COLUMNS)
        self.timestamps = np.full(width, np.nan)
        self.values = np.full((INITIAL_ROWS, width), np.nan)
        self.rows: dict[SeriesKey, int] = {}
        self.keys: list[SeriesKey] = []
        self.head = 0
        """Column written by the next append."""
        self.size = 0
        """Columns filled so far, up to ``capacity``."""
        self.nan_counts = np.zeros(INITIAL_ROWS, dtype=np.int64)
        """NaN values per row in the whole buffer, so fits skip the NaN check
        for rows that have none."""
        self.lock = threading.Lock()

    def row_of(self, key: SeriesKey) -> int:
        """Return the row of ``key``, adding a row of NaN history if it is new."""
        row = self.rows.get(key)
        if row is not None:
            return row

        row = len(self.keys)
        if row == self.values.shape[0]:
            grown = np.full((2 * row, self.width), np.nan)
            grown[:row] = self.values
            self.values = grown
            counts = np.zeros(2 * row, dtype=np.int64)
            counts[:row] = self.nan_counts
            self.nan_counts = counts
        self.nan_counts[row] = self.width
        self.rows[key] = row
        self.keys.append(key)
        return row

    def append(
        self, timestamp: float, keys: Sequence[SeriesKey], values: FloatArray
    ) -> None:
        """Add one column; rows not in ``keys`` get NaN at this time."""
        rows = np.fromiter(
            (self.row_of(k) for k in keys), dtype=np.intp, count=len(keys)
        )
        if self.size == self.width < self.capacity:
            self._widen()
        column = self.head
        used = len(self.keys)
        leaving = np.isnan(self.values[:used, column])
        self.values[:used, column] = np.nan
        self.values[rows, column] = values
        arriving = np.isnan(self.values[:used, column])
        self.nan_counts[:used] += arriving.astype(np.int64) - leaving.astype(np.int64)
        self.timestamps[column] = timestamp
        self.head = (column + 1) % self.width
        self.size = min(self.size + 1, self.width)

    @property
    def width(self) -> int:
        """Columns allocated now, at most ``capacity``."""
        return int(self.timestamps.size)

    def _widen(self) -> None:
        """Double the allocated columns of a block that has not wrapped yet."""
        old = self.width
        width = min(self.capacity, 2 * old)
        values = np.full((self.values.shape[0], width), np.nan)
        values[:, :old] = self.values
        self.values = values
        timestamps = np.full(width, np.nan)
        timestamps[:old] = self.timestamps
        self.timestamps = timestamps
        self.nan_counts[: len(self.keys)] += width - old
        self.head = self.size

    def load(
        self, timestamps: FloatArray, keys: Sequence[SeriesKey], matrix: FloatArray
    ) -> None:
        """Replace the content with ``matrix`` (rows = keys, columns = times).

        Only the newest ``capacity`` columns are kept.
        """
        matrix = np.asarray(matrix, dtype=np.float64)[:, -self.capacity :]
        timestamps = np.asarray(timestamps, dtype=np.float64)[-self.capacity :]
        if matrix.shape != (len(keys), timestamps.size):
            raise ValueError(
                f"The matrix has shape {matrix.shape}, but {len(keys)} keys and "
                f"{timestamps.size} timestamps were given."
            )
        rows = max(INITIAL_ROWS, len(keys))
        width = min(self.capacity, max(INITIAL_COLUMNS, 2 * timestamps.size))
        self.values = np.full((rows, width), np.nan)
        self.values[: len(keys), : timestamps.size] = matrix
        self.timestamps = np.full(width, np.nan)
        self.timestamps[: timestamps.size] = timestamps
        self.keys = list(keys)
        self.rows = {key: row for row, key in enumerate(self.keys)}
        self.size = timestamps.size
        self.head = timestamps.size % width
        self.nan_counts = np.zeros(rows, dtype=np.int64)
        self.nan_counts[: len(keys)] = np.isnan(self.values[: len(keys)]).sum(axis=1)

    @property
    def newest_timestamp(self) -> float | None:
        if self.size == 0:
            return None
        return float(self.timestamps[(self.head - 1) % self.width])

    def _window_columns(self, now: float, seconds: float) -> np.ndarray:
        """Return the columns with ``now - seconds < t <= now``, oldest first."""
        order = (self.head - self.size + np.arange(self.size)) % self.width
        times = self.timestamps[order]
        start = int(np.searchsorted(times, now - seconds, side="right"))
        stop = int(np.searchsorted(times, now, side="right"))
        return order[start:stop]

    def last_values(self, rows: np.ndarray, now: float) -> FloatArray:
        """Return each row's value in the newest column at or before ``now``."""
        columns = self._window_columns(now, np.inf)
        if columns.size == 0:
            return np.full(rows.shape, np.nan)
        return self.values[rows, columns[-1]]

    def last_finite(
        self, rows: np.ndarray, now: float
    ) -> tuple[FloatArray, FloatArray]:
        """Return each row's newest finite value at or before ``now`` and its time.

        A row with no finite value gets NaN for both.
        """
        columns = self._window_columns(now, np.inf)
        if columns.size == 0:
            return np.full(rows.shape, np.nan), np.full(rows.shape, np.nan)

        newest = int(columns[-1])
        values = self.values[rows, newest]
        times = np.full(rows.shape, self.timestamps[newest])
        missing = np.flatnonzero(np.isnan(values))
        if missing.size:
            # Rows absent from the newest poll are rare, so searching their
            # whole history costs less than tracking each row's newest column.
            history = self.values[np.ix_(rows[missing], columns)]
            finite = np.isfinite(history)
            found = finite.any(axis=1)
            last = columns.size - 1 - np.argmax(finite[:, ::-1], axis=1)
            picked = history[np.arange(missing.size), last]
            values[missing] = np.where(found, picked, np.nan)
            times[missing] = np.where(found, self.timestamps[columns[last]], np.nan)
        return values, times

    def linear_fit(self, rows: np.ndarray, now: float, seconds: float) -> LinearFit:
        """Fit a least-squares line to each row over ``(now - seconds, now]``.

        Rows with fewer than two finite samples in the window get NaN.
        """
        columns = self._window_columns(now, seconds)
        if columns.size < 2:
            nan = np.full(rows.shape, np.nan)
            return LinearFit(slope=nan, value_at_now=nan.copy())

        times = self.timestamps[columns] - now
        block = self._take(rows, columns)
        slope, value = _fit_dense(block, times)
        with_nan = np.flatnonzero(self.nan_counts[rows] > 0)
        if with_nan.size:
            subset = block[with_nan]
            if np.isnan(subset).any():
                slope[with_nan], value[with_nan] = _fit_masked(subset, times)
        return LinearFit(slope=slope, value_at_now=value)

    def _take(self, rows: np.ndarray, columns: np.ndarray) -> FloatArray:
        first, last = int(columns[0]), int(columns[-1])
        if last - first + 1 == columns.size:
            # The window does not wrap, so a slice avoids copying columns.
            if rows.size == len(self.keys) and np.array_equal(
                rows, np.arange(rows.size)
            ):
                return self.values[: rows.size, first : last + 1]
            return self.values[rows, first : last + 1]
        return self.values[np.ix_(rows, columns)]

    def row_series(self, row: int) -> tuple[FloatArray, FloatArray]:
        """Return the finite samples of one row, oldest first."""
        order = (self.head - self.size + np.arange(self.size)) % self.width
        values = self.values[row, order]
        keep = np.isfinite(values)
        return self.timestamps[order][keep], values[keep]

    @property
    def nbytes(self) -> int:
        return int(self.values[: len(self.keys)].nbytes + self.timestamps.nbytes)


def _fit_dense(block: FloatArray, times: FloatArray) -> tuple[FloatArray, FloatArray]:
    mean_time = float(times.mean())
    centred = times - mean_time
    spread = float(centred @ centred)
    weights_slope = centred / spread
    weights_mean = np.full(times.size, 1.0 / times.size)
    slope = block @ weights_slope
    mean = block @ weights_mean
    return slope, mean - slope * mean_time


def _fit_masked(block: FloatArray, times: FloatArray) -> tuple[FloatArray, FloatArray]:
    finite = np.isfinite(block)
    y = np.where(finite, block, 0.0)
    w = finite.astype(np.float64)
    count = w.sum(axis=1)
    sum_t = w @ times
    sum_y = y.sum(axis=1)
    sum_tt = w @ (times * times)
    sum_ty = y @ times
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = count * sum_tt - sum_t * sum_t
        slope = (count * sum_ty - sum_t * sum_y) / spread
        value = (sum_y - slope * sum_t) / count
    bad = (count < 2) | (spread <= 0)
    slope[bad] = np.nan
    value[bad] = np.nan
    return slope, value
